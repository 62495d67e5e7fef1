//! DeLong's test for two correlated AUROCs (DeLong, DeLong and Clarke-Pearson,
//! Biometrics 1988), computed with the midrank algorithm of Sun and Xu
//! (IEEE Signal Processing Letters 2014).

use crate::normal_cdf;

/// Midranks (1-based, ties get the mean rank) of `x`.
fn midranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = mid;
        }
        i = j + 1;
    }
    r
}

/// Structural components of one model's AUROC: V10 over positives, V01 over negatives.
fn components(pos: &[f64], neg: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let all: Vec<f64> = pos.iter().chain(neg).copied().collect();
    let tz = midranks(&all);
    let tx = midranks(pos);
    let ty = midranks(neg);
    let v10: Vec<f64> = (0..pos.len()).map(|i| (tz[i] - tx[i]) / n).collect();
    let v01: Vec<f64> = (0..neg.len())
        .map(|j| 1.0 - (tz[pos.len() + j] - ty[j]) / m)
        .collect();
    let auc = v10.iter().sum::<f64>() / m;
    (auc, v10, v01)
}

fn cov(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (n - 1.0)
}

/// The result of comparing model A with model B.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeLong {
    pub auc_a: f64,
    pub auc_b: f64,
    /// AUC(A) - AUC(B)
    pub difference: f64,
    pub variance: f64,
    pub z: f64,
    /// two-sided
    pub p: f64,
}

/// Compare two models' scores on the same images. `None` when a class is empty
/// or there are fewer than two of either.
pub fn delong(labels: &[bool], a: &[f64], b: &[f64]) -> Option<DeLong> {
    let split = |s: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let pos = labels
            .iter()
            .zip(s)
            .filter(|(l, _)| **l)
            .map(|(_, v)| *v)
            .collect();
        let neg = labels
            .iter()
            .zip(s)
            .filter(|(l, _)| !**l)
            .map(|(_, v)| *v)
            .collect();
        (pos, neg)
    };
    let (pa, na) = split(a);
    let (pb, nb) = split(b);
    if pa.len() < 2 || na.len() < 2 {
        return None;
    }
    let (auc_a, v10a, v01a) = components(&pa, &na);
    let (auc_b, v10b, v01b) = components(&pb, &nb);
    let (m, n) = (pa.len() as f64, na.len() as f64);
    let s_aa = cov(&v10a, &v10a) / m + cov(&v01a, &v01a) / n;
    let s_bb = cov(&v10b, &v10b) / m + cov(&v01b, &v01b) / n;
    let s_ab = cov(&v10a, &v10b) / m + cov(&v01a, &v01b) / n;
    let variance = s_aa + s_bb - 2.0 * s_ab;
    let difference = auc_a - auc_b;
    let z = if variance > 0.0 {
        difference / variance.sqrt()
    } else {
        0.0
    };
    let p = 2.0 * (1.0 - normal_cdf(z.abs()));
    Some(DeLong {
        auc_a,
        auc_b,
        difference,
        variance,
        z,
        p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midranks_of_ties() {
        assert_eq!(midranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn identical_models_do_not_differ() {
        let l = [true, false, true, false, true, false];
        let s = [0.9, 0.1, 0.6, 0.7, 0.8, 0.3];
        let d = delong(&l, &s, &s).unwrap();
        assert_eq!((d.difference, d.z, d.p), (0.0, 0.0, 1.0));
        assert!((d.auc_a - 8.0 / 9.0).abs() < 1e-15);
    }
}
