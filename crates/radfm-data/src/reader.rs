//! Streaming a dataset: every image with its catalog row (patient, study,
//! split, sex, age, site, view), its study's weak labels, and its pixels
//! (every frame, in display units by the sidecar's scale), in batches.
//!
//! Shards are read one after another, in order, by a reader thread that hands
//! raw members over a channel of two batches; each batch is decoded in
//! parallel. Memory is a few batches, whatever the dataset's size. Items come
//! in the dataset's order (shard, then member), so a run is deterministic.
//!
//! A member that cannot be read (a damaged array, a missing member) is an
//! item error naming the image and the reason; the batch goes on.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use radfm_core::npy::Npy;
use radfm_core::observation::Observation;
use rayon::prelude::*;

use crate::catalog::Catalog;
use crate::DataError;

/// An image's catalog row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// the shard member key (`000000042`)
    pub key: String,
    pub sop_uid: String,
    pub study_uid: String,
    pub patient_key: String,
    /// `train`, `val`, `test`, or none before `radfm split`
    pub split: Option<String>,
    pub sex: Option<String>,
    pub age_years: Option<f64>,
    pub site: Option<String>,
    pub view: Option<String>,
    pub modality: Option<String>,
    pub kind: String,
    pub shard: String,
    /// the study's weak labels; none when its report is absent or not
    /// labelled (an observation not in the list is not mentioned)
    pub labels: Option<Vec<(Observation, i8)>>,
}

/// Decoded pixels: shape (frames, rows, columns, channels), values in
/// display units (0 black, 1 white).
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Pixels {
    /// One frame's values, `rows * columns * channels`.
    pub fn frame(&self, f: usize) -> &[f32] {
        let n = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[f * n..(f + 1) * n]
    }

    /// One frame in grey (channels averaged), `rows * columns`.
    pub fn grey(&self, f: usize) -> Vec<f32> {
        let ch = self.shape[3];
        let frame = self.frame(f);
        if ch == 1 {
            frame.to_vec()
        } else {
            frame
                .chunks_exact(ch)
                .map(|v| v.iter().sum::<f32>() / ch as f32)
                .collect()
        }
    }
}

/// A digest of a list of images: each one's key, SOP UID and shard, in
/// order (SHA-256, hex). `embed.json` records it; caches are keyed by it.
pub fn fingerprint<'a>(records: impl IntoIterator<Item = &'a Record>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for r in records {
        h.update(r.key.as_bytes());
        h.update([0]);
        h.update(r.sop_uid.as_bytes());
        h.update([0]);
        h.update(r.shard.as_bytes());
        h.update([b'\n']);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A dataset opened for reading.
pub struct Reader {
    dir: PathBuf,
    records: Vec<Record>,
}

/// One streamed item: the index of its record, and its pixels or why not.
pub type Item = (usize, Result<Pixels, String>);

impl Reader {
    /// Every image of the dataset's catalog, in key order.
    pub fn open(dataset: &Path) -> Result<Reader, DataError> {
        if !dataset.join(crate::catalog::FILE_NAME).is_file() {
            return Err(DataError::Input {
                path: dataset.to_path_buf(),
                reason: format!(
                    "not a dataset (no {}); make one with `radfm ingest`",
                    crate::catalog::FILE_NAME
                ),
            });
        }
        let catalog = Catalog::open(dataset)?;
        let db = |e: rusqlite::Error| DataError::Catalog {
            path: dataset.join(crate::catalog::FILE_NAME),
            reason: e.to_string(),
        };
        let labels = crate::labels::study_labels(&catalog).map_err(db)?;
        let mut st = catalog
            .conn
            .prepare(
                "SELECT i.key, i.sop_uid, i.study_uid, i.patient_key, p.split, i.sex, i.age_years,
                        i.site, i.view_position, i.modality, i.kind, i.shard
                 FROM images i LEFT JOIN patients p ON p.patient_key = i.patient_key
                 ORDER BY i.key",
            )
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok(Record {
                    key: r.get(0)?,
                    sop_uid: r.get(1)?,
                    study_uid: r.get(2)?,
                    patient_key: r.get(3)?,
                    split: r.get(4)?,
                    sex: r.get(5)?,
                    age_years: r.get(6)?,
                    site: r.get(7)?,
                    view: r.get(8)?,
                    modality: r.get(9)?,
                    kind: r.get(10)?,
                    shard: r.get(11)?,
                    labels: None,
                })
            })
            .map_err(db)?;
        let mut records: Vec<Record> = rows.collect::<rusqlite::Result<_>>().map_err(db)?;
        for r in &mut records {
            r.labels = labels.get(&r.study_uid).cloned();
        }
        Ok(Reader {
            dir: dataset.to_path_buf(),
            records,
        })
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Keep only the records `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&Record) -> bool) {
        self.records.retain(keep);
    }

    /// Stream every record's pixels in batches of `batch` items to `each`,
    /// decoding each batch in parallel. Stops at the first error `each` returns.
    pub fn stream<E: From<DataError> + Send>(
        &self,
        batch: usize,
        each: &mut dyn FnMut(Vec<Item>) -> Result<(), E>,
    ) -> Result<(), E> {
        let batch = batch.max(1);
        // records by shard, each shard's keys to their record index
        let mut by_shard: BTreeMap<&str, HashMap<&str, usize>> = BTreeMap::new();
        for (i, r) in self.records.iter().enumerate() {
            by_shard
                .entry(r.shard.as_str())
                .or_default()
                .insert(r.key.as_str(), i);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, Raw)>>(2);
        std::thread::scope(|s| {
            let dir = &self.dir;
            let by_shard = &by_shard;
            let producer = s.spawn(move || -> Result<(), DataError> {
                let mut pending: Vec<(usize, Raw)> = Vec::with_capacity(batch);
                for (shard, wanted) in by_shard {
                    let found = read_shard(&dir.join(crate::shard::DIR).join(shard), wanted)?;
                    for item in found {
                        pending.push(item);
                        if pending.len() == batch {
                            let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                            if tx.send(full).is_err() {
                                return Ok(()); // the consumer stopped
                            }
                        }
                    }
                }
                if !pending.is_empty() {
                    let _ = tx.send(pending);
                }
                Ok(())
            });
            let mut result = Ok(());
            for raw in rx.iter() {
                let items: Vec<Item> = raw.into_par_iter().map(|(i, r)| (i, decode(r))).collect();
                if let Err(e) = each(items) {
                    result = Err(e);
                    break;
                }
            }
            drop(rx);
            let produced = producer.join().expect("shard reader thread");
            result.and(produced.map_err(E::from))
        })
    }
}

/// A member pair as read from its shard (or why it could not be).
enum Raw {
    Found { npy: Vec<u8>, sidecar: Vec<u8> },
    Missing(String),
}

/// The wanted members of one shard, in member order; wanted keys the shard
/// lacks come last, as errors.
fn read_shard(path: &Path, wanted: &HashMap<&str, usize>) -> Result<Vec<(usize, Raw)>, DataError> {
    let input = |reason: String| DataError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| input(e.to_string()))?;
    let mut tar = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut npys: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for entry in tar.entries().map_err(|e| input(e.to_string()))? {
        let mut entry = entry.map_err(|e| input(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| input(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let (key, is_npy) = match (name.strip_suffix(".npy"), name.strip_suffix(".json")) {
            (Some(k), _) => (k.to_string(), true),
            (_, Some(k)) => (k.to_string(), false),
            _ => continue,
        };
        let Some(&index) = wanted.get(key.as_str()) else {
            continue;
        };
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut buf)
            .map_err(|e| input(format!("{name}: {e}")))?;
        if is_npy {
            npys.insert(key, buf);
        } else {
            seen.insert(index);
            let item = match npys.remove(&key) {
                Some(npy) => Raw::Found { npy, sidecar: buf },
                None => Raw::Missing(format!("{key}.json comes without {key}.npy")),
            };
            out.push((index, item));
        }
    }
    let mut lacking: Vec<(&str, usize)> = wanted
        .iter()
        .filter(|(_, i)| !seen.contains(*i))
        .map(|(k, &i)| (*k, i))
        .collect();
    lacking.sort_unstable();
    for (key, index) in lacking {
        out.push((
            index,
            Raw::Missing(format!(
                "image {key} is not in {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            )),
        ));
    }
    Ok(out)
}

/// A member pair's pixels in display units.
fn decode(raw: Raw) -> Result<Pixels, String> {
    let (npy, sidecar) = match raw {
        Raw::Found { npy, sidecar } => (npy, sidecar),
        Raw::Missing(why) => return Err(why),
    };
    let side: serde_json::Value =
        serde_json::from_slice(&sidecar).map_err(|e| format!("sidecar: {e}"))?;
    let arr = Npy::read(&npy[..]).map_err(|e| format!("pixels: {e}"))?;
    let shape: [usize; 4] = arr.shape.as_slice().try_into().map_err(|_| {
        format!(
            "pixels: shape {:?}, not (frames, rows, columns, channels)",
            arr.shape
        )
    })?;
    let scale = match side.get("scale").and_then(|v| v.as_f64()) {
        Some(s) if s > 0.0 && s.is_finite() => s,
        _ if arr.descr == "<u2" => 1.0 / 65535.0,
        _ => 1.0,
    };
    let data: Vec<f32> = if arr.descr == "<u2" {
        let s = scale as f32;
        arr.data
            .chunks_exact(2)
            .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) * s)
            .collect()
    } else {
        arr.to_f64()
            .into_iter()
            .map(|v| (v * scale) as f32)
            .collect()
    };
    if data.len() != shape.iter().product::<usize>() {
        return Err(format!("pixels: {} values for shape {shape:?}", data.len()));
    }
    Ok(Pixels { shape, data })
}

/// One DICOM file's pixels in display units, through the DICOM display
/// pipeline (modality LUT, VOI LUT or window, photometric interpretation) at
/// full resolution, and its SOP Instance UID. For a model's own
/// preprocessing (`crate::preprocess::Preprocess::frames`) outside a dataset.
pub fn dicom_pixels(bytes: &[u8]) -> Result<(Option<String>, Pixels), String> {
    let file = radfm_dicom::read::parse(bytes).map_err(|e| e.to_string())?;
    dicom_file_pixels(&file)
}

/// [`dicom_pixels`] of a file already parsed.
pub fn dicom_file_pixels(
    file: &radfm_dicom::read::DicomFile,
) -> Result<(Option<String>, Pixels), String> {
    let raw = radfm_dicom::pixels::decode_raw(file).map_err(|e| e.to_string())?;
    let module =
        radfm_dicom::PixelModule::from_dataset(&file.dataset).map_err(|e| e.to_string())?;
    let pipeline = radfm_dicom::GrayscalePipeline::from_dataset(&file.dataset, &module);
    let map = pipeline.display_map(&raw);
    let [frames, rows, cols, samples] = raw.shape();
    let ch = pipeline.display_channels(samples);
    let fsz = rows * cols * samples;
    let mut data = Vec::with_capacity(frames * rows * cols * ch);
    for f in 0..frames {
        pipeline.display_into(&raw, &map, f * fsz, (f + 1) * fsz, &mut data);
    }
    let sop = radfm_dicom::DicomInfo::from_dataset(&file.dataset).sop_instance_uid;
    Ok((
        sop,
        Pixels {
            shape: [frames, rows, cols, ch],
            data,
        },
    ))
}
