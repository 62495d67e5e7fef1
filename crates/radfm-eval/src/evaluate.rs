//! The evaluation behind `radfm evaluate`: predictions matched to truth by
//! id, every metric per observation with a patient-level bootstrap CI, the
//! same per subgroup with best-worst gaps, and a paired DeLong comparison.
//!
//! Threshold metrics (F1, sensitivity, specificity, PPV, NPV) use one
//! operating point per observation (Youden's J by default, or the highest
//! threshold reaching a target sensitivity or specificity). When the truth
//! marks a validation split (`"split": "val"`), the operating point is chosen
//! on the validation images and applied to the others, and every bootstrap
//! resample re-chooses it on its own draw of validation patients, so the CIs
//! include the threshold's variance (`"threshold_source": "validation"`).
//! Without a validation split it is chosen on the evaluated images and held
//! fixed in every resample (`"evaluated"`): sensitivity and specificity are
//! then optimistic. Calibration metrics use probabilities: logits
//! (`"kind": "logit"`) pass through the logistic function first.
//!
//! Labels are CheXpert's 1, 0 and -1 (uncertain); [`Options::uncertain`]
//! decides what an uncertain label becomes (U-Ignore, U-Zeros, U-Ones).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use radfm_core::seed::splitmix64;
use radfm_core::{Label, Observation, UncertainPolicy};
use rayon::prelude::*;
use serde_json::Value as Json;

use crate::bootstrap::{by_patient, interval, percentile, resample_counts, resample_values};
use crate::delong::delong;
#[cfg(test)]
use crate::metrics::Confusion;
use crate::metrics::{brier, ece, Bins, Ranked};
use crate::report::{
    BootstrapInfo, Calibration, CalibrationEntry, CalibrationFit, Cell, CompareEntry, Comparison,
    EvalReport, GapReport, Judged, LabelInfo, MicroReport, ObservationReport, Platt, RunsReport,
    Skipped,
};
use crate::Value;

/// The metrics reported per observation, in order.
pub const METRICS: [&str; 10] = [
    "auroc",
    "auprc",
    "f1",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "brier",
    "ece",
    "ece_mass",
];

/// How the threshold of threshold metrics is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OperatingPoint {
    Youden,
    Sensitivity(f64),
    Specificity(f64),
}

impl std::str::FromStr for OperatingPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str| -> Result<f64, String> {
            let x: f64 = v
                .parse()
                .map_err(|_| format!("{s:?}: {v:?} is not a number"))?;
            if (0.0..=1.0).contains(&x) {
                Ok(x)
            } else {
                Err(format!("{s:?}: {x} is not in [0, 1]"))
            }
        };
        match s.split_once(':') {
            None if s == "youden" => Ok(OperatingPoint::Youden),
            Some(("sens", v)) => Ok(OperatingPoint::Sensitivity(num(v)?)),
            Some(("spec", v)) => Ok(OperatingPoint::Specificity(num(v)?)),
            _ => Err(format!("{s:?}: expected youden, sens:X or spec:X")),
        }
    }
}

/// The unit that the bootstrap resamples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Patients (every image of a patient together): needs `patient_id` in the truth.
    #[default]
    Patient,
    /// Images, each on its own: only when the truth cannot say who the patient is.
    Image,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Patient => "patient",
            Unit::Image => "image",
        }
    }
}

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct Options {
    pub bootstrap: usize,
    pub seed: u64,
    pub groups: Vec<String>,
    pub operating_point: OperatingPoint,
    /// confidence level of the intervals
    pub level: f64,
    /// what an uncertain (-1) label becomes
    pub uncertain: UncertainPolicy,
    /// what the bootstrap resamples
    pub unit: Unit,
}

/// One image: its patient, labels, scores and group values.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub patient: String,
    /// binary targets, after the uncertain-label policy
    pub labels: HashMap<String, bool>,
    pub scores: HashMap<String, f64>,
    pub groups: BTreeMap<String, String>,
    /// the truth's "split" ("val" images fit calibration and the operating
    /// point, and are left out of the metrics)
    pub split: Option<String>,
    /// uncertain labels this image had, before the policy
    pub uncertain: usize,
}

/// Which input file a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Predictions,
    Truth,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Predictions => "predictions",
            Source::Truth => "truth",
        })
    }
}

/// Why the inputs cannot be evaluated. Each variant names the step that
/// failed; line numbers are 1-based lines of the input file.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A line of an input file is malformed.
    #[error("{source_file} line {line}: {reason}")]
    ReadLine {
        source_file: Source,
        line: usize,
        reason: String,
    },
    /// A field of a line holds a value of the wrong kind.
    #[error("{source_file} line {line}: field {field}: {reason}")]
    ReadField {
        source_file: Source,
        line: usize,
        field: String,
        reason: String,
    },
    /// Predictions and truth do not match up.
    #[error("matching predictions to truth: {0}")]
    Join(String),
    /// The matched images cannot be evaluated.
    #[error("evaluating: {0}")]
    Evaluate(String),
}

impl EvalError {
    /// The input file the error is about, if any.
    pub fn source_file(&self) -> Option<Source> {
        match self {
            EvalError::ReadLine { source_file, .. } | EvalError::ReadField { source_file, .. } => {
                Some(*source_file)
            }
            _ => None,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A line of an input file: its 1-based line number and its JSON value.
pub type Line = (usize, Json);

/// Match prediction lines to truth lines by id. Predictions: `{"id", "scores": {obs: x}, "kind"?}`;
/// truth: `{"id", "patient_id", "labels": {obs: 1|0|-1|null}, ...group fields}`.
///
/// A label must be 1, 0, -1 (uncertain, then turned into a target by
/// `opts.uncertain`) or null (absent); a score must be a number. Anything
/// else is an error naming the line and the field. Without `patient_id` in
/// a truth line the error says so, unless `opts.unit` is [`Unit::Image`].
pub fn join(
    pred: &[Line],
    truth: &[Line],
    groups: &[String],
    opts: &Options,
) -> Result<Vec<Image>, EvalError> {
    let line_err = |source_file: Source, line: usize, reason: String| EvalError::ReadLine {
        source_file,
        line,
        reason,
    };
    let field_err =
        |source_file: Source, line: usize, field: String, reason: String| EvalError::ReadField {
            source_file,
            line,
            field,
            reason,
        };
    let id_of = |v: &Json, src: Source, line: usize| -> Result<String, EvalError> {
        match v.get("id") {
            Some(Json::String(s)) => Ok(s.clone()),
            Some(Json::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(field_err(
                src,
                line,
                "id".into(),
                format!("{other} is not a string or number"),
            )),
            None => Err(line_err(src, line, "no \"id\"".into())),
        }
    };
    let mut t: HashMap<String, (usize, &Json)> = HashMap::new();
    for (line, v) in truth {
        if let Some((first, _)) = t.insert(id_of(v, Source::Truth, *line)?, (*line, v)) {
            return Err(line_err(
                Source::Truth,
                *line,
                format!("duplicate id (first on line {first})"),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for (pline, p) in pred {
        let pline = *pline;
        let id = id_of(p, Source::Predictions, pline)?;
        if !seen.insert(id.clone()) {
            return Err(line_err(
                Source::Predictions,
                pline,
                format!("duplicate id {id}"),
            ));
        }
        let Some(&(tline, tv)) = t.get(&id) else {
            missing.push(id);
            continue;
        };
        let logit = match p.get("kind") {
            None | Some(Json::Null) => false,
            Some(Json::String(k)) if k == "logit" => true,
            Some(Json::String(k)) if k == "probability" => false,
            Some(other) => {
                return Err(field_err(
                    Source::Predictions,
                    pline,
                    "kind".into(),
                    format!("{other}: expected \"logit\" or \"probability\""),
                ))
            }
        };
        let mut scores = HashMap::new();
        let score_obj = p
            .get("scores")
            .and_then(Json::as_object)
            .ok_or_else(|| line_err(Source::Predictions, pline, "no \"scores\" object".into()))?;
        for (o, x) in score_obj {
            let x = x.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                field_err(
                    Source::Predictions,
                    pline,
                    format!("scores.{o:?}"),
                    format!("{x} is not a number"),
                )
            })?;
            scores.insert(o.clone(), if logit { sigmoid(x) } else { x });
        }
        let label_obj = tv
            .get("labels")
            .and_then(Json::as_object)
            .ok_or_else(|| line_err(Source::Truth, tline, "no \"labels\" object".into()))?;
        let mut labels = HashMap::new();
        let mut uncertain = 0;
        for (o, x) in label_obj {
            if x.is_null() {
                continue; // absent: not mentioned
            }
            let label = x.as_f64().and_then(Label::from_value).ok_or_else(|| {
                field_err(
                    Source::Truth,
                    tline,
                    format!("labels.{o:?}"),
                    format!("{x} is not 1, 0, -1 (uncertain) or null"),
                )
            })?;
            uncertain += usize::from(label == Label::Uncertain);
            if let Some(y) = opts.uncertain.target(label) {
                labels.insert(o.clone(), y);
            }
        }
        let patient = match (opts.unit, tv.get("patient_id")) {
            (Unit::Image, _) => id.clone(),
            (Unit::Patient, Some(Json::String(s))) => s.clone(),
            (Unit::Patient, Some(Json::Number(n))) => n.to_string(),
            (Unit::Patient, None | Some(Json::Null)) => {
                return Err(line_err(
                    Source::Truth,
                    tline,
                    "no \"patient_id\": the bootstrap resamples patients; give each line its patient, or evaluate per image".into(),
                ))
            }
            (Unit::Patient, Some(other)) => {
                return Err(field_err(Source::Truth, tline, "patient_id".into(), format!("{other} is not a string or number")))
            }
        };
        let mut g = BTreeMap::new();
        for name in groups {
            let v = if name == radfm_core::AgeBand::FIELD && tv.get(name).is_none() {
                tv.get("age")
                    .and_then(Json::as_f64)
                    .and_then(radfm_core::AgeBand::of)
                    .map(|b| b.as_str().to_string())
            } else {
                tv.get(name)
                    .filter(|v| !v.is_null())
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            };
            if let Some(v) = v {
                g.insert(name.clone(), v);
            }
        }
        let split = match tv.get("split") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(field_err(
                    Source::Truth,
                    tline,
                    "split".into(),
                    format!("{other} is not a string"),
                ))
            }
        };
        out.push(Image {
            id,
            patient,
            labels,
            scores,
            groups: g,
            split,
            uncertain,
        });
    }
    if !missing.is_empty() {
        return Err(EvalError::Join(format!(
            "{} predictions have no truth line, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        )));
    }
    if out.is_empty() {
        return Err(EvalError::Join("no predictions".into()));
    }
    Ok(out)
}

/// The threshold of an operating point on (labels, scores).
pub fn threshold(labels: &[bool], scores: &[f64], op: OperatingPoint) -> Option<f64> {
    let r = Ranked::new(labels, scores);
    let (p, n) = (r.positives as f64, (r.len() - r.positives) as f64);
    if p == 0.0 || n == 0.0 {
        return None;
    }
    let mut best: Option<(f64, f64)> = None; // (criterion, threshold)
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < r.len() {
        let s = r.scores[i];
        while i < r.len() && r.scores[i] == s {
            if r.labels[i] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let (sens, spec) = (tp as f64 / p, 1.0 - fp as f64 / n);
        let crit = match op {
            OperatingPoint::Youden => Some(sens + spec - 1.0),
            // sensitivity: the highest threshold reaching the target (the first met while descending);
            // specificity: the lowest threshold still reaching it
            OperatingPoint::Sensitivity(t) if sens >= t && best.is_none() => Some(0.0),
            OperatingPoint::Specificity(t) if spec >= t => Some(i as f64),
            _ => None,
        };
        if let Some(c) = crit {
            if best.is_none_or(|b| c > b.0 + 1e-12) {
                best = Some((c, s));
            }
        }
    }
    best.map(|b| b.1)
}

/// All metrics of one observation on the images `idx` (duplicates allowed): the
/// plain definition [`Sorted::metrics`] must agree with.
#[cfg(test)]
fn metrics_on(idx: &[usize], y: &[bool], s: &[f64], thr: Option<f64>) -> [Value; 10] {
    let ly: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
    let ls: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
    let r = Ranked::new(&ly, &ls);
    let conf = thr.map(|t| Confusion::at(&ly, &ls, t));
    let th = |f: fn(&Confusion) -> Value| {
        conf.as_ref()
            .map_or(Value::Undefined("no operating point (one class only)"), f)
    };
    let probs = ls.iter().all(|p| (0.0..=1.0).contains(p));
    let cal = |v: Value| {
        if probs {
            v
        } else {
            Value::Undefined("scores are not probabilities")
        }
    };
    [
        r.auroc(),
        r.auprc(),
        th(Confusion::f1),
        th(Confusion::sensitivity),
        th(Confusion::specificity),
        th(Confusion::ppv),
        th(Confusion::npv),
        cal(brier(&ly, &ls)),
        cal(ece(&ly, &ls, 10, Bins::Uniform)),
        cal(ece(&ly, &ls, 10, Bins::Quantile)),
    ]
}

/// One observation's images sorted once by descending score; every resample
/// is then a vector of multiplicities over this fixed order.
struct Sorted {
    /// image indices (into the evaluated set), by descending score
    order: Vec<usize>,
    scores: Vec<f64>,
    labels: Vec<bool>,
    probs: bool,
}

impl Sorted {
    fn new(idx: &[usize], y: &[bool], s: &[f64]) -> Sorted {
        let mut order = idx.to_vec();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let scores: Vec<f64> = order.iter().map(|&i| s[i]).collect();
        let probs = scores.iter().all(|p| (0.0..=1.0).contains(p));
        Sorted {
            labels: order.iter().map(|&i| y[i]).collect(),
            scores,
            order,
            probs,
        }
    }

    /// All metrics with image `order[k]` counted `w(order[k])` times; the same
    /// values as [`metrics_on`] over the expanded index list, in one or two O(n) passes.
    fn metrics(&self, w: impl Fn(usize) -> u32, thr: Option<f64>) -> [Value; 10] {
        let n = self.order.len();
        let ws: Vec<f64> = self.order.iter().map(|&i| w(i) as f64).collect();
        let (mut p, mut tot) = (0.0, 0.0);
        for k in 0..n {
            tot += ws[k];
            if self.labels[k] {
                p += ws[k];
            }
        }
        let neg = tot - p;
        // one pass over tie groups: ROC area, average precision, counts at the threshold
        let (mut tp, mut fp, mut prev_tp, mut prev_fp) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let (mut area, mut ap) = (0.0f64, 0.0f64);
        let (mut tp_t, mut fp_t) = (0.0f64, 0.0f64);
        let mut k = 0;
        while k < n {
            let sc = self.scores[k];
            while k < n && self.scores[k] == sc {
                if self.labels[k] {
                    tp += ws[k];
                } else {
                    fp += ws[k];
                }
                k += 1;
            }
            if fp > prev_fp || tp > prev_tp {
                area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
                if tp > prev_tp && p > 0.0 {
                    ap += (tp - prev_tp) / p * (tp / (tp + fp));
                }
            }
            if thr.is_some_and(|t| sc >= t) {
                (tp_t, fp_t) = (tp, fp);
            }
            prev_tp = tp;
            prev_fp = fp;
        }
        let one_class = p == 0.0 || neg == 0.0;
        let auroc = if one_class {
            Value::Undefined("only one class present")
        } else {
            Value::Defined(area / (p * neg))
        };
        let auprc = if one_class {
            Value::Undefined(if p == 0.0 {
                "no positive labels"
            } else {
                "only one class present"
            })
        } else {
            Value::Defined(ap)
        };
        let ratio = |a: f64, b: f64, why: &'static str| {
            if b == 0.0 {
                Value::Undefined(why)
            } else {
                Value::Defined(a / b)
            }
        };
        let th = |v: Value| {
            if thr.is_some() {
                v
            } else {
                Value::Undefined("no operating point (one class only)")
            }
        };
        let (fn_t, tn_t) = (p - tp_t, neg - fp_t);
        let f1 = th(ratio(
            2.0 * tp_t,
            2.0 * tp_t + fp_t + fn_t,
            "no positive labels and no positive predictions",
        ));
        let sens = th(ratio(tp_t, p, "no positive labels"));
        let spec = th(ratio(tn_t, neg, "no negative labels"));
        let ppv = th(ratio(tp_t, tp_t + fp_t, "no positive predictions"));
        let npv = th(ratio(tn_t, tn_t + fn_t, "no negative predictions"));
        let (brier, ece_w, ece_m) = if !self.probs {
            let u = Value::Undefined("scores are not probabilities");
            (u.clone(), u.clone(), u)
        } else if tot == 0.0 {
            let u = Value::Undefined("no samples");
            (u.clone(), u.clone(), u)
        } else {
            let mut b = 0.0;
            for k in 0..n {
                let y = f64::from(u8::from(self.labels[k]));
                b += ws[k] * (self.scores[k] - y).powi(2);
            }
            let uniform: Vec<f64> = (1..10).map(|j| j as f64 / 10.0).collect();
            // equal-mass edges: numpy percentiles of the expanded sample, ascending; all
            // 18 needed positions found in one pass from the lowest score up
            let mut mass = Vec::with_capacity(9);
            {
                let targets: Vec<f64> = (1..10).map(|j| j as f64 / 10.0 * (tot - 1.0)).collect();
                let mut positions: Vec<f64> =
                    targets.iter().flat_map(|t| [t.floor(), t.ceil()]).collect();
                positions.sort_by(f64::total_cmp);
                let mut values = Vec::with_capacity(positions.len());
                let (mut c, mut next) = (0.0, 0);
                for k in (0..n).rev() {
                    c += ws[k];
                    while next < positions.len() && c > positions[next] {
                        values.push((positions[next], self.scores[k]));
                        next += 1;
                    }
                }
                while next < positions.len() {
                    values.push((positions[next], self.scores[0]));
                    next += 1;
                }
                let value_at = |pos: f64| {
                    values
                        .iter()
                        .find(|v| v.0 == pos)
                        .map_or(self.scores[0], |v| v.1)
                };
                for t in targets {
                    let (lo, hi) = (t.floor(), t.ceil());
                    let (a, b2) = (value_at(lo), value_at(hi));
                    mass.push(a + (b2 - a) * (t - lo));
                }
            }
            let ece_of = |inner: &[f64]| {
                let mut sp = [0.0f64; 10];
                let mut sy = [0.0f64; 10];
                let mut c = [0.0f64; 10];
                for k in 0..n {
                    if ws[k] == 0.0 {
                        continue;
                    }
                    let bin = inner.partition_point(|&e| e < self.scores[k]);
                    sp[bin] += ws[k] * self.scores[k];
                    sy[bin] += ws[k] * f64::from(u8::from(self.labels[k]));
                    c[bin] += ws[k];
                }
                (0..10)
                    .filter(|&j| c[j] > 0.0)
                    .map(|j| c[j] / tot * (sy[j] / c[j] - sp[j] / c[j]).abs())
                    .sum::<f64>()
            };
            (
                Value::Defined(b / tot),
                Value::Defined(ece_of(&uniform)),
                Value::Defined(ece_of(&mass)),
            )
        };
        [auroc, auprc, f1, sens, spec, ppv, npv, brier, ece_w, ece_m]
    }
}

impl Sorted {
    /// Weighted (true positives, false positives) after each tie group, and the class totals.
    fn cumulative(&self, w: impl Fn(usize) -> u32) -> (Vec<(f64, f64)>, f64, f64) {
        let (mut tp, mut fp) = (0.0, 0.0);
        let mut out = Vec::new();
        let mut k = 0;
        while k < self.order.len() {
            let sc = self.scores[k];
            while k < self.order.len() && self.scores[k] == sc {
                let wk = w(self.order[k]) as f64;
                if self.labels[k] {
                    tp += wk;
                } else {
                    fp += wk;
                }
                k += 1;
            }
            out.push((tp, fp));
        }
        (out, tp, fp)
    }

    /// ROC points (fpr, tpr) with weights, one per tie group, from (0, 0).
    fn roc(&self, w: impl Fn(usize) -> u32) -> Vec<(f64, f64)> {
        let (c, p, n) = self.cumulative(w);
        let mut pts = vec![(0.0, 0.0)];
        if p > 0.0 && n > 0.0 {
            pts.extend(c.iter().map(|&(tp, fp)| (fp / n, tp / p)));
        }
        pts
    }

    /// Precision-recall points (recall, precision) with weights, one per tie group.
    fn pr(&self, w: impl Fn(usize) -> u32) -> Vec<(f64, f64)> {
        let (c, p, _) = self.cumulative(w);
        if p == 0.0 {
            return Vec::new();
        }
        c.iter()
            .filter(|(tp, fp)| tp + fp > 0.0)
            .map(|&(tp, fp)| (tp / p, tp / (tp + fp)))
            .collect()
    }
}

/// TPR at `f` on a ROC polyline (linear between points; the highest TPR at a vertical step).
fn tpr_at(pts: &[(f64, f64)], f: f64) -> f64 {
    let mut best = 0.0f64;
    for w in pts.windows(2) {
        let ((f0, t0), (f1, t1)) = (w[0], w[1]);
        if f0 <= f && f <= f1 {
            let t = if f1 > f0 {
                t0 + (t1 - t0) * (f - f0) / (f1 - f0)
            } else {
                t1
            };
            best = best.max(t);
        }
    }
    best
}

/// Curves per observation for the HTML report: ROC with a bootstrap band of TPR on a
/// fixed FPR grid (patient resamples), precision-recall, and a 10-bin reliability diagram.
pub fn curves(images: &[Image], opts: &Options) -> BTreeMap<String, crate::html::Curves> {
    let images: Vec<&Image> = images.iter().filter(|i| !is_val(i)).collect();
    let observations: BTreeSet<String> = images
        .iter()
        .flat_map(|i| {
            i.scores
                .keys()
                .filter(|o| i.labels.contains_key(*o))
                .cloned()
        })
        .collect();
    let patients: Vec<&str> = images.iter().map(|i| i.patient.as_str()).collect();
    let groups = by_patient(&patients);
    let grid: Vec<f64> = (0..=50).map(|k| k as f64 / 50.0).collect();
    let mut out = BTreeMap::new();
    for o in observations {
        let mut idx = Vec::new();
        let (mut y, mut s) = (vec![false; images.len()], vec![0.0; images.len()]);
        for (k, im) in images.iter().enumerate() {
            if let (Some(&l), Some(&x)) = (im.labels.get(&o), im.scores.get(&o)) {
                idx.push(k);
                y[k] = l;
                s[k] = x;
            }
        }
        let st = Sorted::new(&idx, &y, &s);
        let roc = st.roc(|_| 1);
        // ROC and PR bands from the same (up to 200) patient resamples
        let b = opts.bootstrap.min(200);
        let rgrid: Vec<f64> = (1..=50).map(|k| k as f64 / 50.0).collect();
        let per: Vec<(Vec<f64>, Vec<f64>)> = (0..b)
            .into_par_iter()
            .map(|r| {
                let pick = draw(&groups, images.len(), opts.seed, r, 7);
                let rpts = st.roc(|i| pick[i]);
                let tpr: Vec<f64> = grid.iter().map(|&f| tpr_at(&rpts, f)).collect();
                // the highest precision at recall >= rc: suffix maxima, one pass (recall rises along pts)
                let pts = st.pr(|i| pick[i]);
                let mut suffix = vec![0.0f64; pts.len() + 1];
                for k in (0..pts.len()).rev() {
                    suffix[k] = suffix[k + 1].max(pts[k].1);
                }
                let mut k = 0;
                let prec: Vec<f64> = rgrid
                    .iter()
                    .map(|&rc| {
                        while k < pts.len() && pts[k].0 < rc - 1e-12 {
                            k += 1;
                        }
                        suffix[k]
                    })
                    .collect();
                (tpr, prec)
            })
            .collect();
        let band_of =
            |xs: &[f64], pick: fn(&(Vec<f64>, Vec<f64>)) -> &Vec<f64>| -> Vec<(f64, f64, f64)> {
                if per.is_empty() {
                    return Vec::new();
                }
                xs.iter()
                    .enumerate()
                    .map(|(g, &x)| {
                        let mut v: Vec<f64> = per.iter().map(|t| pick(t)[g]).collect();
                        v.sort_by(f64::total_cmp);
                        (x, percentile(&v, 0.025), percentile(&v, 0.975))
                    })
                    .collect()
            };
        let band = band_of(&grid, |t| &t.0);
        let pr_band = band_of(&rgrid, |t| &t.1);
        let pr = st.pr(|_| 1);
        // reliability (equal-width bins)
        let mut reliability = Vec::new();
        if st.probs {
            let mut acc = [(0.0f64, 0.0f64, 0usize); 10];
            for (k, &p) in st.scores.iter().enumerate() {
                let b = ((p * 10.0).ceil() as usize).clamp(1, 10) - 1;
                acc[b].0 += p;
                acc[b].1 += f64::from(u8::from(st.labels[k]));
                acc[b].2 += 1;
            }
            reliability = acc
                .iter()
                .filter(|a| a.2 > 0)
                .map(|a| (a.0 / a.2 as f64, a.1 / a.2 as f64, a.2))
                .collect();
        }
        out.insert(
            o,
            crate::html::Curves {
                roc,
                roc_band: band,
                pr,
                pr_band,
                reliability,
            },
        );
    }
    out
}

fn cell(v: &Value, samples: &[f64], resamples: usize, level: f64) -> Cell {
    Cell::new(v, interval(samples.to_vec(), resamples, level))
}

/// Bootstrap resample `r` of stream `stream` (one per use, so that draws for
/// different purposes are independent): patient multiplicities over `n`
/// images, from a generator seeded by (seed, stream, r) alone, so that the
/// result does not depend on the thread count.
fn draw(groups: &[Vec<usize>], n: usize, seed: u64, r: usize, stream: u64) -> Vec<u32> {
    resample_counts(groups, n, splitmix64(seed ^ splitmix64(r as u64 + stream)))
}

/// The version of `metrics.json`'s layout; raised when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 2;

/// Where the operating points come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThresholdSource {
    /// chosen on the validation images and applied to the evaluated ones
    Validation,
    /// chosen on the evaluated images themselves (no validation split): optimistic
    Evaluated,
}

impl ThresholdSource {
    fn as_str(self) -> &'static str {
        match self {
            ThresholdSource::Validation => "validation",
            ThresholdSource::Evaluated => "evaluated",
        }
    }
}

/// The operating point of each observation.
struct Thresholds {
    source: ThresholdSource,
    /// the point estimate's threshold per observation
    point: BTreeMap<String, Option<f64>>,
    /// the pooled (micro) problem's threshold, when chosen on validation
    micro: Option<f64>,
    /// per bootstrap resample, with a validation split: the thresholds
    /// re-chosen on that resample's draw of validation patients, so that the
    /// intervals include the threshold's own variance
    resampled: Vec<BTreeMap<String, Option<f64>>>,
}

impl Thresholds {
    /// With validation images, thresholds are chosen on them (and re-chosen
    /// in every resample); without, on `evaluated` (held fixed in resamples).
    fn choose(
        val: &[&Image],
        evaluated: &[&Image],
        observations: &[String],
        opts: &Options,
    ) -> Thresholds {
        let on = |set: &[&Image],
                  counts: Option<&[u32]>|
         -> (BTreeMap<String, Option<f64>>, Option<f64>) {
            let (mut py, mut ps) = (Vec::new(), Vec::new());
            let per = observations
                .iter()
                .map(|o| {
                    let (mut y, mut s) = (Vec::new(), Vec::new());
                    for (k, i) in set.iter().enumerate() {
                        if let (Some(&l), Some(&x)) = (i.labels.get(o), i.scores.get(o)) {
                            for _ in 0..counts.map_or(1, |c| c[k]) {
                                y.push(l);
                                s.push(x);
                            }
                        }
                    }
                    let t = threshold(&y, &s, opts.operating_point);
                    py.extend(y);
                    ps.extend(s);
                    (o.clone(), t)
                })
                .collect();
            (per, threshold(&py, &ps, opts.operating_point))
        };
        if val.is_empty() {
            return Thresholds {
                source: ThresholdSource::Evaluated,
                point: on(evaluated, None).0,
                micro: None,
                resampled: Vec::new(),
            };
        }
        let (point, micro) = on(val, None);
        let patients: Vec<&str> = val.iter().map(|i| i.patient.as_str()).collect();
        let groups = by_patient(&patients);
        let resampled = (0..opts.bootstrap)
            .into_par_iter()
            .map(|r| {
                let pick = draw(&groups, val.len(), opts.seed, r, 101);
                on(val, Some(&pick)).0
            })
            .collect();
        Thresholds {
            source: ThresholdSource::Validation,
            point,
            micro,
            resampled,
        }
    }

    /// The threshold of observation `o` in bootstrap resample `r`.
    fn at(&self, r: usize, o: &str) -> Option<f64> {
        match self.resampled.get(r) {
            Some(t) => t[o],
            None => self.point[o],
        }
    }
}

/// Evaluate one set of images: per observation, every metric with its CI.
fn evaluate_set(
    images: &[&Image],
    observations: &[String],
    thresholds: &Thresholds,
    opts: &Options,
    seed: u64,
    micro: bool,
) -> (BTreeMap<String, ObservationReport>, Option<MicroReport>) {
    let patients: Vec<&str> = images.iter().map(|i| i.patient.as_str()).collect();
    let groups = by_patient(&patients);
    let mut out = BTreeMap::new();
    // per observation: the images that have both a label and a score
    let cols: Vec<(Vec<usize>, Vec<bool>, Vec<f64>)> = observations
        .iter()
        .map(|o| {
            let mut idx = Vec::new();
            let (mut y, mut s) = (vec![false; images.len()], vec![0.0; images.len()]);
            for (k, im) in images.iter().enumerate() {
                if let (Some(&l), Some(&x)) = (im.labels.get(o), im.scores.get(o)) {
                    idx.push(k);
                    y[k] = l;
                    s[k] = x;
                }
            }
            (idx, y, s)
        })
        .collect();
    let sorted: Vec<Sorted> = cols
        .iter()
        .map(|(idx, y, s)| Sorted::new(idx, y, s))
        .collect();
    let point: Vec<[Value; 10]> = observations
        .iter()
        .zip(&sorted)
        .map(|(o, st)| st.metrics(|_| 1, thresholds.point[o]))
        .collect();
    // micro average: every (image, observation) pair pooled into one problem;
    // entry e belongs to image e / nobs
    let nobs = observations.len();
    let pooled = micro.then(|| {
        let (mut idx, mut y, mut s) = (
            Vec::new(),
            vec![false; images.len() * nobs],
            vec![0.0; images.len() * nobs],
        );
        for (k, (cidx, cy, cs)) in cols.iter().enumerate() {
            for &i in cidx {
                let e = i * nobs + k;
                idx.push(e);
                y[e] = cy[i];
                s[e] = cs[i];
            }
        }
        let thr = match thresholds.source {
            ThresholdSource::Validation => thresholds.micro,
            ThresholdSource::Evaluated => {
                let (ty, ts): (Vec<bool>, Vec<f64>) = idx.iter().map(|&e| (y[e], s[e])).unzip();
                threshold(&ty, &ts, opts.operating_point)
            }
        };
        (Sorted::new(&idx, &y, &s), thr)
    });
    let micro_point = pooled.as_ref().map(|(st, thr)| st.metrics(|_| 1, *thr));
    // bootstrap: resample r draws patients from its own generator (seed, r), so the
    // result does not depend on the thread count; all observations share the draw
    let per_resample: Vec<Vec<[f64; 10]>> = (0..opts.bootstrap)
        .into_par_iter()
        .map(|r| {
            let pick = draw(&groups, images.len(), seed, r, 0);
            let v: Vec<[f64; 10]> = observations
                .iter()
                .zip(&sorted)
                .map(|(o, st)| {
                    st.metrics(|i| pick[i], thresholds.at(r, o))
                        .map(|v| v.or_nan())
                })
                .collect();
            v
        })
        .collect();
    let samples: Vec<Vec<Vec<f64>>> = (0..observations.len())
        .map(|k| {
            (0..10)
                .map(|j| per_resample.iter().map(|r| r[k][j]).collect())
                .collect()
        })
        .collect();
    for (k, o) in observations.iter().enumerate() {
        let (idx, y, _) = &cols[k];
        let pos = idx.iter().filter(|&&i| y[i]).count();
        let metrics = METRICS
            .iter()
            .enumerate()
            .map(|(j, name)| {
                (
                    *name,
                    cell(&point[k][j], &samples[k][j], opts.bootstrap, opts.level),
                )
            })
            .collect();
        out.insert(
            o.clone(),
            ObservationReport {
                metrics,
                n: idx.len(),
                positives: pos,
                prevalence: (!idx.is_empty()).then(|| pos as f64 / idx.len() as f64),
                threshold: thresholds.point[o],
            },
        );
    }
    // micro averages are point values (like macro): bootstrapping the pooled
    // problem would double the cost of the whole evaluation
    let micro_map = micro_point.map(|mp| MicroReport {
        metrics: METRICS
            .iter()
            .zip(&mp)
            .map(|(name, v)| (*name, Cell::point(v)))
            .collect(),
        threshold: pooled.as_ref().and_then(|p| p.1),
    });
    (out, micro_map)
}

fn is_val(i: &Image) -> bool {
    matches!(i.split.as_deref(), Some("val" | "valid" | "validation"))
}

/// Temperature and Platt scaling per observation, fitted on `val`, judged on `test`.
fn calibration(
    val: &[&Image],
    test: &[&Image],
    observations: &[String],
) -> BTreeMap<String, CalibrationEntry> {
    use crate::calibrate::{apply_platt, apply_temperature, fit_platt, fit_temperature};
    let mut out = BTreeMap::new();
    for o in observations {
        let col = |set: &[&Image]| -> (Vec<bool>, Vec<f64>) {
            set.iter()
                .filter_map(|i| Some((*i.labels.get(o)?, *i.scores.get(o)?)))
                .unzip()
        };
        let (vy, vp) = col(val);
        let (ty, tp) = col(test);
        let probs = vp.iter().chain(&tp).all(|p| (0.0..=1.0).contains(p));
        if !probs || vy.iter().all(|&l| l) || vy.iter().all(|&l| !l) || ty.is_empty() {
            out.insert(
                o.clone(),
                CalibrationEntry::Skipped(Skipped {
                    reason: "needs probabilities and both classes in the validation split",
                }),
            );
            continue;
        }
        let t = fit_temperature(&vp, &vy);
        let ab = fit_platt(&vp, &vy);
        let judge = |p: &[f64]| Judged {
            ece: ece(&ty, p, 10, Bins::Uniform).get(),
            ece_mass: ece(&ty, p, 10, Bins::Quantile).get(),
            brier: brier(&ty, p).get(),
        };
        out.insert(
            o.clone(),
            CalibrationEntry::Fitted(CalibrationFit {
                temperature: t,
                platt: Platt { a: ab.0, b: ab.1 },
                fitted_on: vy.len(),
                judged_on: ty.len(),
                before: judge(&tp),
                after_temperature: judge(&apply_temperature(&tp, t)),
                after_platt: judge(&apply_platt(&tp, ab)),
            }),
        );
    }
    out
}

/// Run the evaluation. `compare`: a second model's images (same ids) for DeLong.
/// When the truth marks a validation split (`"split": "val"`), calibration is
/// fitted there and every metric is computed on the other images.
pub fn evaluate(
    images: &[Image],
    compare: Option<&[Image]>,
    opts: &Options,
) -> Result<EvalReport, EvalError> {
    let val: Vec<&Image> = images.iter().filter(|i| is_val(i)).collect();
    let owned: Vec<Image>;
    let images: &[Image] = if val.is_empty() {
        images
    } else {
        owned = images.iter().filter(|i| !is_val(i)).cloned().collect();
        &owned
    };
    if images.is_empty() {
        return Err(EvalError::Evaluate(
            "every image is in the validation split; nothing to evaluate".into(),
        ));
    }
    let mut observations = scored_observations(images.iter());
    observations.retain(|o| {
        o != Observation::NoFinding.as_str() || images.iter().any(|i| i.scores.contains_key(o))
    });
    if observations.is_empty() {
        return Err(EvalError::Evaluate(
            "no observation has both a score and a label".into(),
        ));
    }
    let all: Vec<&Image> = images.iter().collect();
    let thresholds = Thresholds::choose(&val, &all, &observations, opts);
    let (overall, micro) = evaluate_set(&all, &observations, &thresholds, opts, opts.seed, true);
    // macro averages of the point values
    let mut macro_ = BTreeMap::new();
    for name in METRICS {
        let v: Vec<f64> = overall
            .values()
            .filter_map(|m| m.metric(name)?.value)
            .collect();
        macro_.insert(
            name,
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
        );
    }
    // subgroups and gaps
    let mut subgroups = BTreeMap::new();
    let mut gaps = BTreeMap::new();
    for g in &opts.groups {
        let values: BTreeSet<&str> = images
            .iter()
            .filter_map(|i| i.groups.get(g).map(String::as_str))
            .collect();
        let mut per: BTreeMap<String, BTreeMap<String, ObservationReport>> = BTreeMap::new();
        for (k, v) in values.iter().enumerate() {
            let sub: Vec<&Image> = images
                .iter()
                .filter(|i| i.groups.get(g).map(String::as_str) == Some(*v))
                .collect();
            per.insert(
                v.to_string(),
                evaluate_set(
                    &sub,
                    &observations,
                    &thresholds,
                    opts,
                    opts.seed + 1 + k as u64,
                    false,
                )
                .0,
            );
        }
        // AUROC gap between the best and the worst subgroup, with a CI that allows for the pair
        // having been chosen from the data, and Holm's correction across observations
        let mut gobs = BTreeMap::new();
        let mut tests: Vec<(String, f64)> = Vec::new();
        for o in &observations {
            let pts: Vec<(&str, f64)> = values
                .iter()
                .filter_map(|v| Some((*v, per[*v].get(o)?.metric("auroc")?.value?)))
                .collect();
            if pts.len() < 2 {
                continue;
            }
            let best = pts.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
            let worst = pts.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
            let pairs = pts.len() * (pts.len() - 1) / 2;
            let gap = gap_ci(images, g, o, best.0, worst.0, pairs, opts);
            if let Some(gp) = &gap {
                tests.push((o.clone(), gp.p));
            }
            gobs.insert(
                o.clone(),
                GapReport {
                    metric: "auroc",
                    best: best.0.to_string(),
                    worst: worst.0.to_string(),
                    gap: best.1 - worst.1,
                    ci: gap.as_ref().map(|gp| [gp.lo, gp.hi]),
                    ci_level: 1.0 - (1.0 - opts.level) / pairs as f64,
                    pairs,
                    p: gap.as_ref().map(|gp| gp.p),
                    p_holm: None,
                    flag: false,
                },
            );
        }
        for (o, p_holm) in holm(&tests) {
            let e = gobs.get_mut(&o).expect("tested observations have a gap");
            e.p_holm = Some(p_holm);
            e.flag = p_holm < 1.0 - opts.level;
        }
        subgroups.insert(g.clone(), per);
        gaps.insert(g.clone(), gobs);
    }
    let calibration = if val.is_empty() {
        Calibration::Skipped(Skipped {
            reason: "no validation split: mark images with \"split\": \"val\" in the truth to fit temperature and Platt scaling",
        })
    } else {
        let test: Vec<&Image> = images.iter().collect();
        Calibration::PerObservation(calibration(&val, &test, &observations))
    };
    let patients: Vec<&str> = images.iter().map(|i| i.patient.as_str()).collect();
    let mut report = EvalReport {
        schema_version: SCHEMA_VERSION,
        n_images: images.len(),
        n_patients: by_patient(&patients).len(),
        bootstrap: BootstrapInfo {
            resamples: opts.bootstrap,
            seed: opts.seed,
            unit: opts.unit.as_str(),
            interval: "percentile",
            level: opts.level,
        },
        operating_point: format!("{:?}", opts.operating_point),
        threshold_source: thresholds.source.as_str(),
        labels: LabelInfo {
            uncertain: opts.uncertain,
            n_uncertain: images.iter().map(|i| i.uncertain).sum(),
        },
        observations: overall,
        macro_,
        micro,
        subgroups,
        subgroup_gaps: gaps,
        calibration,
        n_validation_images: val.len(),
        compare: None,
        runs: None,
        main_run: None,
    };
    if let Some(other) = compare {
        let by_id: HashMap<&str, &Image> = other.iter().map(|i| (i.id.as_str(), i)).collect();
        let mut cmp = BTreeMap::new();
        for o in &observations {
            let mut y = Vec::new();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut pats = Vec::new();
            for im in images {
                if let (Some(&l), Some(&sa), Some(sb)) = (
                    im.labels.get(o),
                    im.scores.get(o),
                    by_id.get(im.id.as_str()).and_then(|x| x.scores.get(o)),
                ) {
                    y.push(l);
                    a.push(sa);
                    b.push(*sb);
                    pats.push(im.patient.as_str());
                }
            }
            let Some(d) = delong(&y, &a, &b) else {
                cmp.insert(
                    o.clone(),
                    CompareEntry::Skipped(Skipped {
                        reason: "fewer than two images of each class",
                    }),
                );
                continue;
            };
            let mut entry = Comparison {
                delong: d,
                difference_ci: None,
            };
            // patient-bootstrap CI of the AUROC difference, A - B
            {
                let idx: Vec<usize> = (0..y.len()).collect();
                let (sa, sb) = (Sorted::new(&idx, &y, &a), Sorted::new(&idx, &y, &b));
                let groups = by_patient(&pats);
                let d: Vec<f64> = (0..opts.bootstrap)
                    .into_par_iter()
                    .filter_map(|r| {
                        let pick = draw(&groups, y.len(), opts.seed, r, 31);
                        let ua = sa.metrics(|i| pick[i], None)[0].get()?;
                        let ub = sb.metrics(|i| pick[i], None)[0].get()?;
                        Some(ua - ub)
                    })
                    .collect();
                entry.difference_ci =
                    interval(d, opts.bootstrap, opts.level).map(|(lo, hi)| [lo, hi]);
            }
            cmp.insert(o.clone(), CompareEntry::Compared(entry));
        }
        report.compare = Some(cmp);
    }
    Ok(report)
}

/// The observations that some image both scores and labels, sorted.
fn scored_observations<'a>(images: impl Iterator<Item = &'a Image>) -> Vec<String> {
    images
        .flat_map(|i| {
            i.scores
                .keys()
                .filter(|o| i.labels.contains_key(*o))
                .cloned()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Metrics per run (label-efficiency or shift views): for each run, every
/// observation's metrics with CIs, in the given run order.
pub fn per_run(runs: &[(String, Vec<Image>)], opts: &Options) -> RunsReport {
    let mut out = BTreeMap::new();
    for (k, (name, imgs)) in runs.iter().enumerate() {
        let val: Vec<&Image> = imgs.iter().filter(|i| is_val(i)).collect();
        let imgs: Vec<&Image> = imgs.iter().filter(|i| !is_val(i)).collect();
        let observations = scored_observations(imgs.iter().copied());
        let thresholds = Thresholds::choose(&val, &imgs, &observations, opts);
        out.insert(
            name.clone(),
            evaluate_set(
                &imgs,
                &observations,
                &thresholds,
                opts,
                opts.seed + 1000 + k as u64,
                false,
            )
            .0,
        );
    }
    let repeats = repeat_spread(&out);
    RunsReport {
        order: runs.iter().map(|r| r.0.clone()).collect(),
        metrics: out,
        repeats,
    }
}

/// The draw a run repeats: `probe-10%-r3` -> `probe-10%`.
pub(crate) fn draw_of(run: &str) -> Option<&str> {
    let (base, i) = run.rsplit_once("-r")?;
    (!i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

/// AUROC spread over the repeats of each draw with two or more of them.
fn repeat_spread(
    runs: &BTreeMap<String, BTreeMap<String, ObservationReport>>,
) -> BTreeMap<String, BTreeMap<String, crate::report::Spread>> {
    let mut values: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for (run, obs) in runs {
        let Some(draw) = draw_of(run) else { continue };
        for (o, r) in obs {
            if let Some(v) = r.metrics.get("auroc").and_then(|m| m.value) {
                values
                    .entry(draw)
                    .or_default()
                    .entry(o)
                    .or_default()
                    .push(v);
            }
        }
    }
    values
        .into_iter()
        .map(|(draw, obs)| {
            let spread = obs
                .into_iter()
                .filter(|(_, v)| v.len() >= 2)
                .map(|(o, v)| {
                    let n = v.len() as f64;
                    let mean = v.iter().sum::<f64>() / n;
                    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
                    let s = crate::report::Spread {
                        n: v.len(),
                        mean,
                        sd,
                        min: v.iter().copied().fold(f64::INFINITY, f64::min),
                        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    };
                    (o.to_string(), s)
                })
                .collect::<BTreeMap<_, _>>();
            (draw.to_string(), spread)
        })
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

/// The best-minus-worst subgroup AUROC gap under the patient bootstrap.
struct Gap {
    lo: f64,
    hi: f64,
    /// two-sided bootstrap p-value for "no gap", Bonferroni-adjusted over the pairs
    p: f64,
}

/// Bootstrap interval of AUROC(best group) - AUROC(worst group), resampling patients overall.
///
/// The best and worst groups are picked from the data, so a plain 95% interval of their
/// difference is too optimistic (with four groups of equal AUROC it excludes 0 far more often
/// than 5% of the time). The interval is therefore simultaneous over all `pairs` = k(k-1)/2
/// pairs of groups (Bonferroni: level 1 - alpha / pairs), which keeps its coverage whichever
/// pair is picked. `p` is the matching p-value: the adjusted interval excludes 0 when
/// `p` < alpha.
fn gap_ci(
    images: &[Image],
    g: &str,
    o: &str,
    best: &str,
    worst: &str,
    pairs: usize,
    opts: &Options,
) -> Option<Gap> {
    let pats: Vec<&str> = images.iter().map(|i| i.patient.as_str()).collect();
    let groups = by_patient(&pats);
    let auc_of = |idx: &[usize], val: &str| -> Option<f64> {
        let (y, s): (Vec<bool>, Vec<f64>) = idx
            .iter()
            .map(|&i| &images[i])
            .filter(|im| im.groups.get(g).map(String::as_str) == Some(val))
            .filter_map(|im| Some((*im.labels.get(o)?, *im.scores.get(o)?)))
            .unzip();
        Ranked::new(&y, &s).auroc().get()
    };
    let diffs = resample_values(&groups, opts.bootstrap, opts.seed ^ 0x5eed, |idx| {
        Some(auc_of(idx, best)? - auc_of(idx, worst)?)
    });
    let defined: Vec<f64> = diffs.iter().copied().filter(|v| v.is_finite()).collect();
    let level = 1.0 - (1.0 - opts.level) / pairs as f64;
    let (lo, hi) = interval(diffs, opts.bootstrap, level)?;
    let n = defined.len() as f64;
    let at_most_0 = defined.iter().filter(|&&d| d <= 0.0).count() as f64;
    let at_least_0 = defined.iter().filter(|&&d| d >= 0.0).count() as f64;
    let p = (2.0 * pairs as f64 * at_most_0.min(at_least_0) / n).min(1.0);
    Some(Gap { lo, hi, p })
}

/// Holm's step-down adjustment of (name, p) pairs: returns (name, adjusted p), which
/// controls the family-wise error rate over all the tests given.
fn holm(tests: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut order: Vec<usize> = (0..tests.len()).collect();
    order.sort_by(|&a, &b| tests[a].1.total_cmp(&tests[b].1));
    let m = tests.len();
    let mut running = 0.0f64;
    order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            running = running.max(((m - rank) as f64 * tests[i].1).min(1.0));
            (tests[i].0.clone(), running)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn repeats_of_a_draw_report_their_spread() {
        assert_eq!(draw_of("probe-10%-r3"), Some("probe-10%"));
        assert_eq!(draw_of("probe-5shot-r0"), Some("probe-5shot"));
        assert_eq!(draw_of("probe-100%"), None);
        assert_eq!(draw_of("run-rx"), None);
        let cell = |v: f64| {
            let mut m = BTreeMap::new();
            m.insert(
                "auroc",
                crate::report::Cell {
                    value: Some(v),
                    ci: None,
                    reason: None,
                },
            );
            ObservationReport {
                metrics: m,
                n: 10,
                positives: 3,
                prevalence: None,
                threshold: None,
            }
        };
        let mut runs = BTreeMap::new();
        for (run, v) in [
            ("p-1%-r0", 0.6),
            ("p-1%-r1", 0.7),
            ("p-1%-r2", 0.8),
            ("p-100%", 0.9),
        ] {
            runs.insert(
                run.to_string(),
                BTreeMap::from([("Edema".to_string(), cell(v))]),
            );
        }
        let s = repeat_spread(&runs);
        assert_eq!(s.len(), 1, "{s:?}");
        let e = &s["p-1%"]["Edema"];
        assert_eq!((e.n, e.min, e.max), (3, 0.6, 0.8));
        assert!(
            (e.mean - 0.7).abs() < 1e-12 && (e.sd - 0.1).abs() < 1e-12,
            "{e:?}"
        );
    }

    #[test]
    fn sorted_once_equals_resorting_every_resample() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 300;
        let y: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.3)).collect();
        // probabilities on a coarse grid, so that ties are common
        let s: Vec<f64> = y
            .iter()
            .map(|&l| {
                ((rng.gen_range(0.0..0.7) + if l { 0.3 } else { 0.0 }) * 20.0f64).round() / 20.0
            })
            .collect();
        let idx: Vec<usize> = (0..n).collect();
        let st = Sorted::new(&idx, &y, &s);
        for round in 0..20 {
            let w: Vec<u32> = (0..n).map(|_| rng.gen_range(0..3)).collect();
            let expanded: Vec<usize> = idx
                .iter()
                .flat_map(|&i| std::iter::repeat_n(i, w[i] as usize))
                .collect();
            let thr = Some(0.5);
            let a = st.metrics(|i| w[i], thr);
            let b = metrics_on(&expanded, &y, &s, thr);
            for (j, (x, z)) in a.iter().zip(&b).enumerate() {
                match (x.get(), z.get()) {
                    (Some(x), Some(z)) => assert!(
                        (x - z).abs() < 1e-12,
                        "round {round} metric {}: {x} vs {z}",
                        METRICS[j]
                    ),
                    (None, None) => {}
                    _ => panic!("round {round} metric {}: {x:?} vs {z:?}", METRICS[j]),
                }
            }
        }
    }

    #[test]
    fn holm_step_down() {
        let t = |v: &[f64]| {
            let named: Vec<(String, f64)> = v
                .iter()
                .enumerate()
                .map(|(i, &p)| (i.to_string(), p))
                .collect();
            let mut out = holm(&named);
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out.into_iter().map(|x| x.1).collect::<Vec<f64>>()
        };
        // hand-worked: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06,
        // 0.04, then made monotone: 0.02, 0.03, 0.06, 0.06
        let got = t(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(t(&[0.5, 0.9]), vec![1.0, 1.0]);
        assert!(t(&[]).is_empty());
    }

    #[test]
    fn operating_points() {
        let y = [false, false, true, false, true, true];
        let s = [0.1, 0.2, 0.3, 0.4, 0.8, 0.9];
        assert_eq!(threshold(&y, &s, OperatingPoint::Youden), Some(0.8));
        assert_eq!(
            threshold(&y, &s, OperatingPoint::Sensitivity(1.0)),
            Some(0.3)
        );
        assert_eq!(
            threshold(&y, &s, OperatingPoint::Specificity(1.0)),
            Some(0.8)
        );
        assert!("sens:1.5".parse::<OperatingPoint>().is_err());
        assert_eq!(
            "spec:0.9".parse::<OperatingPoint>(),
            Ok(OperatingPoint::Specificity(0.9))
        );
    }
}
