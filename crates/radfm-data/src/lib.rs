//! radfm-data: the dataset store (SQLite catalog, tar shards of `.npy` and
//! `.json`), ingest from DICOM archives, patient-level splits and dataset cards.
//! The on-disk format is documented in `docs/dataset-format.md`.

pub mod card;
pub mod catalog;
pub mod frames;
pub mod ingest;
pub mod key;
pub mod labels;
pub mod preprocess;
pub mod reader;
pub mod reports;
pub mod shard;
pub mod split;
pub mod testdata;
pub mod truth;

use std::path::PathBuf;

/// Fatal errors of dataset operations (per-file problems are logged, not raised).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("input {path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog {path}: {reason}")]
    Catalog { path: PathBuf, reason: String },
    #[error("pseudonymisation key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("reports file {path}: {reason}")]
    Reports { path: PathBuf, reason: String },
    #[error("split: {reason}")]
    Split { reason: String },
    #[error("dataset {path}: {reason}")]
    Policy { path: PathBuf, reason: String },
}
