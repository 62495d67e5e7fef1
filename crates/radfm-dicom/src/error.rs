//! The error type of this crate: one variant per step that can fail, each
//! naming the item involved.

use std::path::PathBuf;

/// Everything that can go wrong while reading, decoding or de-identifying one DICOM file.
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("cannot read {path}: {source}")]
    OpenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not DICOM: {reason}")]
    NotDicom { reason: String },
    #[error("malformed file meta group: {reason}")]
    Meta { reason: String },
    #[error("malformed data set: {reason}")]
    Structure { reason: String },
    #[error("cannot parse data set (transfer syntax {ts}): {reason}")]
    Parse { ts: String, reason: String },
    #[error("no pixel data (7FE0,0010) in this file")]
    NoPixelData,
    #[error("missing or invalid attribute {keyword}: {reason}")]
    Attribute {
        keyword: &'static str,
        reason: String,
    },
    #[error("unsupported transfer syntax {uid}")]
    UnsupportedTransferSyntax { uid: String },
    #[error("unsupported pixel layout: {reason}")]
    UnsupportedPixels { reason: String },
    #[error("pixel data too short: need {needed} bytes, have {have}")]
    PixelDataTooShort { needed: usize, have: usize },
    #[error("cannot decode frame {frame} ({codec}): {reason}")]
    DecodeFrame {
        frame: usize,
        codec: &'static str,
        reason: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal failure while handling this file (bug, please report): {reason}")]
    Panic { reason: String },
}

pub type Result<T, E = DicomError> = std::result::Result<T, E>;

impl DicomError {
    pub(crate) fn attr(keyword: &'static str, reason: impl Into<String>) -> Self {
        DicomError::Attribute {
            keyword,
            reason: reason.into(),
        }
    }
}

/// Run `f`, turning a panic inside a third-party decoder into an error value,
/// so that one hostile file never takes a batch down.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let reason = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic".to_string()
            };
            Err(DicomError::Panic { reason })
        }
    }
}
