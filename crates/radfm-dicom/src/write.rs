//! Writing a data set as a DICOM Part 10 file, atomically: the one writer
//! behind the synthetic archive and the test files.

use std::path::Path;

use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use crate::DicomError;

/// radfm's implementation class UID (PS3.7 D.3.3.2), in every file it writes.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.131730289947298761853428401396447123157";

/// Write `ds` to `path` as a Part 10 file in transfer syntax `ts`, with a
/// file meta group naming `sop_class` and `sop_uid` and radfm's
/// implementation (`version`, 16 characters at most, such as "RADFM_SYNTH_1").
/// The file appears complete or not at all.
pub fn write_part10(
    ds: InMemDicomObject,
    ts: &str,
    sop_class: &str,
    sop_uid: &str,
    version: &str,
    path: &Path,
) -> Result<(), DicomError> {
    let obj = with_meta(ds, ts, sop_class, sop_uid, version)?;
    let write_err = |source: std::io::Error| DicomError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = radfm_core::AtomicFile::create(path).map_err(write_err)?;
    obj.write_all(&mut f).map_err(|e| DicomError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    f.commit().map_err(write_err)
}

fn with_meta(
    ds: InMemDicomObject,
    ts: &str,
    sop_class: &str,
    sop_uid: &str,
    version: &str,
) -> Result<dicom_object::FileDicomObject<InMemDicomObject>, DicomError> {
    ds.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_uid)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(version),
    )
    .map_err(|e| DicomError::Meta {
        reason: e.to_string(),
    })
}

/// [`write_part10`]'s file as bytes in memory (an HTTP body).
pub fn part10_bytes(
    ds: InMemDicomObject,
    ts: &str,
    sop_class: &str,
    sop_uid: &str,
    version: &str,
) -> Result<Vec<u8>, DicomError> {
    let obj = with_meta(ds, ts, sop_class, sop_uid, version)?;
    let mut out = Vec::new();
    obj.write_all(&mut out).map_err(|e| DicomError::Meta {
        reason: format!("encoding the data set: {e}"),
    })?;
    Ok(out)
}
