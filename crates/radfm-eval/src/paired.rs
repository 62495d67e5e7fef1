//! Macro-AUROC comparisons with paired patient-bootstrap intervals: the
//! statistics behind `radfm demo`'s claims.
//!
//! Every function resamples patients (all of a patient's images together) and
//! recomputes every model's macro AUROC on the same resample, so a difference
//! between two models scored on the same images carries the pairing (its
//! interval is much narrower than the two single intervals suggest). Two
//! cohorts with disjoint patients (an in-distribution test split and a
//! held-out site) are resampled independently, each within itself.
//!
//! The macro AUROC is the unweighted mean over the given observations of the
//! per-observation AUROC (a model with no score for an observation counts as
//! chance for it, 0.5, as a probe whose label draw had no positive); a resample where any of them is undefined (one class
//! only) gives no value and is not counted; an interval needs at least half of
//! the resamples to give one. Images of the "val" split are left out, as
//! `radfm evaluate` leaves them out of its metrics.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::bootstrap::{by_patient, interval};
use crate::evaluate::Image;
use crate::metrics::Ranked;

/// A point estimate with its percentile interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub estimate: f64,
    /// None when fewer than half of the resamples gave a value
    pub ci: Option<[f64; 2]>,
    pub level: f64,
    pub resamples: usize,
    /// resamples where the statistic was defined
    pub used: usize,
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub resamples: usize,
    pub seed: u64,
    pub level: f64,
}

/// Images of several models on the same ids, aligned (sorted by id, so the result
/// does not depend on file order).
struct Aligned<'a> {
    patients: Vec<&'a str>,
    models: Vec<Vec<&'a Image>>,
}

fn align<'a>(models: &[&'a [Image]]) -> Result<Aligned<'a>, String> {
    let first = models.first().ok_or("no model")?;
    let mut ids: Vec<&str> = first
        .iter()
        .filter(|i| i.split.as_deref() != Some("val"))
        .map(|i| i.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err("no images outside the val split".into());
    }
    let mut out = Vec::new();
    for (m, imgs) in models.iter().enumerate() {
        let by_id: HashMap<&str, &Image> = imgs.iter().map(|i| (i.id.as_str(), i)).collect();
        let mut row = Vec::with_capacity(ids.len());
        let mut missing = 0usize;
        for id in &ids {
            match by_id.get(id) {
                Some(i) => row.push(*i),
                None => missing += 1,
            }
        }
        if missing > 0 {
            return Err(format!(
                "model {} has no prediction for {missing} of the {} images the first one scored",
                m + 1,
                ids.len()
            ));
        }
        out.push(row);
    }
    let patients = out[0].iter().map(|i| i.patient.as_str()).collect();
    Ok(Aligned {
        patients,
        models: out,
    })
}

/// Macro AUROC over `obs` of the images `idx` (repeats allowed); labels are the
/// first model's (the truth is shared), scores the model's own.
fn macro_auroc(truth: &[&Image], scored: &[&Image], idx: &[usize], obs: &[String]) -> Option<f64> {
    if obs.is_empty() {
        return None;
    }
    let mut sum = 0.0;
    let (mut y, mut s) = (Vec::with_capacity(idx.len()), Vec::with_capacity(idx.len()));
    for o in obs {
        y.clear();
        s.clear();
        for &i in idx {
            if let Some(&l) = truth[i].labels.get(o) {
                y.push(l);
                // no score: the model has nothing to say (a probe whose draw had no
                // positive), which ranks every image alike: AUROC 0.5
                s.push(scored[i].scores.get(o).copied().unwrap_or(0.5));
            }
        }
        sum += Ranked::new(&y, &s).auroc().get()?;
    }
    Some(sum / obs.len() as f64)
}

/// [`crate::bootstrap::resample_values`]'s resamples (the same draws from `seed`), with
/// the statistic computed on all cores: the draws are made first, in order, so the
/// values do not depend on the number of threads.
fn resample(
    groups: &[Vec<usize>],
    resamples: usize,
    seed: u64,
    metric: impl Fn(&[usize]) -> Option<f64> + Sync,
) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draws: Vec<Vec<usize>> = (0..resamples)
        .map(|_| {
            let mut idx = Vec::new();
            for _ in 0..groups.len() {
                idx.extend_from_slice(&groups[rng.gen_range(0..groups.len())]);
            }
            idx
        })
        .collect();
    draws
        .par_iter()
        .map(|idx| metric(idx).filter(|v| v.is_finite()).unwrap_or(f64::NAN))
        .collect()
}

/// One model's macro AUROC over `obs` on all its images (no interval).
pub fn macro_auroc_point(images: &[Image], obs: &[String]) -> Option<f64> {
    let a = align(&[images]).ok()?;
    let m = &a.models[0];
    macro_auroc(m, m, &all(m.len()), obs)
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn finish(estimate: f64, values: Vec<f64>, s: Settings) -> Estimate {
    let used = values.iter().filter(|v| v.is_finite()).count();
    Estimate {
        estimate,
        ci: interval(values, s.resamples, s.level).map(|(lo, hi)| [lo, hi]),
        level: s.level,
        resamples: s.resamples,
        used,
    }
}

/// One model's macro AUROC over `obs`, with its patient-bootstrap interval.
pub fn macro_auroc_ci(images: &[Image], obs: &[String], s: Settings) -> Result<Estimate, String> {
    let a = align(&[images])?;
    let m = &a.models[0];
    let point = macro_auroc(m, m, &all(m.len()), obs).ok_or("the macro AUROC is undefined")?;
    let groups = by_patient(&a.patients);
    let vals = resample(&groups, s.resamples, s.seed, |idx| {
        macro_auroc(m, m, idx, obs)
    });
    Ok(finish(point, vals, s))
}

/// Macro AUROC of `a` minus that of `b`, scored on the same images (by id), with
/// the paired patient-bootstrap interval of the difference.
pub fn paired_difference(
    a: &[Image],
    b: &[Image],
    obs: &[String],
    s: Settings,
) -> Result<Estimate, String> {
    let al = align(&[a, b])?;
    let (ma, mb) = (&al.models[0], &al.models[1]);
    let diff =
        |idx: &[usize]| Some(macro_auroc(ma, ma, idx, obs)? - macro_auroc(ma, mb, idx, obs)?);
    let point = diff(&all(ma.len())).ok_or("a macro AUROC is undefined")?;
    let groups = by_patient(&al.patients);
    Ok(finish(
        point,
        resample(&groups, s.resamples, s.seed, diff),
        s,
    ))
}

/// On the same images, the macro AUROC over `a_obs` minus that over `b_obs` (e.g.
/// how much better one target is predicted than a set of others), with its
/// patient-bootstrap interval.
pub fn macro_difference(
    images: &[Image],
    a_obs: &[String],
    b_obs: &[String],
    s: Settings,
) -> Result<Estimate, String> {
    let al = align(&[images])?;
    let m = &al.models[0];
    let diff =
        |idx: &[usize]| Some(macro_auroc(m, m, idx, a_obs)? - macro_auroc(m, m, idx, b_obs)?);
    let point = diff(&all(m.len())).ok_or("a macro AUROC is undefined")?;
    let groups = by_patient(&al.patients);
    Ok(finish(
        point,
        resample(&groups, s.resamples, s.seed, diff),
        s,
    ))
}

/// How much more `a` loses than `b` from one cohort to another:
/// (a_in - a_out) - (b_in - b_out) in macro AUROC. The two cohorts hold
/// different patients and are resampled independently; within each, the two
/// models are paired.
pub fn drop_difference(
    a_in: &[Image],
    b_in: &[Image],
    a_out: &[Image],
    b_out: &[Image],
    obs: &[String],
    s: Settings,
) -> Result<Estimate, String> {
    let inn = align(&[a_in, b_in])?;
    let out = align(&[a_out, b_out])?;
    let diff_in = |idx: &[usize]| -> Option<f64> {
        let m = &inn.models;
        Some(macro_auroc(&m[0], &m[0], idx, obs)? - macro_auroc(&m[0], &m[1], idx, obs)?)
    };
    let diff_out = |idx: &[usize]| -> Option<f64> {
        let m = &out.models;
        Some(macro_auroc(&m[0], &m[0], idx, obs)? - macro_auroc(&m[0], &m[1], idx, obs)?)
    };
    // (a_in - a_out) - (b_in - b_out) = (a_in - b_in) - (a_out - b_out)
    let point = diff_in(&all(inn.patients.len())).ok_or("a macro AUROC is undefined")?
        - diff_out(&all(out.patients.len())).ok_or("a macro AUROC is undefined")?;
    let g_in = by_patient(&inn.patients);
    let g_out = by_patient(&out.patients);
    let v_in = resample(&g_in, s.resamples, s.seed, diff_in);
    let v_out = resample(&g_out, s.resamples, s.seed ^ 0x7e57_5eed, diff_out);
    let vals = v_in.iter().zip(&v_out).map(|(x, y)| x - y).collect();
    Ok(finish(point, vals, s))
}

/// One subgroup's macro AUROC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub value: String,
    pub images: usize,
    pub patients: usize,
    pub macro_auroc: f64,
}

/// The largest gap in macro AUROC between the values of a subgroup field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub field: String,
    pub best: String,
    pub worst: String,
    /// best minus worst; its interval is simultaneous over every pair of groups
    pub gap: Estimate,
    pub groups: Vec<Group>,
    /// the observations averaged: those with at least `min_positives` positives
    /// and as many negatives in every group
    pub observations: Vec<String>,
    /// observations left out, with the reason
    pub left_out: BTreeMap<String, String>,
    /// groups too small to judge, left out before the observations, with the reason
    pub dropped_groups: BTreeMap<String, String>,
    pub pairs: usize,
}

/// The best-minus-worst macro AUROC gap across the values of `field` (images
/// without it are left out), with a patient-bootstrap interval made
/// simultaneous over the k(k-1)/2 pairs of groups (Bonferroni), because the best
/// and worst groups are picked from the same data (as `radfm evaluate`'s
/// per-observation gaps are). A group too small to judge (fewer than
/// `min_positives` positives or negatives for more than half of `obs`) is
/// dropped first and named in `dropped_groups`, so one tiny band cannot void
/// the comparison of the rest; then observations without `min_positives`
/// positives and negatives in every remaining group are left out.
pub fn subgroup_gap(
    images: &[Image],
    field: &str,
    obs: &[String],
    min_positives: usize,
    s: Settings,
) -> Result<Gap, String> {
    let a = align(&[images])?;
    let m = &a.models[0];
    let mut values: Vec<String> = m
        .iter()
        .filter_map(|i| i.groups.get(field).cloned())
        .collect();
    values.sort();
    values.dedup();
    let counts = |v: &str, o: &str| -> (usize, usize) {
        let mut pn = (0, 0);
        for i in m
            .iter()
            .filter(|i| i.groups.get(field).map(String::as_str) == Some(v))
        {
            match i.labels.get(o) {
                Some(true) => pn.0 += 1,
                Some(false) => pn.1 += 1,
                None => {}
            }
        }
        pn
    };
    let short_in = |v: &str, o: &str| {
        let (p, n) = counts(v, o);
        p < min_positives || n < min_positives
    };
    let mut dropped_groups = BTreeMap::new();
    values.retain(|v| {
        let short = obs.iter().filter(|o| short_in(v, o)).count();
        let keep = 2 * short <= obs.len();
        if !keep {
            dropped_groups.insert(
                v.clone(),
                format!(
                    "too small: fewer than {min_positives} positives or negatives for {short} of {} observations",
                    obs.len()
                ),
            );
        }
        keep
    });
    let mut kept = Vec::new();
    let mut left_out = BTreeMap::new();
    for o in obs {
        let short: Vec<String> = values
            .iter()
            .filter_map(|v| {
                let (p, n) = counts(v, o);
                (p < min_positives || n < min_positives)
                    .then(|| format!("{v}: {p} positives, {n} negatives"))
            })
            .collect();
        if short.is_empty() {
            kept.push(o.clone());
        } else {
            left_out.insert(
                o.clone(),
                format!(
                    "fewer than {min_positives} positives or negatives in {}",
                    short.join("; ")
                ),
            );
        }
    }
    if values.len() < 2 {
        let why = match dropped_groups.is_empty() {
            true => String::new(),
            false => format!(
                " large enough to judge ({})",
                dropped_groups
                    .iter()
                    .map(|(v, r)| format!("{v}: {r}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        return Err(format!("{field}: fewer than two groups{why}"));
    }
    if kept.is_empty() {
        return Err(format!(
            "{field}: no observation has {min_positives} positives and negatives in every group"
        ));
    }
    let members: Vec<Vec<bool>> = values
        .iter()
        .map(|v| {
            m.iter()
                .map(|i| i.groups.get(field).map(String::as_str) == Some(v))
                .collect()
        })
        .collect();
    let group_auc = |g: usize, idx: &[usize]| -> Option<f64> {
        let sub: Vec<usize> = idx.iter().copied().filter(|&i| members[g][i]).collect();
        macro_auroc(m, m, &sub, &kept)
    };
    let full = all(m.len());
    let mut groups = Vec::new();
    let mut aucs = Vec::new();
    for (g, v) in values.iter().enumerate() {
        let auc = group_auc(g, &full).ok_or(format!("{field}={v}: macro AUROC undefined"))?;
        let sub: Vec<&Image> = m
            .iter()
            .copied()
            .filter(|i| i.groups.get(field) == Some(v))
            .collect();
        let mut pats: Vec<&str> = sub.iter().map(|i| i.patient.as_str()).collect();
        pats.sort_unstable();
        pats.dedup();
        groups.push(Group {
            value: v.clone(),
            images: sub.len(),
            patients: pats.len(),
            macro_auroc: auc,
        });
        aucs.push(auc);
    }
    let best = (0..aucs.len())
        .max_by(|&x, &y| aucs[x].total_cmp(&aucs[y]))
        .expect("two groups");
    let worst = (0..aucs.len())
        .min_by(|&x, &y| aucs[x].total_cmp(&aucs[y]))
        .expect("two groups");
    let pairs = values.len() * (values.len() - 1) / 2;
    let level = 1.0 - (1.0 - s.level) / pairs as f64;
    let pg = by_patient(&a.patients);
    let vals = resample(&pg, s.resamples, s.seed, |idx| {
        Some(group_auc(best, idx)? - group_auc(worst, idx)?)
    });
    let used = vals.iter().filter(|v| v.is_finite()).count();
    let ci = interval(vals, s.resamples, level).map(|(lo, hi)| [lo, hi]);
    Ok(Gap {
        field: field.to_string(),
        best: values[best].clone(),
        worst: values[worst].clone(),
        gap: Estimate {
            estimate: aucs[best] - aucs[worst],
            ci,
            level,
            resamples: s.resamples,
            used,
        },
        groups,
        observations: kept,
        left_out,
        dropped_groups,
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` patients with two images each; label of obs "A" and "B" drawn at 30%;
    /// the score is the label plus noise of width `noise` (smaller is better).
    fn model(n: usize, noise: f64, seed: u64, label_seed: u64) -> Vec<Image> {
        let mut lr = ChaCha8Rng::seed_from_u64(label_seed);
        let mut sr = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for p in 0..n {
            for k in 0..2 {
                let mut labels = HashMap::new();
                let mut scores = HashMap::new();
                for o in ["A", "B"] {
                    let y = lr.gen_bool(0.3);
                    labels.insert(o.to_string(), y);
                    scores.insert(
                        o.to_string(),
                        f64::from(u8::from(y)) + noise * sr.gen::<f64>(),
                    );
                }
                let mut groups = BTreeMap::new();
                groups.insert(
                    "sex".to_string(),
                    if p % 2 == 0 { "F" } else { "M" }.to_string(),
                );
                out.push(Image {
                    id: format!("p{p}-{k}"),
                    patient: format!("p{p}"),
                    labels,
                    scores,
                    groups,
                    split: None,
                    uncertain: 0,
                });
            }
        }
        out
    }

    fn obs() -> Vec<String> {
        vec!["A".into(), "B".into()]
    }

    const S: Settings = Settings {
        resamples: 400,
        seed: 3,
        level: 0.95,
    };

    #[test]
    fn macro_auroc_is_the_mean_of_the_observations() {
        let m = model(200, 3.0, 1, 9);
        let e = macro_auroc_ci(&m, &obs(), S).unwrap();
        let per = |o: &str| {
            let (y, s): (Vec<bool>, Vec<f64>) =
                m.iter().map(|i| (i.labels[o], i.scores[o])).unzip();
            Ranked::new(&y, &s).auroc().get().unwrap()
        };
        assert!((e.estimate - (per("A") + per("B")) / 2.0).abs() < 1e-12);
        let [lo, hi] = e.ci.unwrap();
        assert!(lo < e.estimate && e.estimate < hi, "{e:?}");
        assert_eq!(e.used, S.resamples);
    }

    #[test]
    fn a_paired_difference_is_narrower_than_the_single_intervals() {
        // b is a with extra noise: the two share most of their errors, as two models
        // of one encoder do, and the pairing cancels them
        let a = model(300, 1.5, 1, 9);
        let mut b = a.clone();
        let mut r = ChaCha8Rng::seed_from_u64(2);
        for i in &mut b {
            for v in i.scores.values_mut() {
                *v += 1.5 * r.gen::<f64>();
            }
        }
        let d = paired_difference(&a, &b, &obs(), S).unwrap();
        let ea = macro_auroc_ci(&a, &obs(), S).unwrap();
        let eb = macro_auroc_ci(&b, &obs(), S).unwrap();
        assert!((d.estimate - (ea.estimate - eb.estimate)).abs() < 1e-12);
        let [lo, hi] = d.ci.unwrap();
        assert!(lo > 0.0, "the less noisy model is better: {d:?}");
        let single = |e: &Estimate| e.ci.unwrap()[1] - e.ci.unwrap()[0];
        assert!(
            hi - lo < single(&ea).max(single(&eb)),
            "{d:?} {ea:?} {eb:?}"
        );
        // the same model against itself: exactly zero on every resample
        let z = paired_difference(&a, &a, &obs(), S).unwrap();
        assert_eq!((z.estimate, z.ci), (0.0, Some([0.0, 0.0])));
        // order of the lines does not matter
        let mut r = b.clone();
        r.reverse();
        assert_eq!(paired_difference(&a, &r, &obs(), S).unwrap(), d);
        // a model missing images is an error, not a silent subset
        assert!(paired_difference(&a, &b[..10], &obs(), S).is_err());
    }

    #[test]
    fn a_drop_difference_is_the_difference_of_the_drops() {
        // model a is as good in both cohorts; model b degrades in the second
        let a_in = model(200, 2.0, 1, 9);
        let b_in = model(200, 2.0, 2, 9);
        let a_out = model(200, 2.0, 3, 10);
        let b_out = model(200, 4.0, 4, 10);
        let d = drop_difference(&a_in, &b_in, &a_out, &b_out, &obs(), S).unwrap();
        let m = |x: &[Image]| macro_auroc_ci(x, &obs(), S).unwrap().estimate;
        let want = (m(&a_in) - m(&a_out)) - (m(&b_in) - m(&b_out));
        assert!((d.estimate - want).abs() < 1e-12);
        assert!(d.ci.unwrap()[1] < 0.0, "a drops less than b: {d:?}");
    }

    #[test]
    fn a_gap_between_equal_groups_contains_zero_and_a_real_one_does_not() {
        let m = model(300, 2.5, 1, 9);
        let g = subgroup_gap(&m, "sex", &obs(), 5, S).unwrap();
        assert_eq!(g.groups.len(), 2);
        assert!(g.gap.estimate >= 0.0);
        let [lo, hi] = g.gap.ci.unwrap();
        assert!(lo < 0.0 && hi > 0.0, "{g:?}");
        // make group M's scores noise only
        let mut bad = m.clone();
        let mut r = ChaCha8Rng::seed_from_u64(5);
        for i in bad.iter_mut().filter(|i| i.groups["sex"] == "M") {
            for v in i.scores.values_mut() {
                *v = r.gen();
            }
        }
        let g = subgroup_gap(&bad, "sex", &obs(), 5, S).unwrap();
        assert_eq!((g.best.as_str(), g.worst.as_str()), ("F", "M"));
        assert!(g.gap.ci.unwrap()[0] > 0.0, "{g:?}");
        // an observation without positives in a group is left out, and said so
        let mut rare = m.clone();
        for i in rare.iter_mut().filter(|i| i.groups["sex"] == "M") {
            i.labels.insert("B".into(), false);
        }
        let g = subgroup_gap(&rare, "sex", &obs(), 5, S).unwrap();
        assert_eq!(g.observations, vec!["A".to_string()]);
        assert!(
            g.left_out["B"].contains("M: 0 positives"),
            "{:?}",
            g.left_out
        );
        assert!(g.dropped_groups.is_empty());
        // a group too small to judge is dropped and named; the others are compared
        let mut tiny = m.clone();
        for i in tiny.iter_mut().take(6) {
            i.groups.insert("sex".into(), "O".into());
        }
        let g = subgroup_gap(&tiny, "sex", &obs(), 5, S).unwrap();
        assert_eq!(g.groups.len(), 2);
        assert!(
            g.dropped_groups["O"].contains("too small"),
            "{:?}",
            g.dropped_groups
        );
        assert_eq!(g.observations, obs());
        assert_eq!(g.pairs, 1);
        // with only one group left there is nothing to compare, and the error says why
        for i in tiny.iter_mut().filter(|i| i.groups["sex"] == "M") {
            i.labels.insert("A".into(), false);
            i.labels.insert("B".into(), false);
        }
        let e = subgroup_gap(&tiny, "sex", &obs(), 5, S).unwrap_err();
        assert!(
            e.contains("fewer than two groups") && e.contains("M: too small"),
            "{e}"
        );
    }
}
