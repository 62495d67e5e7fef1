//! radfm's deployment layer: the inference server, the DICOMweb client and
//! `pacs sync`. tokio and axum live in this crate and nowhere else.
//!
//! The model itself stays outside (the tensor framework is kept out of this
//! crate): the binary implements [`Model`] for its classifier directories,
//! and tests implement it with a few lines of arithmetic.
//!
//! - [`analyse`]: one DICOM Part-10 file to its SOP Instance UID and scores;
//!   the same function serves `radfm predict`, `POST /v1/predict` and `pacs sync`,
//!   so their scores are equal.
//! - [`sr_bytes`]: the DICOM SR (TID 1500) of analysed images.
//! - [`server`]: axum on tokio, a bounded inference pool with backpressure.
//! - [`pacs`]: QIDO-RS, WADO-RS, predict, STOW-RS, one SR per study, idempotent.

pub mod metrics;
pub mod pacs;
pub mod server;

use radfm_dicom::read::DicomFile;
use radfm_dicom::sr::{Algorithm, Finding, ImageResult, SrIdentity};
use sha2::{Digest, Sha256};

/// A loaded classifier, as the server and `pacs sync` need it.
pub trait Model: Send + Sync + 'static {
    /// name, version and checksum, written into every result
    fn algorithm(&self) -> &Algorithm;
    /// the model card (`GET /v1/model`)
    fn card(&self) -> serde_json::Value;
    /// the observations scored, in the order of [`Model::score`]'s output
    fn observations(&self) -> &[String];
    /// per observation, the operating point: present when P >= threshold
    fn thresholds(&self) -> &[f64];
    /// P(observation) for one parsed file
    fn score(&self, file: &DicomFile) -> Result<Vec<f64>, ScoreError>;
    /// P(observation) for several files in one forward pass where the model
    /// can (the server's `--batch`); by default one at a time. A batch's
    /// scores may differ from [`Model::score`]'s in the last bits.
    fn score_batch(&self, files: &[&DicomFile]) -> Vec<Result<Vec<f64>, ScoreError>> {
        files.iter().map(|f| self.score(f)).collect()
    }
}

/// Why a model could not score a file.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// the file holds no image the model can read (no pixels, an encoding radfm cannot decode)
    #[error("{0}")]
    NoImage(String),
    /// the model itself failed
    #[error("the model failed: {0}")]
    Failed(String),
}

/// Why one input file gave no result.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("not readable as DICOM: {0}")]
    Unreadable(String),
    #[error("no SOP Instance UID")]
    NoSopInstanceUid,
    #[error("not an image radfm can score: {0}")]
    NoImage(String),
    #[error("the decoder failed on this file")]
    DecoderPanic,
    #[error("the model failed: {0}")]
    Model(String),
    #[error("writing the SR: {0}")]
    Sr(String),
}

impl InputError {
    /// Whether the input is at fault (a 4xx), not the server.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, InputError::Model(_) | InputError::Sr(_))
    }

    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::Unreadable(_) => "unreadable",
            InputError::NoSopInstanceUid => "no_sop_instance_uid",
            InputError::NoImage(_) => "not_an_image",
            InputError::DecoderPanic => "decoder_failed",
            InputError::Model(_) => "model",
            InputError::Sr(_) => "sr",
        }
    }
}

/// One scored image.
#[derive(Debug)]
pub struct Analysis {
    pub file: DicomFile,
    pub sop_instance_uid: String,
    /// in the order of [`Model::observations`]
    pub scores: Vec<f64>,
}

/// Parse `bytes` as a DICOM file and score its image. Never panics: a panic
/// in a decoder is caught and reported as [`InputError::DecoderPanic`].
pub fn analyse(model: &dyn Model, bytes: &[u8]) -> Result<Analysis, InputError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (file, sop) = read_input(bytes)?;
        score_one(model, file, sop)
    }))
    .unwrap_or(Err(InputError::DecoderPanic))
}

/// [`analyse`], except that a structured report (an SR modality or an SR SOP
/// class) is skipped, `Ok(None)`, rather than failing as a non-image: what
/// `pacs sync` scores of the instances of a study. One parse per input.
pub fn analyse_unless_sr(model: &dyn Model, bytes: &[u8]) -> Result<Option<Analysis>, InputError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (file, sop) = read_input(bytes)?;
        let info = radfm_dicom::DicomInfo::from_dataset(&file.dataset);
        // SOP classes under 1.2.840.10008.5.1.4.1.1.88 are structured reports
        let sr = info.modality.as_deref() == Some("SR")
            || info
                .sop_class_uid
                .as_deref()
                .is_some_and(|c| c.starts_with("1.2.840.10008.5.1.4.1.1.88."));
        if sr {
            return Ok(None);
        }
        score_one(model, file, sop).map(Some)
    }))
    .unwrap_or(Err(InputError::DecoderPanic))
}

fn score_one(model: &dyn Model, file: DicomFile, sop: String) -> Result<Analysis, InputError> {
    let scores = model.score(&file).map_err(input_error)?;
    Ok(Analysis {
        file,
        sop_instance_uid: sop,
        scores,
    })
}

fn input_error(e: ScoreError) -> InputError {
    match e {
        ScoreError::NoImage(m) => InputError::NoImage(m),
        ScoreError::Failed(m) => InputError::Model(m),
    }
}

/// Parse one input and find its SOP Instance UID.
fn read_input(bytes: &[u8]) -> Result<(DicomFile, String), InputError> {
    if bytes.is_empty() {
        return Err(InputError::Unreadable("empty".into()));
    }
    let file =
        radfm_dicom::read::parse(bytes).map_err(|e| InputError::Unreadable(e.to_string()))?;
    let sop = radfm_dicom::DicomInfo::from_dataset(&file.dataset)
        .sop_instance_uid
        .filter(|s| !s.is_empty())
        .ok_or(InputError::NoSopInstanceUid)?;
    Ok((file, sop))
}

/// [`analyse`] of several inputs, scored with [`Model::score_batch`]: one
/// result per input, in order. Never panics.
pub fn analyse_batch(model: &dyn Model, inputs: &[&[u8]]) -> Vec<Result<Analysis, InputError>> {
    let read: Vec<Result<(DicomFile, String), InputError>> = inputs
        .iter()
        .map(|b| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_input(b)))
                .unwrap_or(Err(InputError::DecoderPanic))
        })
        .collect();
    let ok: Vec<&DicomFile> = read
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(f, _)| f))
        .collect();
    let scored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.score_batch(&ok)))
        .unwrap_or_else(|_| {
            (0..ok.len())
                .map(|_| {
                    Err(ScoreError::NoImage(
                        "the decoder failed on this file".into(),
                    ))
                })
                .collect()
        });
    let mut scored = scored.into_iter();
    read.into_iter()
        .map(|r| {
            let (file, sop) = r?;
            let scores = scored
                .next()
                .unwrap_or_else(|| {
                    Err(ScoreError::Failed(
                        "score_batch gave too few results".into(),
                    ))
                })
                .map_err(input_error)?;
            Ok(Analysis {
                file,
                sop_instance_uid: sop,
                scores,
            })
        })
        .collect()
}

/// `{"<observation>": p}` of one analysis.
pub fn scores_json(model: &dyn Model, scores: &[f64]) -> serde_json::Value {
    serde_json::Value::Object(
        model
            .observations()
            .iter()
            .zip(scores)
            .map(|(o, p)| (o.clone(), serde_json::json!(p)))
            .collect(),
    )
}

/// `{"name", "version", "sha256"}` of the model.
pub fn model_json(model: &dyn Model) -> serde_json::Value {
    let a = model.algorithm();
    serde_json::json!({"name": a.name, "version": a.version, "sha256": a.sha256})
}

/// The SR (Part-10 bytes) of analysed images of one study.
pub fn sr_bytes(
    model: &dyn Model,
    images: &[&Analysis],
    id: &SrIdentity,
) -> Result<Vec<u8>, InputError> {
    let results: Vec<ImageResult<'_>> = images
        .iter()
        .map(|a| ImageResult {
            source: &a.file.dataset,
            findings: model
                .observations()
                .iter()
                .zip(&a.scores)
                .zip(model.thresholds())
                .map(|((o, &p), &t)| Finding {
                    observation: o.clone(),
                    probability: p,
                    threshold: t,
                })
                .collect(),
        })
        .collect();
    radfm_dicom::sr::to_bytes(&results, model.algorithm(), id)
        .map_err(|e| InputError::Sr(e.to_string()))
}

/// What logs say instead of a UID: the first 16 hex digits of its sha256.
pub fn hash_uid(uid: &str) -> String {
    Sha256::digest(uid.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
