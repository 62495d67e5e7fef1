//! Report-generation metrics with one pinned text normalisation.
//!
//! **Normalisation** (for BLEU and ROUGE-L alike): ASCII-lowercase the text,
//! replace every character that is not an ASCII letter or digit with a space,
//! and split on whitespace. This is exactly the default tokenizer of the
//! `rouge-score` package, and BLEU is computed on the same tokens.
//!
//! - **BLEU-1..4**: corpus BLEU with one reference per prediction, uniform
//!   weights, no smoothing, brevity penalty exp(1 - r/c) when the predictions'
//!   total length c is below the references' total r. Equal to sacrebleu's
//!   `corpus_bleu(tokenize="none", smooth_method="none", max_ngram_order=n)`
//!   on the normalised, space-joined texts (divided by 100).
//! - **ROUGE-L**: per pair, the LCS of the token sequences gives precision
//!   (over the prediction), recall (over the reference) and F1; the corpus
//!   figure is their mean, as `rouge-score`'s `RougeScorer(["rougeL"])` with
//!   no stemming.
//! - **CheXpert F1**: both texts are labelled with [`Labeler`]; an
//!   observation counts as present when `positive` or `uncertain`. Micro and
//!   macro F1 over the 14 observations and over the common five.

use std::collections::HashMap;

use radfm_core::{Observation, ObservationMap};

use crate::labeler::Labeler;

/// The pinned normalisation: lowercase ASCII alphanumeric tokens.
pub fn normalize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch.is_ascii_alphanumeric() {
            cur.push(ch.to_ascii_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Corpus BLEU-1..4 of `hyps` against `refs` (already normalised).
pub fn corpus_bleu(hyps: &[Vec<String>], refs: &[Vec<String>]) -> [f64; 4] {
    assert_eq!(hyps.len(), refs.len(), "one reference per prediction");
    let mut correct = [0u64; 4];
    let mut total = [0u64; 4];
    let (mut c, mut r) = (0u64, 0u64);
    for (h, rf) in hyps.iter().zip(refs) {
        c += h.len() as u64;
        r += rf.len() as u64;
        for n in 1..=4 {
            if h.len() < n {
                continue;
            }
            let mut ref_counts: HashMap<&[String], i64> = HashMap::new();
            for g in rf.windows(n) {
                *ref_counts.entry(g).or_default() += 1;
            }
            total[n - 1] += (h.len() + 1 - n) as u64;
            for g in h.windows(n) {
                if let Some(k) = ref_counts.get_mut(g) {
                    if *k > 0 {
                        *k -= 1;
                        correct[n - 1] += 1;
                    }
                }
            }
        }
    }
    let bp = if c == 0 {
        0.0
    } else if c < r {
        (1.0 - r as f64 / c as f64).exp()
    } else {
        1.0
    };
    let mut out = [0.0; 4];
    for order in 1..=4 {
        let mut log_sum = 0.0;
        let mut zero = false;
        for n in 0..order {
            if correct[n] == 0 || total[n] == 0 {
                zero = true;
                break;
            }
            log_sum += (correct[n] as f64 / total[n] as f64).ln();
        }
        out[order - 1] = if zero {
            0.0
        } else {
            bp * (log_sum / order as f64).exp()
        };
    }
    out
}

/// Length of the longest common subsequence.
pub fn lcs(a: &[String], b: &[String]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L (precision, recall, F1) of one prediction against its reference.
pub fn rouge_l(hyp: &[String], reference: &[String]) -> (f64, f64, f64) {
    let l = lcs(hyp, reference) as f64;
    if l == 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let p = l / hyp.len() as f64;
    let r = l / reference.len() as f64;
    (p, r, 2.0 * p * r / (p + r))
}

/// Precision, recall, F1 and support of one observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Prf {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub support: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    pub fn from_counts(tp: u64, fp: u64, fn_: u64) -> Prf {
        let div = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = div(tp, tp + fp);
        let recall = div(tp, tp + fn_);
        let f1 = div(2 * tp, 2 * tp + fp + fn_);
        Prf {
            tp,
            fp,
            fn_,
            support: tp + fn_,
            precision,
            recall,
            f1,
        }
    }
}

/// Everything `radfm reports score` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scores {
    pub n: usize,
    pub normalization: &'static str,
    pub bleu1: f64,
    pub bleu2: f64,
    pub bleu3: f64,
    pub bleu4: f64,
    pub rouge_l_precision: f64,
    pub rouge_l_recall: f64,
    pub rouge_l_f1: f64,
    pub chexpert_micro_f1_14: f64,
    pub chexpert_macro_f1_14: f64,
    pub chexpert_micro_f1_5: f64,
    pub chexpert_macro_f1_5: f64,
    pub chexpert_per_observation: Vec<(Observation, Prf)>,
}

pub const NORMALIZATION: &str =
    "ascii-lowercase; non-[a-z0-9] characters to spaces; split on whitespace (rouge-score's default tokenizer)";

/// Score prediction texts against reference texts (paired by position).
pub fn score(preds: &[&str], refs: &[&str], labeler: &Labeler) -> Scores {
    assert_eq!(preds.len(), refs.len());
    let h: Vec<Vec<String>> = preds.iter().map(|t| normalize(t)).collect();
    let r: Vec<Vec<String>> = refs.iter().map(|t| normalize(t)).collect();
    let [bleu1, bleu2, bleu3, bleu4] = corpus_bleu(&h, &r);
    let n = preds.len().max(1) as f64;
    let (mut rp, mut rr, mut rf) = (0.0, 0.0, 0.0);
    for (a, b) in h.iter().zip(&r) {
        let (p, rc, f) = rouge_l(a, b);
        rp += p;
        rr += rc;
        rf += f;
    }
    let mut counts = ObservationMap::<(u64, u64, u64)>::default();
    for (p, rf_text) in preds.iter().zip(refs) {
        let lp = labeler.label(p);
        let lr = labeler.label(rf_text);
        for k in Observation::ALL {
            let c = &mut counts[k];
            let yp = lp.get(k).is_some_and(|s| s.is_positive_or_uncertain());
            let yt = lr.get(k).is_some_and(|s| s.is_positive_or_uncertain());
            match (yp, yt) {
                (true, true) => c.0 += 1,
                (true, false) => c.1 += 1,
                (false, true) => c.2 += 1,
                _ => {}
            }
        }
    }
    let per: Vec<(Observation, Prf)> = counts
        .iter()
        .map(|(o, &(tp, fp, fn_))| (o, Prf::from_counts(tp, fp, fn_)))
        .collect();
    let agg = |names: &[Observation]| {
        let sel: Vec<&Prf> = per
            .iter()
            .filter(|(o, _)| names.contains(o))
            .map(|(_, p)| p)
            .collect();
        let (tp, fp, fn_) = sel
            .iter()
            .fold((0, 0, 0), |a, p| (a.0 + p.tp, a.1 + p.fp, a.2 + p.fn_));
        let micro = Prf::from_counts(tp, fp, fn_).f1;
        let macro_ = sel.iter().map(|p| p.f1).sum::<f64>() / sel.len() as f64;
        (micro, macro_)
    };
    let (mi14, ma14) = agg(&Observation::ALL);
    let (mi5, ma5) = agg(&Observation::COMMON_FIVE);
    Scores {
        n: preds.len(),
        normalization: NORMALIZATION,
        bleu1,
        bleu2,
        bleu3,
        bleu4,
        rouge_l_precision: rp / n,
        rouge_l_recall: rr / n,
        rouge_l_f1: rf / n,
        chexpert_micro_f1_14: mi14,
        chexpert_macro_f1_14: ma14,
        chexpert_micro_f1_5: mi5,
        chexpert_macro_f1_5: ma5,
        chexpert_per_observation: per,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        normalize(s)
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            toks("No  Pleural-Effusion, T4/T5 (1.5cm)."),
            ["no", "pleural", "effusion", "t4", "t5", "1", "5cm"]
        );
        assert!(toks(" .,; ").is_empty());
    }

    #[test]
    fn bleu_hand_computed() {
        // identical: 1.0 everywhere
        let a = vec![toks("the heart is normal in size")];
        assert_eq!(corpus_bleu(&a, &a), [1.0; 4]);
        // hyp "the heart is large" vs ref "the heart is normal in size":
        // p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1; bp = exp(1 - 6/4)
        let b = corpus_bleu(
            &[toks("the heart is large")],
            &[toks("the heart is normal in size")],
        );
        let bp = (1.0f64 - 6.0 / 4.0).exp();
        assert!((b[0] - bp * 0.75).abs() < 1e-12);
        assert!((b[1] - bp * (0.75f64 * (2.0 / 3.0)).sqrt()).abs() < 1e-12);
        assert!((b[2] - bp * (0.75f64 * (2.0 / 3.0) * 0.5).cbrt()).abs() < 1e-12);
        assert_eq!(b[3], 0.0);
        // clipping: "the the the" vs "the heart": p1 = 1/3
        let c = corpus_bleu(&[toks("the the the")], &[toks("the heart")]);
        assert!((c[0] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn rouge_l_hand_computed() {
        // LCS("a b c d", "a c d e f") = 3: p = 3/4, r = 3/5
        let (p, r, f) = rouge_l(&toks("a b c d"), &toks("a c d e f"));
        assert!((p - 0.75).abs() < 1e-12 && (r - 0.6).abs() < 1e-12);
        assert!((f - 2.0 * 0.75 * 0.6 / 1.35).abs() < 1e-12);
        assert_eq!(rouge_l(&[], &toks("a")), (0.0, 0.0, 0.0));
    }
}
