//! Binary classification metrics, defined as scikit-learn defines them.
//!
//! Scores are sorted once ([`Ranked`]); AUROC and AUPRC walk the sorted
//! order, grouping tied scores as scikit-learn's curve functions do.

use crate::bootstrap::percentile;
use crate::Value;

/// Labels and scores sorted by descending score (stable for ties).
#[derive(Debug, Clone)]
pub struct Ranked {
    /// scores, descending
    pub scores: Vec<f64>,
    /// labels in the same order
    pub labels: Vec<bool>,
    pub positives: usize,
}

impl Ranked {
    pub fn new(labels: &[bool], scores: &[f64]) -> Ranked {
        assert_eq!(labels.len(), scores.len(), "one score per label");
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        Ranked {
            scores: idx.iter().map(|&i| scores[i]).collect(),
            labels: idx.iter().map(|&i| labels[i]).collect(),
            positives: labels.iter().filter(|&&l| l).count(),
        }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    fn negatives(&self) -> usize {
        self.len() - self.positives
    }

    /// (true positives, false positives) after each group of tied scores.
    fn groups(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut i = 0;
        let (mut tp, mut fp) = (0usize, 0usize);
        std::iter::from_fn(move || {
            if i >= self.scores.len() {
                return None;
            }
            let s = self.scores[i];
            while i < self.scores.len() && self.scores[i] == s {
                if self.labels[i] {
                    tp += 1;
                } else {
                    fp += 1;
                }
                i += 1;
            }
            Some((tp, fp))
        })
    }

    /// Area under the ROC curve (`roc_auc_score`): the trapezoid over the
    /// curve with tied scores as one point, i.e. ties count one half.
    pub fn auroc(&self) -> Value {
        let (p, n) = (self.positives, self.negatives());
        if p == 0 || n == 0 {
            return Value::Undefined("only one class present");
        }
        let (mut area, mut prev_tp, mut prev_fp) = (0.0f64, 0usize, 0usize);
        for (tp, fp) in self.groups() {
            // trapezoid between (prev_fp, prev_tp) and (fp, tp), in counts
            area += (fp - prev_fp) as f64 * (tp + prev_tp) as f64 / 2.0;
            prev_tp = tp;
            prev_fp = fp;
        }
        Value::Defined(area / (p as f64 * n as f64))
    }

    /// Average precision (`average_precision_score`): the sum over distinct
    /// thresholds of (recall increase) x precision, without interpolation.
    pub fn auprc(&self) -> Value {
        let p = self.positives;
        if p == 0 {
            return Value::Undefined("no positive labels");
        }
        if p == self.len() {
            return Value::Undefined("only one class present");
        }
        let (mut ap, mut prev_tp) = (0.0f64, 0usize);
        for (tp, fp) in self.groups() {
            if tp > prev_tp {
                ap += (tp - prev_tp) as f64 / p as f64 * (tp as f64 / (tp + fp) as f64);
            }
            prev_tp = tp;
        }
        Value::Defined(ap)
    }

    /// The operating point of greatest Youden's J (sensitivity + specificity
    /// - 1) among the ROC curve's thresholds (`roc_curve`'s, where a score at
    /// or above the threshold is called positive); ties go to the higher
    /// threshold, the fewer false positives. `None` with one class only.
    pub fn youden(&self) -> Option<OperatingPoint> {
        let (p, n) = (self.positives, self.negatives());
        if p == 0 || n == 0 {
            return None;
        }
        // J x p x n = tp n - fp p, compared exactly in integers
        let mut best: Option<(i128, usize, usize, usize)> = None;
        for (tp, fp) in self.groups() {
            let j = tp as i128 * n as i128 - fp as i128 * p as i128;
            if best.is_none_or(|b| j > b.0) {
                // the group just passed ends at index tp + fp - 1; its score is the threshold
                best = Some((j, tp, fp, tp + fp - 1));
            }
        }
        best.map(|(_, tp, fp, at)| {
            let (sens, spec) = (tp as f64 / p as f64, (n - fp) as f64 / n as f64);
            OperatingPoint {
                threshold: self.scores[at],
                sensitivity: sens,
                specificity: spec,
                youden_j: sens + spec - 1.0,
            }
        })
    }
}

/// A threshold on the scores with its sensitivity and specificity.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperatingPoint {
    pub threshold: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub youden_j: f64,
}

/// Counts at an operating point: predicted positive when `score >= threshold`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Confusion {
    pub fn at(labels: &[bool], scores: &[f64], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&l, &s) in labels.iter().zip(scores) {
            match (s >= threshold, l) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    fn ratio(a: usize, b: usize, why: &'static str) -> Value {
        if b == 0 {
            Value::Undefined(why)
        } else {
            Value::Defined(a as f64 / b as f64)
        }
    }

    pub fn sensitivity(&self) -> Value {
        Self::ratio(self.tp, self.tp + self.fn_, "no positive labels")
    }

    pub fn specificity(&self) -> Value {
        Self::ratio(self.tn, self.tn + self.fp, "no negative labels")
    }

    pub fn ppv(&self) -> Value {
        Self::ratio(self.tp, self.tp + self.fp, "no positive predictions")
    }

    pub fn npv(&self) -> Value {
        Self::ratio(self.tn, self.tn + self.fn_, "no negative predictions")
    }

    /// F1 (`f1_score`); 0 when there are no positive labels and no positive
    /// predictions would make it 0/0, as scikit-learn's `zero_division=0` does... but
    /// we say so instead.
    pub fn f1(&self) -> Value {
        Self::ratio(
            2 * self.tp,
            2 * self.tp + self.fp + self.fn_,
            "no positive labels and no positive predictions",
        )
    }
}

/// Brier score (`brier_score_loss`): mean squared difference between probability and label.
pub fn brier(labels: &[bool], probs: &[f64]) -> Value {
    if labels.is_empty() {
        return Value::Undefined("no samples");
    }
    let s: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&l, &p)| (p - f64::from(u8::from(l))).powi(2))
        .sum();
    Value::Defined(s / labels.len() as f64)
}

/// How calibration bins are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bins {
    /// equal width over [0, 1] (`calibration_curve(strategy="uniform")`)
    Uniform,
    /// equal mass: edges at score quantiles (`strategy="quantile"`)
    Quantile,
}

/// Expected calibration error over `n_bins` bins: the count-weighted mean of
/// |observed frequency - mean probability| over non-empty bins, with the bins
/// of scikit-learn's `calibration_curve` (a probability equal to an inner edge
/// falls in the lower bin).
pub fn ece(labels: &[bool], probs: &[f64], n_bins: usize, bins: Bins) -> Value {
    if labels.is_empty() {
        return Value::Undefined("no samples");
    }
    let inner: Vec<f64> = match bins {
        Bins::Uniform => (1..n_bins).map(|k| k as f64 / n_bins as f64).collect(),
        Bins::Quantile => {
            let mut s = probs.to_vec();
            s.sort_by(f64::total_cmp);
            (1..n_bins)
                .map(|k| percentile(&s, k as f64 / n_bins as f64))
                .collect()
        }
    };
    let mut sum_p = vec![0.0f64; n_bins];
    let mut sum_y = vec![0.0f64; n_bins];
    let mut count = vec![0usize; n_bins];
    for (&l, &p) in labels.iter().zip(probs) {
        // number of inner edges strictly below p (numpy searchsorted, side="left")
        let b = inner.partition_point(|&e| e < p);
        sum_p[b] += p;
        sum_y[b] += f64::from(u8::from(l));
        count[b] += 1;
    }
    let n = labels.len() as f64;
    let e: f64 = (0..n_bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            count[b] as f64 / n * (sum_y[b] / count[b] as f64 - sum_p[b] / count[b] as f64).abs()
        })
        .sum();
    Value::Defined(e)
}

#[cfg(test)]
mod tests {
    #[test]
    fn youden_point_is_the_best_roc_threshold_and_ties_go_higher() {
        // roc_curve thresholds 0.9 .. 0.2; J = 1/3, 2/3, 1/3, 2/3, 1/3, 0:
        // 0.8 and 0.6 tie, the higher one is kept
        let labels = [true, true, false, true, false, false];
        let scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.2];
        let op = super::Ranked::new(&labels, &scores).youden().unwrap();
        assert_eq!(op.threshold, 0.8);
        assert_eq!((op.sensitivity, op.specificity), (2.0 / 3.0, 1.0));
        // tied scores are one threshold
        let op = super::Ranked::new(&[true, false, true, false], &[0.5, 0.5, 0.7, 0.1])
            .youden()
            .unwrap();
        assert_eq!((op.threshold, op.specificity), (0.7, 1.0));
        assert!(super::Ranked::new(&[true, true], &[0.1, 0.2])
            .youden()
            .is_none());
    }

    use super::*;

    fn r(l: &[u8], s: &[f64]) -> Ranked {
        Ranked::new(&l.iter().map(|&x| x == 1).collect::<Vec<_>>(), s)
    }

    #[test]
    fn hand_computed() {
        // perfect, reversed, all tied
        assert_eq!(
            r(&[0, 0, 1, 1], &[0.1, 0.2, 0.8, 0.9]).auroc(),
            Value::Defined(1.0)
        );
        assert_eq!(
            r(&[1, 1, 0, 0], &[0.1, 0.2, 0.8, 0.9]).auroc(),
            Value::Defined(0.0)
        );
        assert_eq!(r(&[0, 1, 0, 1], &[0.5; 4]).auroc(), Value::Defined(0.5));
        // one tie between a positive and a negative counts one half: 3.5 / 4
        assert_eq!(
            r(&[0, 0, 1, 1], &[0.1, 0.5, 0.5, 0.9]).auroc(),
            Value::Defined(0.875)
        );
        assert!(matches!(
            r(&[1, 1], &[0.1, 0.2]).auroc(),
            Value::Undefined(_)
        ));
        // AP: ranks 1 (pos), 2 (neg), 3 (pos): (1/2)*1 + (1/2)*(2/3)
        let ap = r(&[1, 0, 1], &[0.9, 0.8, 0.7]).auprc().get().unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
        let c = Confusion::at(&[true, false, true, false], &[0.9, 0.6, 0.4, 0.1], 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert_eq!(c.f1(), Value::Defined(0.5));
        assert!(matches!(
            Confusion::at(&[false], &[0.1], 0.5).ppv(),
            Value::Undefined(_)
        ));
        assert_eq!(brier(&[true, false], &[1.0, 0.5]), Value::Defined(0.125));
        // one bin: |mean(y) - mean(p)|
        let e = ece(
            &[true, false, false, false],
            &[0.5, 0.5, 0.5, 0.5],
            1,
            Bins::Uniform,
        )
        .get()
        .unwrap();
        assert!((e - 0.25).abs() < 1e-15);
    }
}
