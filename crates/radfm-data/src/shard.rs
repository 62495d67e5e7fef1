//! Pixel shards: WebDataset-style tar files of `KEY.npy` + `KEY.json` pairs.
//!
//! A shard is written atomically ([`radfm_core::AtomicFile`]: a temporary
//! `shards/.shard-NNNNNN.tar.tmp-PID`, fsynced and renamed to
//! `shards/shard-NNNNNN.tar` only when complete), so readers never see a
//! partial shard. The catalog commit that follows the rename is what makes the
//! shard part of the dataset: a run killed between the two leaves a complete
//! shard that no catalog row references, and the next run deletes it (with
//! any temporary files) before it writes anything.

use std::path::Path;

use radfm_core::AtomicFile;

use crate::DataError;

pub const DIR: &str = "shards";

pub struct ShardWriter {
    index: u64,
    path: std::path::PathBuf,
    builder: tar::Builder<AtomicFile>,
    pub members: usize,
    pub bytes: u64,
}

fn io_err(path: &Path, e: std::io::Error) -> DataError {
    DataError::Write {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Remove temporary shards and shards the catalog does not reference (both left by a
/// killed run); return the next free index.
pub fn prepare_dir(
    dataset: &Path,
    referenced: &std::collections::HashSet<String>,
) -> Result<u64, DataError> {
    let dir = dataset.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let mut next = 0;
    for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
        let entry = entry.map_err(|e| io_err(&dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && name.contains(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        } else if let Some(n) = name
            .strip_prefix("shard-")
            .and_then(|s| s.strip_suffix(".tar"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            if referenced.contains(&name) {
                next = next.max(n + 1);
            } else {
                tracing::info!(
                    "removing {name}: written by a run that was killed before its commit"
                );
                std::fs::remove_file(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
            }
        }
    }
    Ok(next)
}

pub fn shard_name(index: u64) -> String {
    format!("shard-{index:06}.tar")
}

impl ShardWriter {
    pub fn create(dataset: &Path, index: u64) -> Result<Self, DataError> {
        let path = dataset.join(DIR).join(shard_name(index));
        let f = AtomicFile::create(&path).map_err(|e| io_err(&path, e))?;
        let mut builder = tar::Builder::new(f);
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(ShardWriter {
            index,
            path,
            builder,
            members: 0,
            bytes: 0,
        })
    }

    pub fn name(&self) -> String {
        shard_name(self.index)
    }

    pub fn append(&mut self, member: &str, data: &[u8]) -> Result<(), DataError> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.builder
            .append_data(&mut h, member, data)
            .map_err(|e| io_err(&self.path, e))?;
        self.members += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Finish the tar, fsync and move it into place. Returns the shard's file name.
    pub fn finish(self) -> Result<String, DataError> {
        let name = self.name();
        let f = self
            .builder
            .into_inner()
            .map_err(|e| io_err(&self.path, e))?;
        f.commit().map_err(|e| io_err(&self.path, e))?;
        Ok(name)
    }
}
