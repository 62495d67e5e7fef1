//! Atomic file writes: write to a temporary file in the same directory, fsync,
//! then rename over the target, so a reader never sees a half-written file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written atomically. Write to it, then [`AtomicFile::commit`];
/// dropped without a commit, the temporary file is removed and the target
/// is left as it was.
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> std::io::Result<AtomicFile> {
        AtomicFile::open(path, false)
    }

    /// Like [`AtomicFile::create`], readable and writable by the owner only
    /// (mode 0600 on Unix) from the first byte: for keys and maps back to
    /// identities.
    pub fn create_private(path: &Path) -> std::io::Result<AtomicFile> {
        AtomicFile::open(path, true)
    }

    fn open(path: &Path, private: bool) -> std::io::Result<AtomicFile> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let f = opts.open(&tmp)?;
        Ok(AtomicFile {
            target: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::new(f)),
        })
    }

    /// Flush, fsync and rename over the target.
    pub fn commit(mut self) -> std::io::Result<()> {
        let out = self.out.take().expect("not committed twice");
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&self.tmp, &self.target)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().expect("open").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_leaves_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        write_atomic(&p, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"half").unwrap();
            // dropped: no commit
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary file removed"
        );
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("map.jsonl");
        let mut f = AtomicFile::create_private(&p).unwrap();
        f.write_all(b"secret").unwrap();
        f.commit().unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    /// Resumed runs read their state (best validation AUROC, schedules) back
    /// from JSON and compare it with fresh values, so a float must come back
    /// bit for bit: serde_json's `float_roundtrip` feature, which the
    /// workspace turns on. Without it about one value in a few thousand
    /// comes back one ULP off, and a resumed run could select another step.
    #[test]
    fn floats_written_as_json_read_back_bit_for_bit() {
        let mut off = 0;
        for i in 0..200_000u64 {
            let bits = crate::seed::spread(0x5EED, i);
            // values in [0, 1) like AUROCs and probabilities, and raw bit patterns
            let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
            let raw = f64::from_bits(bits);
            for v in [unit, raw] {
                if !v.is_finite() {
                    continue;
                }
                let text = serde_json::to_string(&v).unwrap();
                let back: f64 = serde_json::from_str(&text).unwrap();
                off += usize::from(back.to_bits() != v.to_bits());
            }
        }
        assert_eq!(off, 0, "{off} floats changed through JSON");
    }
}
