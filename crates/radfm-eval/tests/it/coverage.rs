//! Patient-level bootstrap coverage by simulation: simulated datasets with a
//! known AUROC, where images of one patient share a random effect. The 95%
//! percentile interval must cover the truth 93-97% of the time.
//!
//! One run of 200 datasets estimates coverage with a binomial standard error of
//! about 1.5 points, so the 93-97% band is only +-1.3 standard errors wide: a
//! method with exactly nominal coverage lands outside it in about one run in
//! five. The default test is the 200 datasets at one seed; the
//! `--ignored` test pools ten seeds (2,000 datasets, SE 0.5 points), which is
//! the figure to quote.

use radfm_eval::bootstrap::{by_patient, percentile_ci};
use radfm_eval::metrics::Ranked;
use radfm_eval::normal_cdf;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Coverage counts (patient-level, image-level) over `sims` datasets of 300
/// patients with 1-3 images each, drawn from `seed`. Binormal scores: a
/// patient effect (sd 0.8) plus image noise (sd 0.6), shift 1.0 for positives.
fn coverage(seed: u64, sims: usize) -> (usize, usize, f64) {
    let (d, sb, se): (f64, f64, f64) = (1.0, 0.8, 0.6);
    let truth = normal_cdf(d / (2.0 * (sb * sb + se * se)).sqrt());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut covered, mut covered_naive) = (0, 0);
    for sim in 0..sims as u64 {
        let (mut labels, mut scores, mut patients) = (Vec::new(), Vec::new(), Vec::new());
        for p in 0..300 {
            let y = rng.gen_bool(0.4);
            let b = sb * gauss(&mut rng);
            for _ in 0..rng.gen_range(1..=3) {
                labels.push(y);
                scores.push(d * f64::from(u8::from(y)) + b + se * gauss(&mut rng));
                patients.push(format!("p{p}"));
            }
        }
        let auc = |idx: &[usize]| {
            let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
            let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
            Ranked::new(&l, &s).auroc().get()
        };
        let ci = percentile_ci(&by_patient(&patients), 1000, sim, 0.95, auc).unwrap();
        covered += usize::from(ci.lo <= truth && truth <= ci.hi);
        // the naive image-level bootstrap, for contrast
        let images: Vec<Vec<usize>> = (0..labels.len()).map(|i| vec![i]).collect();
        let naive = percentile_ci(&images, 1000, sim, 0.95, auc).unwrap();
        covered_naive += usize::from(naive.lo <= truth && truth <= naive.hi);
    }
    (covered, covered_naive, truth)
}

#[test]
fn patient_bootstrap_covers_the_true_auroc() {
    let sims = 200;
    let (covered, naive, truth) = coverage(5, sims);
    let cov = covered as f64 / sims as f64;
    let cov_naive = naive as f64 / sims as f64;
    eprintln!("true AUROC {truth:.4}: patient-level coverage {cov:.3}, image-level (wrong) coverage {cov_naive:.3}");
    assert!((0.93..=0.97).contains(&cov), "patient-level coverage {cov}");
    // resampling images ignores the patient effect and undercovers clearly
    assert!(
        cov > cov_naive + 0.05,
        "patient-level {cov} vs image-level {cov_naive}"
    );
}

/// `cargo test -p radfm-eval --release --test it coverage:: -- --ignored --nocapture`
#[test]
#[ignore = "2,000 datasets, about 3 minutes; the pooled coverage figure"]
fn pooled_coverage_over_ten_seeds() {
    let (mut covered, mut naive, mut total) = (0, 0, 0);
    for seed in 1..=10 {
        let (c, n, _) = coverage(seed, 200);
        eprintln!(
            "seed {seed}: patient-level {:.3}, image-level {:.3}",
            c as f64 / 200.0,
            n as f64 / 200.0
        );
        covered += c;
        naive += n;
        total += 200;
    }
    let cov = covered as f64 / total as f64;
    let se = (cov * (1.0 - cov) / total as f64).sqrt();
    eprintln!(
        "pooled over {total} datasets: patient-level {cov:.4} (SE {se:.4}), image-level {:.4}",
        naive as f64 / total as f64
    );
    assert!((0.93..=0.97).contains(&cov), "pooled coverage {cov}");
}
