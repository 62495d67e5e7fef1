//! Post-hoc calibration fitted on a validation split: temperature scaling
//! (one parameter, `sigma(logit(p) / T)`) and Platt scaling (`sigma(a *
//! logit(p) + b)`), both by maximum likelihood.

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Mean negative log-likelihood of (soft) targets under probabilities `sigma(a*z + b)`.
fn nll_soft(z: &[f64], targets: &[f64], a: f64, b: f64) -> f64 {
    let mut s = 0.0;
    for (&zi, &ti) in z.iter().zip(targets) {
        let t = a * zi + b;
        // log(1 + e^t) - target*t, stably
        let sp = if t > 0.0 {
            t + (-t).exp().ln_1p()
        } else {
            t.exp().ln_1p()
        };
        s += sp - ti * t;
    }
    s / z.len() as f64
}

fn nll(z: &[f64], y: &[bool], a: f64, b: f64) -> f64 {
    let t: Vec<f64> = y.iter().map(|&l| f64::from(u8::from(l))).collect();
    nll_soft(z, &t, a, b)
}

/// The temperature minimising the validation NLL (golden-section search over log T in [-4, 4]).
pub fn fit_temperature(probs: &[f64], labels: &[bool]) -> f64 {
    let z: Vec<f64> = probs.iter().map(|&p| logit(p)).collect();
    let f = |lt: f64| nll(&z, labels, (-lt).exp(), 0.0);
    let (mut lo, mut hi) = (-4.0f64, 4.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (hi - g * (hi - lo), lo + g * (hi - lo));
    for _ in 0..100 {
        if f(c) < f(d) {
            hi = d;
        } else {
            lo = c;
        }
        c = hi - g * (hi - lo);
        d = lo + g * (hi - lo);
    }
    ((lo + hi) / 2.0).exp()
}

/// Platt's (a, b) by damped Newton's method on the logistic likelihood of
/// logit(p), with Platt's targets (N+ + 1)/(N+ + 2) and 1/(N- + 2) instead of
/// 1 and 0, which keeps a small or separable validation set from overfitting.
pub fn fit_platt(probs: &[f64], labels: &[bool]) -> (f64, f64) {
    let z: Vec<f64> = probs.iter().map(|&p| logit(p)).collect();
    let np = labels.iter().filter(|&&l| l).count() as f64;
    let nn = labels.len() as f64 - np;
    let targets: Vec<f64> = labels
        .iter()
        .map(|&l| {
            if l {
                (np + 1.0) / (np + 2.0)
            } else {
                1.0 / (nn + 2.0)
            }
        })
        .collect();
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&zi, &ti) in z.iter().zip(&targets) {
            let p = sigmoid(a * zi + b);
            let r = p - ti;
            ga += r * zi;
            gb += r;
            let w = p * (1.0 - p);
            haa += w * zi * zi;
            hab += w * zi;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // damped Newton: halve the step until the likelihood improves
        let before = nll_soft(&z, &targets, a, b);
        let mut step = 1.0;
        while step > 1e-10 && nll_soft(&z, &targets, a - step * da, b - step * db) > before {
            step /= 2.0;
        }
        a -= step * da;
        b -= step * db;
        if (step * da).abs() + (step * db).abs() < 1e-12 {
            break;
        }
    }
    (a, b)
}

/// Apply temperature `t` to probabilities.
pub fn apply_temperature(probs: &[f64], t: f64) -> Vec<f64> {
    probs.iter().map(|&p| sigmoid(logit(p) / t)).collect()
}

/// Apply Platt's (a, b) to probabilities.
pub fn apply_platt(probs: &[f64], ab: (f64, f64)) -> Vec<f64> {
    probs
        .iter()
        .map(|&p| sigmoid(ab.0 * logit(p) + ab.1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_temperature_and_platt() {
        // labels drawn from sigma(z), reported as sigma(3 z): over-confident by T = 3
        let mut x: u64 = 99;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000) as f64 / 1_000_000.0
        };
        let (mut p, mut y) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let z = (rnd() - 0.5) * 8.0;
            y.push(rnd() < sigmoid(z));
            p.push(sigmoid(3.0 * z));
        }
        let t = fit_temperature(&p, &y);
        assert!((t - 3.0).abs() < 0.15, "T {t}");
        let (a, b) = fit_platt(&p, &y);
        assert!(
            (a - 1.0 / 3.0).abs() < 0.02 && b.abs() < 0.05,
            "a {a} b {b}"
        );
        let before = crate::metrics::ece(&y, &p, 10, crate::metrics::Bins::Uniform)
            .get()
            .unwrap();
        let after = crate::metrics::ece(
            &y,
            &apply_temperature(&p, t),
            10,
            crate::metrics::Bins::Uniform,
        )
        .get()
        .unwrap();
        assert!(after < before / 3.0, "ECE {before} -> {after}");
    }
}
