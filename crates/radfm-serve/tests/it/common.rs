//! A stand-in model and small DICOM files built in the test.

use std::time::Duration;

use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use radfm_dicom::attrs::str_element;
use radfm_dicom::read::DicomFile;
use radfm_dicom::sr::Algorithm;
use radfm_serve::{Model, ScoreError};

pub const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// Scores from the decoded image's size: P(first) = rows / 100, P(second) =
/// columns / 100; it sleeps `delay` per image to make load visible.
pub struct Fake {
    pub alg: Algorithm,
    pub obs: Vec<String>,
    pub thr: Vec<f64>,
    pub delay: Duration,
    /// the size of every batch `score_batch` was given, in order
    pub batches: std::sync::Mutex<Vec<usize>>,
}

impl Fake {
    pub fn new(delay: Duration) -> Fake {
        Fake {
            alg: Algorithm {
                name: "fake".into(),
                version: "1".into(),
                sha256: "cd".repeat(32),
            },
            obs: vec!["Cardiomegaly".into(), "Pleural Effusion".into()],
            thr: vec![0.5, 0.3],
            delay,
            batches: Default::default(),
        }
    }
}

impl Model for Fake {
    fn algorithm(&self) -> &Algorithm {
        &self.alg
    }
    fn card(&self) -> serde_json::Value {
        serde_json::json!({"name": self.alg.name, "observations": self.obs})
    }
    fn observations(&self) -> &[String] {
        &self.obs
    }
    fn thresholds(&self) -> &[f64] {
        &self.thr
    }
    fn score(&self, file: &DicomFile) -> Result<Vec<f64>, ScoreError> {
        std::thread::sleep(self.delay);
        let raw = radfm_dicom::pixels::decode_raw(file)
            .map_err(|e| ScoreError::NoImage(e.to_string()))?;
        let [_, rows, cols, _] = raw.shape();
        Ok(vec![rows as f64 / 100.0, cols as f64 / 100.0])
    }
    fn score_batch(&self, files: &[&DicomFile]) -> Vec<Result<Vec<f64>, ScoreError>> {
        self.batches.lock().unwrap().push(files.len());
        files.iter().map(|f| self.score(f)).collect()
    }
}

fn header(sop: &str) -> InMemDicomObject {
    let mut ds = InMemDicomObject::new_empty();
    for (tag, vr, v) in [
        (tags::SOP_CLASS_UID, VR::UI, CR),
        (tags::SOP_INSTANCE_UID, VR::UI, sop),
        (tags::STUDY_INSTANCE_UID, VR::UI, "2.25.1001"),
        (tags::SERIES_INSTANCE_UID, VR::UI, "2.25.1002"),
        (tags::PATIENT_ID, VR::LO, "SYN0001"),
        (tags::PATIENT_NAME, VR::PN, "Synthetic^Patient"),
        (tags::MODALITY, VR::CS, "CR"),
    ] {
        ds.put(str_element(tag, vr, v));
    }
    ds
}

/// A rows x cols 8-bit MONOCHROME2 CR image as Part-10 bytes.
pub fn image(sop: &str, rows: u16, cols: u16) -> Vec<u8> {
    let mut ds = header(sop);
    ds.put(str_element(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    ));
    for (tag, v) in [
        (tags::ROWS, rows),
        (tags::COLUMNS, cols),
        (tags::SAMPLES_PER_PIXEL, 1),
        (tags::BITS_ALLOCATED, 8),
        (tags::BITS_STORED, 8),
        (tags::HIGH_BIT, 7),
        (tags::PIXEL_REPRESENTATION, 0),
    ] {
        ds.put(InMemElement::new(tag, VR::US, PrimitiveValue::from(v)));
    }
    let px: Vec<u8> = (0..usize::from(rows) * usize::from(cols))
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    ds.put(InMemElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(px),
    ));
    radfm_dicom::write::part10_bytes(ds, EXPLICIT_LE, CR, sop, "RADFM_TEST").unwrap()
}

/// A CR header with no Pixel Data.
pub fn no_pixels(sop: &str) -> Vec<u8> {
    radfm_dicom::write::part10_bytes(header(sop), EXPLICIT_LE, CR, sop, "RADFM_TEST").unwrap()
}
