//! Percentile bootstrap confidence intervals that resample patients, not
//! images: several images of one patient are not independent, and resampling
//! images would make intervals too narrow.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Group image indices by patient id (in first-seen order).
pub fn by_patient<S: AsRef<str>>(patients: &[S]) -> Vec<Vec<usize>> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, p) in patients.iter().enumerate() {
        let k = *index.entry(p.as_ref()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[k].push(i);
    }
    groups
}

/// A 95% (or other) percentile interval and how many resamples were usable.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    /// resamples where the metric was defined
    pub used: usize,
    pub resamples: usize,
}

/// numpy's default (linear) percentile of sorted values, `q` in [0, 1].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Multiplicity of each of `n` images in one patient resample drawn from `seed`.
pub fn resample_counts(groups: &[Vec<usize>], n: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = vec![0u32; n];
    for _ in 0..groups.len() {
        for &i in &groups[rng.gen_range(0..groups.len())] {
            pick[i] += 1;
        }
    }
    pick
}

/// The central `level` percentile interval of `values` (NaN ignored), or None when
/// fewer than half of `resamples` gave a value.
pub fn interval(mut values: Vec<f64>, resamples: usize, level: f64) -> Option<(f64, f64)> {
    values.retain(|v| v.is_finite());
    if values.is_empty() || values.len() * 2 < resamples {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let a = (1.0 - level) / 2.0;
    Some((percentile(&values, a), percentile(&values, 1.0 - a)))
}

/// The metric on each of `resamples` patient resamples drawn from `seed`
/// (NaN where it is undefined), in draw order.
pub fn resample_values(
    groups: &[Vec<usize>],
    resamples: usize,
    seed: u64,
    mut metric: impl FnMut(&[usize]) -> Option<f64>,
) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = Vec::new();
    (0..resamples)
        .map(|_| {
            idx.clear();
            for _ in 0..groups.len() {
                idx.extend_from_slice(&groups[rng.gen_range(0..groups.len())]);
            }
            metric(&idx).filter(|v| v.is_finite()).unwrap_or(f64::NAN)
        })
        .collect()
}

/// Resample the patients `groups` with replacement `resamples` times (seeded), call
/// `metric` on the image indices of each resample, and return the central
/// `level` percentile interval of the defined values. `None` when fewer than
/// half the resamples give a value.
pub fn percentile_ci(
    groups: &[Vec<usize>],
    resamples: usize,
    seed: u64,
    level: f64,
    metric: impl FnMut(&[usize]) -> Option<f64>,
) -> Option<Interval> {
    let vals = resample_values(groups, resamples, seed, metric);
    let used = vals.iter().filter(|v| v.is_finite()).count();
    let (lo, hi) = interval(vals, resamples, level)?;
    Some(Interval {
        lo,
        hi,
        used,
        resamples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_a_degenerate_interval() {
        let g = by_patient(&["a", "b", "a", "c"]);
        assert_eq!(g, vec![vec![0, 2], vec![1], vec![3]]);
        // a constant metric has a zero-width interval
        let ci = percentile_ci(&g, 200, 1, 0.95, |_| Some(0.7)).unwrap();
        assert_eq!((ci.lo, ci.hi, ci.used), (0.7, 0.7, 200));
        // a metric that is never defined has no interval
        assert!(percentile_ci(&g, 50, 1, 0.95, |_| None).is_none());
    }
}
