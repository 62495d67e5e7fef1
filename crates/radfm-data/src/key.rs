//! The pseudonymisation key: 32 random bytes, hex, in a file created with
//! mode 0600 outside the dataset. It is never copied into the dataset.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Default key location for a dataset directory: a sibling `<name>.deid-key`.
pub fn default_path(dataset: &Path) -> PathBuf {
    beside(dataset, "deid-key")
}

/// `<name>.<suffix>` beside the dataset directory `<name>`: where the files
/// that must never be inside the dataset live.
pub fn beside(dataset: &Path, suffix: &str) -> PathBuf {
    let name = dataset
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "dataset".into());
    let parent = dataset
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!("{name}.{suffix}"))
}

/// Load the key, or create it (mode 0600) if the file does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create(path: &Path, dataset: &Path) -> Result<([u8; 32], bool), DataError> {
    if let (Ok(k), Ok(d)) = (path.canonicalize(), dataset.canonicalize()) {
        if k.starts_with(&d) {
            return Err(DataError::Key {
                path: path.to_path_buf(),
                reason: "the key must live outside the dataset directory".into(),
            });
        }
    }
    let bad = |reason: String| DataError::Key {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim();
            // checked as bytes first: slicing a non-ASCII text could split a character
            if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("expected 64 hex characters".into()));
            }
            let mut key = [0u8; 32];
            for (i, b) in key.iter_mut().enumerate() {
                *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                    .map_err(|_| bad("not hex".into()))?;
            }
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            create(path, &key)?;
            Ok((key, true))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Write `key` as a new key file (hex, mode 0600); an existing file is an error.
/// `load_or_create` draws a random key; a caller that must reproduce its pseudonyms
/// (the synthetic demo) derives one and writes it here.
pub fn create(path: &Path, key: &[u8; 32]) -> Result<(), DataError> {
    let bad = |reason: String| DataError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| bad(e.to_string()))?;
    f.write_all(hex.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| bad(e.to_string()))
}
