//! A dataset's frames preprocessed once and kept on disk, for training loops
//! that visit every image many times in random order (`radfm pretrain`).
//!
//! [`FrameStore::open`] streams the dataset through the [`Reader`] (bounded
//! memory, parallel decoding), preprocesses every frame of every image and
//! appends it to `DATASET/.cache/frames-<digest>.f32` (little-endian float32,
//! one fixed-size row per frame). The digest covers the images (keys, SOP
//! UIDs, shards) and every preprocessing step, so a changed dataset or
//! resolution gets a new file and an unchanged one is read back at once. The
//! rows are read with positioned reads: the operating system's page cache,
//! not the process, holds the pixels, and a dataset larger than RAM trains
//! from disk.
//!
//! The array and its row index (`frames-<digest>.json`) are written
//! atomically, the index last: a killed build leaves no cache behind, only
//! a temporary file that the next build overwrites.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::json;

use crate::preprocess::{Frames, Preprocess};
use crate::reader::{Reader, Record};
use crate::DataError;

/// The preprocessed frames of a dataset's images, one row each.
pub struct FrameStore {
    file: std::fs::File,
    path: PathBuf,
    /// values per row (channels x height x width)
    row_len: usize,
    /// row -> (record index, frame)
    rows: Vec<(usize, usize)>,
    /// images that could not be read, with the reason
    skipped: Vec<(usize, String)>,
    reused: bool,
}

impl FrameStore {
    /// The frames of `reader`'s records preprocessed by `prep` into
    /// `row_len`-value rows, from the cache under `dataset/.cache/` or built
    /// there now (`progress` is told how many images each batch held).
    /// An image that cannot be read or preprocessed is skipped, with its
    /// reason in [`FrameStore::skipped`].
    pub fn open(
        dataset: &Path,
        reader: &Reader,
        prep: &Preprocess,
        row_len: usize,
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<FrameStore, DataError> {
        let records = reader.records();
        let digest = {
            let images = crate::reader::fingerprint(records.iter());
            let steps = prep.describe().to_string();
            radfm_core::seed::fnv1a_parts(&[
                b"radfm frames v1",
                images.as_bytes(),
                steps.as_bytes(),
                &row_len.to_le_bytes(),
            ])
        };
        let dir = dataset.join(".cache");
        let path = dir.join(format!("frames-{digest:016x}.f32"));
        let index = dir.join(format!("frames-{digest:016x}.json"));
        let write_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| DataError::Write { path: p, source }
        };
        if let Some(store) = FrameStore::reopen(&path, &index, records, row_len) {
            return Ok(store);
        }
        std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        let mut out = radfm_core::AtomicFile::create(&path).map_err(write_err(&path))?;
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        reader.stream::<DataError>(batch, &mut |items| {
            let n = items.len();
            let prepared: Vec<(usize, Frames)> = items
                .into_par_iter()
                .map(|(i, px)| {
                    let frames = px.and_then(|p| prep.frames(&p)).and_then(|f| {
                        match f.iter().find(|r| r.len() != row_len) {
                            Some(r) => Err(format!(
                                "preprocessed to {} values, expected {row_len}",
                                r.len()
                            )),
                            None => Ok(f),
                        }
                    });
                    (i, frames)
                })
                .collect();
            for (i, frames) in prepared {
                match frames {
                    Ok(frames) => {
                        for (k, f) in frames.iter().enumerate() {
                            let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
                            out.write_all(&bytes).map_err(write_err(&path))?;
                            rows.push((i, k));
                        }
                    }
                    Err(why) => skipped.push((i, why)),
                }
            }
            progress(n);
            Ok(())
        })?;
        out.commit().map_err(write_err(&path))?;
        let keyed: Vec<serde_json::Value> = rows
            .iter()
            .map(|&(i, k)| json!([records[i].key, k]))
            .collect();
        let doc = json!({"row_len": row_len, "rows": keyed});
        radfm_core::write_atomic(&index, doc.to_string().as_bytes()).map_err(write_err(&index))?;
        let file = std::fs::File::open(&path).map_err(write_err(&path))?;
        Ok(FrameStore {
            file,
            path,
            row_len,
            rows,
            skipped,
            reused: false,
        })
    }

    /// The cache written by an earlier build, if it is whole and describes
    /// these records.
    fn reopen(path: &Path, index: &Path, records: &[Record], row_len: usize) -> Option<FrameStore> {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(index).ok()?).ok()?;
        if doc["row_len"].as_u64()? as usize != row_len {
            return None;
        }
        let by_key: HashMap<&str, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.as_str(), i))
            .collect();
        let rows: Vec<(usize, usize)> = doc["rows"]
            .as_array()?
            .iter()
            .map(|v| Some((*by_key.get(v[0].as_str()?)?, v[1].as_u64()? as usize)))
            .collect::<Option<_>>()?;
        let file = std::fs::File::open(path).ok()?;
        if file.metadata().ok()?.len() != (rows.len() * row_len * 4) as u64 {
            return None;
        }
        let mut seen = vec![false; records.len()];
        for &(i, _) in &rows {
            seen[i] = true;
        }
        // an image without rows was skipped when the cache was built
        let skipped = (0..records.len())
            .filter(|&i| !seen[i])
            .map(|i| {
                (
                    i,
                    "could not be read when the frame cache was built".to_string(),
                )
            })
            .collect();
        Some(FrameStore {
            file,
            path: path.to_path_buf(),
            row_len,
            rows,
            skipped,
            reused: true,
        })
    }

    /// The number of rows (frames).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `r`'s (record index, frame).
    pub fn owner(&self, r: usize) -> (usize, usize) {
        self.rows[r]
    }

    /// Every row's (record index, frame), in row order: the reader's order.
    pub fn owners(&self) -> &[(usize, usize)] {
        &self.rows
    }

    /// Images left out, by record index, with the reason.
    pub fn skipped(&self) -> &[(usize, String)] {
        &self.skipped
    }

    /// Whether the rows came from an earlier build's cache.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Row `r`'s values.
    pub fn row(&self, r: usize) -> std::io::Result<Vec<f32>> {
        let mut bytes = vec![0u8; self.row_len * 4];
        read_at(&self.file, &mut bytes, (r * self.row_len * 4) as u64)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

#[cfg(unix)]
fn read_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, at)
}

#[cfg(windows)]
fn read_at(f: &std::fs::File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, at)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}
