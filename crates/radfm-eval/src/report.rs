//! The typed result of an evaluation: what `metrics.json` holds. Every
//! field name is the file's; [`EvalReport::schema_version`] says which
//! layout a file has.

use std::collections::BTreeMap;

use radfm_core::UncertainPolicy;
use serde::Serialize;

use crate::delong::DeLong;
use crate::Value;

/// One metric: its point value and percentile CI, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl Cell {
    /// A point value with its interval (None: undefined in most resamples).
    pub fn new(v: &Value, ci: Option<(f64, f64)>) -> Cell {
        match (v, ci) {
            (Value::Undefined(why), _) => Cell {
                value: None,
                ci: None,
                reason: Some(why),
            },
            (Value::Defined(x), Some((lo, hi))) => Cell {
                value: Some(*x),
                ci: Some([lo, hi]),
                reason: None,
            },
            (Value::Defined(x), None) => Cell {
                value: Some(*x),
                ci: None,
                reason: Some("undefined in most bootstrap resamples"),
            },
        }
    }

    /// A point value without an interval.
    pub fn point(v: &Value) -> Cell {
        match v {
            Value::Defined(x) => Cell {
                value: Some(*x),
                ci: None,
                reason: None,
            },
            Value::Undefined(why) => Cell {
                value: None,
                ci: None,
                reason: Some(why),
            },
        }
    }
}

/// Every metric of one observation on one set of images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationReport {
    /// keyed by the names in [`crate::evaluate::METRICS`]
    #[serde(flatten)]
    pub metrics: BTreeMap<&'static str, Cell>,
    /// images with both a label and a score
    pub n: usize,
    pub positives: usize,
    pub prevalence: Option<f64>,
    /// the operating point of the threshold metrics
    pub threshold: Option<f64>,
}

impl ObservationReport {
    pub fn metric(&self, name: &str) -> Option<&Cell> {
        self.metrics.get(name)
    }
}

/// The pooled (micro-averaged) problem: point values only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MicroReport {
    #[serde(flatten)]
    pub metrics: BTreeMap<&'static str, Cell>,
    pub threshold: Option<f64>,
}

/// How the intervals were computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootstrapInfo {
    pub resamples: usize,
    pub seed: u64,
    /// "patient" or "image": what was really resampled
    pub unit: &'static str,
    pub interval: &'static str,
    pub level: f64,
}

/// How labels became binary targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelInfo {
    pub uncertain: UncertainPolicy,
    /// uncertain (-1) labels among the evaluated images, before the policy
    pub n_uncertain: usize,
}

/// The best-minus-worst subgroup AUROC gap of one observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapReport {
    pub metric: &'static str,
    pub best: String,
    pub worst: String,
    pub gap: f64,
    pub ci: Option<[f64; 2]>,
    pub ci_level: f64,
    pub pairs: usize,
    pub p: Option<f64>,
    pub p_holm: Option<f64>,
    pub flag: bool,
}

/// Calibration metrics of a set of probabilities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    pub ece: Option<f64>,
    pub ece_mass: Option<f64>,
    pub brier: Option<f64>,
}

/// Platt scaling's parameters: p' = sigmoid(a * logit(p) + b).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

/// Temperature and Platt scaling fitted on the validation images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationFit {
    pub temperature: f64,
    pub platt: Platt,
    pub fitted_on: usize,
    pub judged_on: usize,
    pub before: Judged,
    pub after_temperature: Judged,
    pub after_platt: Judged,
}

/// Why something was not computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub reason: &'static str,
}

/// One observation's calibration, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CalibrationEntry {
    Fitted(CalibrationFit),
    Skipped(Skipped),
}

/// Calibration per observation, or why there is none at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Calibration {
    PerObservation(BTreeMap<String, CalibrationEntry>),
    Skipped(Skipped),
}

/// DeLong's test of model A against model B, with the patient-bootstrap CI
/// of the AUROC difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    #[serde(flatten)]
    pub delong: DeLong,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference_ci: Option<[f64; 2]>,
}

/// One observation's comparison, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CompareEntry {
    Compared(Comparison),
    Skipped(Skipped),
}

/// Per-observation metrics of each run (label-efficiency or shift views).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunsReport {
    /// the runs in the order of the predictions file
    pub order: Vec<String>,
    pub metrics: BTreeMap<String, BTreeMap<String, ObservationReport>>,
    /// runs that repeat one draw (`NAME-r0`, `NAME-r1`, ...: `radfm probe --repeats`),
    /// by draw and observation: the spread of their AUROCs
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub repeats: BTreeMap<String, BTreeMap<String, Spread>>,
}

/// How a metric varies across repeated draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    /// sample standard deviation (n - 1)
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

/// Everything `radfm evaluate` reports: `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub schema_version: u32,
    pub n_images: usize,
    pub n_patients: usize,
    pub bootstrap: BootstrapInfo,
    pub operating_point: String,
    /// "validation" (chosen on the validation split and re-chosen in each
    /// resample) or "evaluated" (chosen on the evaluated images: optimistic)
    pub threshold_source: &'static str,
    pub labels: LabelInfo,
    pub observations: BTreeMap<String, ObservationReport>,
    /// unweighted means of the observations' point values
    #[serde(rename = "macro")]
    pub macro_: BTreeMap<&'static str, Option<f64>>,
    pub micro: Option<MicroReport>,
    /// group field -> group value -> observation -> metrics
    pub subgroups: BTreeMap<String, BTreeMap<String, BTreeMap<String, ObservationReport>>>,
    /// group field -> observation -> gap
    pub subgroup_gaps: BTreeMap<String, BTreeMap<String, GapReport>>,
    pub calibration: Calibration,
    pub n_validation_images: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<BTreeMap<String, CompareEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<RunsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_run: Option<String>,
}
