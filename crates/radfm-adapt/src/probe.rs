//! Linear probes on frozen embeddings: one L2 logistic regression per
//! observation, C chosen on validation rows, at fractions of the training
//! patients or k shots per class, repeated with their own seeds.
//!
//! - Labels: an image whose report was labelled has 1 (positive), 0
//!   (negative), -1 (uncertain, resolved by the uncertainty policy) for the
//!   observations its report mentions; one it does not mention counts as
//!   negative (CheXpert's convention for blanks). An image without a labelled
//!   report has no labels and is not used for training or selection.
//! - C: a fixed value, or a sweep of [`C_GRID`] with warm starts from strong
//!   to weak regularisation, picking per observation the best validation
//!   AUROC (log-loss when validation has one class only; ties go to the
//!   smaller C). Validation is the `val` split, or, without one, a
//!   patient-level 10% of the training patients, which are then not trained
//!   on (for fixed C as well, so that both see the same rows).
//! - Fractions subsample training *patients*; shots draw k positive and k
//!   negative patients per observation. Every draw is seeded from `seed`,
//!   the run and the repeat, so a run is deterministic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use radfm_core::label::{Label, UncertainPolicy};

use crate::logistic::{balanced_weights, fit, Features, FitError, Model, Rows, Settings};

/// The C sweep: 17 points, every half decade from 1e-4 to 1e4. DINOv2's
/// linear evaluation sweeps 45 points over 1e-6 to 1e5; on unit-scale
/// embeddings (what ViT encoders give, and what `--standardize` makes) C below
/// 1e-4 shrinks every probe to the base rate and C above 1e4 is the
/// unregularised fit, so the ends add nothing, and a half decade is finer
/// than the steps at which the validation AUROC of a probe moves.
pub const C_GRID: [f64; 17] = [
    1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2, 3.162e-2, 1e-1, 3.162e-1, 1.0, 3.162, 10.0, 31.62, 100.0,
    316.2, 1e3, 3162.0, 1e4,
];

/// The gradient tolerance of the C sweep's fits, scikit-learn's default
/// `tol` on the same scaled objective (the chosen C is refitted to
/// [`Settings::new`]'s).
pub const SWEEP_TOL: f64 = 1e-4;

/// The row metadata a probe needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub patient: String,
    pub split: Option<String>,
    /// None: no labelled report (not used for training)
    pub labels: Option<BTreeMap<String, i8>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CChoice {
    Auto,
    Fixed(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassWeight {
    None,
    Balanced,
}

/// One draw of training patients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// this fraction of the training patients (1 = all)
    Fraction(f64),
    /// k positive and k negative patients per observation
    Shots(usize),
}

impl Draw {
    /// `probe-10%`, `probe-100%`, `probe-0.5%`, `probe-5shot`.
    pub fn name(self) -> String {
        match self {
            Draw::Fraction(f) => {
                let pct = f * 100.0;
                if (pct - pct.round()).abs() < 1e-9 {
                    format!("probe-{}%", pct.round() as i64)
                } else {
                    format!("probe-{pct}%")
                }
            }
            Draw::Shots(k) => format!("probe-{k}shot"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub observations: Vec<String>,
    pub c: CChoice,
    pub draws: Vec<Draw>,
    pub repeats: usize,
    pub seed: u64,
    pub standardize: bool,
    pub class_weight: ClassWeight,
    pub uncertain: UncertainPolicy,
}

/// One observation's probe in one run.
#[derive(Debug, Clone, Serialize)]
pub struct ObservationReport {
    pub observation: String,
    #[serde(rename = "C", skip_serializing_if = "Option::is_none")]
    pub c: Option<f64>,
    /// (C, validation AUROC or log-loss) for each C tried
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_by: Option<&'static str>,
    pub n_train: usize,
    pub n_positive: usize,
    pub n_val: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// the final model's threshold of greatest Youden's J on the validation
    /// rows (none when they hold one class only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<radfm_eval::metrics::OperatingPoint>,
    #[serde(skip)]
    pub model: Option<Model>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    #[serde(rename = "C")]
    pub c: f64,
    /// L-BFGS iterations of this fit (warm-started from the previous C)
    pub iterations: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_auroc: Option<f64>,
    pub val_logloss: f64,
}

/// One run: a draw and a repeat.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run: String,
    pub draw: String,
    pub repeat: usize,
    pub seed: u64,
    pub train_patients: usize,
    pub validation: &'static str,
    pub observations: Vec<ObservationReport>,
}

/// A prediction line: `radfm evaluate`'s PRED format.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub id: String,
    pub scores: BTreeMap<String, f64>,
    pub run: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Fit(#[from] FitError),
    #[error("probe: {0}")]
    Input(String),
}

/// A run's name: the draw's, with `-r<i>` for repeats after the first.
pub fn run_name(draw: Draw, repeat: usize, repeats: usize) -> String {
    if repeats > 1 {
        format!("{}-r{repeat}", draw.name())
    } else {
        draw.name()
    }
}

fn derive_seed(seed: u64, what: &str) -> u64 {
    // FNV-1a over the seed and a label: stable across platforms and versions
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in what.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The binary target of `item` for `obs`, under `policy`.
fn target(item: &Item, obs: &str, policy: UncertainPolicy) -> Option<bool> {
    label_target(item.labels.as_ref()?, obs, policy)
}

/// The binary target of a labelled image for `obs`: an unmentioned observation
/// is negative, an uncertain one follows `policy`; None when it is left out.
/// The rule every adaptation uses (probes here, `radfm finetune`'s loss).
pub fn label_target(
    labels: &BTreeMap<String, i8>,
    obs: &str,
    policy: UncertainPolicy,
) -> Option<bool> {
    match labels.get(obs) {
        None => Some(false),
        Some(&v) => policy.target(Label::from_value(f64::from(v))?),
    }
}

/// Every run's predictions on the test rows and its report.
pub fn probe(
    x: &Features,
    items: &[Item],
    cfg: &Config,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Output, ProbeError> {
    if items.len() != x.rows() {
        return Err(ProbeError::Input(format!(
            "{} embeddings but {} index rows",
            x.rows(),
            items.len()
        )));
    }
    let in_split = |s: &str| -> Vec<usize> {
        (0..items.len())
            .filter(|&i| items[i].split.as_deref() == Some(s))
            .collect()
    };
    let (train_all, val_split, test) = (in_split("train"), in_split("val"), in_split("test"));
    if train_all.is_empty() {
        return Err(ProbeError::Input(
            "no rows in the train split (run `radfm split` on the dataset before embedding)".into(),
        ));
    }
    if test.is_empty() {
        return Err(ProbeError::Input("no rows in the test split".into()));
    }
    // standardisation from the training rows (all of them, for every draw)
    let (data, d) = (x, x.dim());
    let standardized: Option<(Vec<f32>, Standardization)> = cfg.standardize.then(|| {
        let n = train_all.len() as f64;
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for &i in &train_all {
            for (j, &v) in data.row(i).iter().enumerate() {
                mean[j] += f64::from(v) / n;
            }
        }
        for &i in &train_all {
            for (j, &v) in data.row(i).iter().enumerate() {
                sq[j] += (f64::from(v) - mean[j]).powi(2) / n;
            }
        }
        let sd: Vec<f64> = sq
            .iter()
            .map(|v| if *v > 0.0 { v.sqrt() } else { 1.0 })
            .collect();
        let values = (0..x.rows())
            .flat_map(|i| {
                let (mean, sd) = (&mean, &sd);
                data.row(i)
                    .iter()
                    .enumerate()
                    .map(move |(j, &v)| ((f64::from(v) - mean[j]) / sd[j]) as f32)
            })
            .collect();
        (values, Standardization { mean, sd })
    });
    let std_features;
    let x = match &standardized {
        Some((v, _)) => {
            std_features = Features::new(v, data.rows(), d)?;
            &std_features
        }
        None => x,
    };
    let patients_of = |rows: &[usize]| -> Vec<String> {
        let set: BTreeSet<&str> = rows.iter().map(|&i| items[i].patient.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    };
    let mut preds = Vec::new();
    let mut reports = Vec::new();
    for &draw in &cfg.draws {
        for repeat in 0..cfg.repeats {
            let run = run_name(draw, repeat, cfg.repeats);
            progress(&run);
            let seed = derive_seed(cfg.seed, &run);
            // validation: the val split, or 10% of the training patients
            let (train_pool, val, validation): (Vec<usize>, Vec<usize>, &'static str) =
                if !val_split.is_empty() {
                    (train_all.clone(), val_split.clone(), "val split")
                } else {
                    let mut ps = patients_of(&train_all);
                    ps.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(seed, "holdout")));
                    let k = (ps.len() / 10).max(1).min(ps.len().saturating_sub(1));
                    let held: BTreeSet<&str> = ps[..k].iter().map(String::as_str).collect();
                    let (v, t): (Vec<usize>, Vec<usize>) = train_all
                        .iter()
                        .partition(|&&i| held.contains(items[i].patient.as_str()));
                    (t, v, "10% of the training patients")
                };
            // the training patients of this draw (fractions: for every observation)
            let mut patients = patients_of(&train_pool);
            patients.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
                seed, "patients",
            )));
            let fraction_rows: Vec<usize> = match draw {
                Draw::Fraction(f) => {
                    let k = ((f * patients.len() as f64).ceil() as usize).clamp(1, patients.len());
                    let keep: BTreeSet<&str> = patients[..k].iter().map(String::as_str).collect();
                    train_pool
                        .iter()
                        .copied()
                        .filter(|&i| keep.contains(items[i].patient.as_str()))
                        .collect()
                }
                Draw::Shots(_) => Vec::new(),
            };
            let n_patients = match draw {
                Draw::Fraction(_) => patients_of(&fraction_rows).len(),
                Draw::Shots(k) => 2 * k,
            };
            let observations: Vec<ObservationReport> = cfg
                .observations
                .par_iter()
                .map(|obs| {
                    let rows = match draw {
                        Draw::Fraction(_) => fraction_rows.clone(),
                        Draw::Shots(k) => {
                            shots(items, &train_pool, &patients, obs, k, cfg.uncertain)
                        }
                    };
                    one_observation(x, items, obs, &rows, &val, cfg)
                })
                .collect::<Result<_, ProbeError>>()?;
            for &i in &test {
                let scores: BTreeMap<String, f64> = observations
                    .iter()
                    .filter_map(|o| {
                        o.model
                            .as_ref()
                            .map(|m| (o.observation.clone(), m.proba(x.row(i))))
                    })
                    .collect();
                preds.push(Prediction {
                    id: items[i].id.clone(),
                    scores,
                    run: run.clone(),
                });
            }
            reports.push(RunReport {
                run: run.clone(),
                draw: draw.name(),
                repeat,
                seed,
                train_patients: n_patients,
                validation,
                observations,
            });
        }
    }
    Ok(Output {
        predictions: preds,
        runs: reports,
        standardization: standardized.map(|s| s.1),
    })
}

/// What [`probe`] found.
#[derive(Debug, Clone)]
pub struct Output {
    /// a line per test image per run
    pub predictions: Vec<Prediction>,
    pub runs: Vec<RunReport>,
    /// the training rows' feature means and deviations, with `--standardize`
    pub standardization: Option<Standardization>,
}

/// z = (x - mean) / sd per feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standardization {
    pub mean: Vec<f64>,
    pub sd: Vec<f64>,
}

impl Standardization {
    /// A model on standardised features as the same model on raw ones.
    pub fn fold(&self, m: &Model) -> Model {
        let coef: Vec<f64> = m.coef.iter().zip(&self.sd).map(|(w, s)| w / s).collect();
        let shift: f64 = coef.iter().zip(&self.mean).map(|(w, mu)| w * mu).sum();
        Model {
            coef,
            intercept: m.intercept - shift,
        }
    }
}

/// k positive and k negative training patients for `obs` (a patient is
/// positive if any of its images is), in the draw's patient order.
fn shots(
    items: &[Item],
    pool: &[usize],
    order: &[String],
    obs: &str,
    k: usize,
    policy: UncertainPolicy,
) -> Vec<usize> {
    let mut status: HashMap<&str, Option<bool>> = HashMap::new();
    for &i in pool {
        if let Some(t) = target(&items[i], obs, policy) {
            let e = status
                .entry(items[i].patient.as_str())
                .or_insert(Some(false));
            if t {
                *e = Some(true);
            }
        }
    }
    let pick = |want: bool| -> Vec<&str> {
        order
            .iter()
            .map(String::as_str)
            .filter(|p| status.get(p).copied().flatten() == Some(want))
            .take(k)
            .collect()
    };
    let keep: BTreeSet<&str> = pick(true).into_iter().chain(pick(false)).collect();
    pool.iter()
        .copied()
        .filter(|&i| keep.contains(items[i].patient.as_str()))
        .collect()
}

fn one_observation(
    x: &Features,
    items: &[Item],
    obs: &str,
    rows: &[usize],
    val: &[usize],
    cfg: &Config,
) -> Result<ObservationReport, ProbeError> {
    let labelled = |rows: &[usize]| -> (Vec<usize>, Vec<bool>) {
        rows.iter()
            .filter_map(|&i| target(&items[i], obs, cfg.uncertain).map(|t| (i, t)))
            .unzip()
    };
    let (index, y) = labelled(rows);
    let (val_index, val_y) = labelled(val);
    let positives = y.iter().filter(|&&v| v).count();
    let mut report = ObservationReport {
        observation: obs.to_string(),
        c: None,
        sweep: Vec::new(),
        selected_by: None,
        n_train: index.len(),
        n_positive: positives,
        n_val: val_index.len(),
        skipped: None,
        iterations: None,
        operating_point: None,
        model: None,
    };
    if positives == 0 || positives == y.len() {
        report.skipped = Some(if y.is_empty() {
            "no labelled training rows".into()
        } else if positives == 0 {
            format!("no positives in the {} training rows", y.len())
        } else {
            format!("no negatives in the {} training rows", y.len())
        });
        return Ok(report);
    }
    let weight = match cfg.class_weight {
        ClassWeight::None => vec![1.0; y.len()],
        ClassWeight::Balanced => balanced_weights(&y),
    };
    let train = Rows {
        index: &index,
        y: &y,
        weight: &weight,
    };
    let (c, model, iterations) = match cfg.c {
        CChoice::Fixed(c) => {
            let f = fit(x, train, &Settings::new(c), None)?;
            (c, f.model, f.iterations)
        }
        CChoice::Auto => {
            // the path, strong to weak regularisation, each fit from the last
            let mut start: Option<Model> = None;
            let mut best: Option<(f64, f64, Model, usize)> = None; // (score, C, model, its)
            let two_classes = val_y.iter().any(|&v| v) && val_y.iter().any(|&v| !v);
            let mut swept = 0;
            for &c in &C_GRID {
                // the sweep only ranks the Cs: scikit-learn's default tolerance
                // (1e-4 on the same scaled gradient); the chosen C is refitted tight
                let loose = Settings {
                    tol: SWEEP_TOL,
                    ..Settings::new(c)
                };
                let f = fit(x, train, &loose, start.as_ref())?;
                swept += f.iterations;
                let p: Vec<f64> = val_index.iter().map(|&i| f.model.proba(x.row(i))).collect();
                let logloss = log_loss(&val_y, &p);
                let auroc = two_classes
                    .then(|| radfm_eval::metrics::Ranked::new(&val_y, &p).auroc().get())
                    .flatten();
                let score = match auroc {
                    Some(a) => a,
                    None => -logloss,
                };
                report.sweep.push(SweepPoint {
                    c,
                    iterations: f.iterations,
                    val_auroc: auroc,
                    val_logloss: logloss,
                });
                if best.as_ref().is_none_or(|b| score > b.0) {
                    best = Some((score, c, f.model.clone(), f.iterations));
                }
                start = Some(f.model);
            }
            report.selected_by = Some(if two_classes {
                "validation AUROC"
            } else {
                "validation log-loss (validation has one class)"
            });
            let (_, c, model, _) = best.expect("a non-empty grid");
            let f = fit(x, train, &Settings::new(c), Some(&model))?;
            (c, f.model, swept + f.iterations)
        }
    };
    report.c = Some(c);
    report.iterations = Some(iterations);
    let p: Vec<f64> = val_index.iter().map(|&i| model.proba(x.row(i))).collect();
    report.operating_point = radfm_eval::metrics::Ranked::new(&val_y, &p).youden();
    report.model = Some(model);
    Ok(report)
}

fn log_loss(y: &[bool], p: &[f64]) -> f64 {
    if y.is_empty() {
        return f64::NAN;
    }
    let eps = 1e-15;
    y.iter()
        .zip(p)
        .map(|(&t, &q)| {
            let q = q.clamp(eps, 1.0 - eps);
            if t {
                -q.ln()
            } else {
                -(1.0 - q).ln()
            }
        })
        .sum::<f64>()
        / y.len() as f64
}
