//! Known labels of an archive (a synthetic archive's `truth.jsonl`, or any
//! per-image label file keyed by the original SOP Instance UID) carried into
//! a de-identified dataset as `DATASET/truth.jsonl`, keyed by the dataset's
//! own identifiers, so that `radfm probe --labels` and `radfm evaluate
//! --truth` can be used on it.
//!
//! The original UIDs and patient IDs are mapped with the dataset's
//! pseudonymisation key (the same keyed functions ingest applies); only images
//! the catalog holds are kept. Every field of a line is either recomputed
//! (`id`, `patient_id`, `study_instance_uid`), taken from the de-identified
//! catalog (`sex`, `age`, `site`, `view`), or is a label (`labels`: observation
//! to 0/1/-1). Nothing else of the input line (file names, accession numbers,
//! names, dates, free text) reaches the dataset.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use radfm_core::observation::Observation;
use radfm_dicom::deid::Deidentifier;
use serde_json::{json, Value};

use crate::reader::Reader;
use crate::DataError;

/// The file written inside the dataset.
pub const FILE_NAME: &str = "truth.jsonl";

/// What [`import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// lines written
    pub written: usize,
    /// input lines whose image is not in the dataset (quarantined, failed,
    /// or from another archive)
    pub not_in_dataset: usize,
    /// catalogued images that no input line describes
    pub without_truth: usize,
}

/// Write `DATASET/truth.jsonl` from `input` (one JSON object per line with
/// `id`, the original SOP Instance UID, and `labels`). `key` is the
/// dataset's pseudonymisation key, or none for a dataset ingested with
/// `--no-deid`.
pub fn import(dataset: &Path, input: &Path, key: Option<[u8; 32]>) -> Result<Imported, DataError> {
    let bad = |reason: String| DataError::Input {
        path: input.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(input).map_err(|e| bad(e.to_string()))?;
    let reader = Reader::open(dataset)?;
    let by_uid: HashMap<&str, usize> = reader
        .records()
        .iter()
        .enumerate()
        .map(|(i, r)| (r.sop_uid.as_str(), i))
        .collect();
    let deid = key.map(Deidentifier::new);
    let mut out = String::new();
    let mut seen = vec![false; reader.records().len()];
    let mut not_in_dataset = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |reason: String| bad(format!("line {}: {reason}", n + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| at("no \"id\" (the image's SOP Instance UID)".into()))?;
        let labels = labels(&v["labels"]).map_err(at)?;
        let uid = match &deid {
            Some(d) => d.uid(id),
            None => id.to_string(),
        };
        let Some(&i) = by_uid.get(uid.as_str()) else {
            not_in_dataset += 1;
            continue;
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(at(format!("image {uid} is described twice")));
        }
        let r = &reader.records()[i];
        let line = json!({
            "id": r.sop_uid,
            "patient_id": r.patient_key,
            "study_instance_uid": r.study_uid,
            "labels": labels,
            "sex": r.sex,
            "age": r.age_years,
            "site": r.site,
            "view": r.view,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let path = dataset.join(FILE_NAME);
    radfm_core::write_atomic(&path, out.as_bytes())
        .map_err(|source| DataError::Write { path, source })?;
    let written = seen.iter().filter(|&&s| s).count();
    Ok(Imported {
        written,
        not_in_dataset,
        without_truth: seen.len() - written,
    })
}

/// A line's labels: known observations only, each 0, 1 or -1.
fn labels(v: &Value) -> Result<BTreeMap<&'static str, i64>, String> {
    let map = v
        .as_object()
        .ok_or("no \"labels\" object (observation to 0, 1 or -1)")?;
    map.iter()
        .map(|(k, x)| {
            let o: Observation = k
                .parse()
                .map_err(|_| format!("labels: {k:?} is not a CheXpert observation"))?;
            match x.as_i64() {
                Some(l @ -1..=1) => Ok((o.as_str(), l)),
                _ => Err(format!("labels: {k}: {x} is not 0, 1 or -1")),
            }
        })
        .collect()
}
