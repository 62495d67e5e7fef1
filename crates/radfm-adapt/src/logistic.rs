//! Binary logistic regression with an L2 penalty on the coefficients and an
//! unpenalised intercept: the minimiser of
//!
//! ```text
//! 0.5 * |w|^2 + C * sum_i s_i * [log(1 + exp(z_i)) - y_i * z_i],   z_i = x_i . w + b
//! ```
//!
//! which is scikit-learn's `LogisticRegression(C=C)` objective (`s_i` are
//! sample or class weights, 1 by default). It is strictly convex, so the
//! minimiser is unique and any solver that converges far enough finds the
//! same model; this one is L-BFGS in float64 with a tight gradient tolerance
//! (scikit-learn's default `tol=1e-4` stops earlier: its fixtures are made
//! with a tight tolerance, see `tools/probe_reference.py`).
//!
//! Features stay float32 (embeddings are stored so; widening to float64 is
//! exact) and every sum is float64. One evaluation reads each row once: the
//! row's score, loss and gradient contribution are computed while it is in
//! cache.

use serde::{Deserialize, Serialize};

/// A row-major float32 feature matrix, `n` rows of `d` features.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    data: &'a [f32],
    n: usize,
    d: usize,
}

impl<'a> Features<'a> {
    /// `data` holds `n * d` values, row after row.
    pub fn new(data: &'a [f32], n: usize, d: usize) -> Result<Self, FitError> {
        if data.len() != n * d {
            return Err(FitError::Shape {
                len: data.len(),
                n,
                d,
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(FitError::NotFinite {
                row: i / d.max(1),
                column: i % d.max(1),
            });
        }
        Ok(Self { data, n, d })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn dim(&self) -> usize {
        self.d
    }

    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
}

/// Why a fit could not start.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("features: {len} values are not {n} rows of {d}")]
    Shape { len: usize, n: usize, d: usize },
    #[error("features: row {row}, column {column} is not a finite number")]
    NotFinite { row: usize, column: usize },
    #[error("fit: {what}")]
    Input { what: String },
}

/// A fitted linear model: P(y = 1 | x) = sigmoid(x . coef + intercept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub coef: Vec<f64>,
    pub intercept: f64,
}

impl Model {
    pub fn zeros(d: usize) -> Self {
        Self {
            coef: vec![0.0; d],
            intercept: 0.0,
        }
    }

    /// The score x . coef + intercept.
    pub fn decision(&self, x: &[f32]) -> f64 {
        dot(x, &self.coef) + self.intercept
    }

    /// P(y = 1 | x).
    pub fn proba(&self, x: &[f32]) -> f64 {
        sigmoid(self.decision(x))
    }
}

/// How far to go.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// inverse regularisation strength, as scikit-learn's `C`
    pub c: f64,
    /// stop when every gradient component of the objective divided by
    /// `C * sum(s)` is below this
    pub tol: f64,
    pub max_iter: usize,
}

impl Settings {
    pub fn new(c: f64) -> Self {
        Self {
            c,
            tol: 1e-10,
            max_iter: 5000,
        }
    }
}

/// A fit and how it went.
#[derive(Debug, Clone)]
pub struct Fit {
    pub model: Model,
    pub iterations: usize,
    pub converged: bool,
    /// the objective divided by `C * sum(s)`
    pub objective: f64,
}

/// The training rows of one problem: which rows of the features, their
/// labels and their weights.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub index: &'a [usize],
    pub y: &'a [bool],
    pub weight: &'a [f64],
}

/// Fit by L-BFGS from `start` (a warm start, e.g. the fit at the previous C
/// of a path) or from zeros.
pub fn fit(
    x: &Features,
    rows: Rows,
    settings: &Settings,
    start: Option<&Model>,
) -> Result<Fit, FitError> {
    let d = x.dim();
    if rows.index.len() != rows.y.len() || rows.y.len() != rows.weight.len() {
        return Err(FitError::Input {
            what: format!(
                "{} rows, {} labels and {} weights",
                rows.index.len(),
                rows.y.len(),
                rows.weight.len()
            ),
        });
    }
    if let Some(&i) = rows.index.iter().find(|&&i| i >= x.rows()) {
        return Err(FitError::Input {
            what: format!("row {i} of {}", x.rows()),
        });
    }
    if !(settings.c > 0.0 && settings.c.is_finite()) {
        return Err(FitError::Input {
            what: format!("C must be a positive number, not {}", settings.c),
        });
    }
    let total: f64 = rows.weight.iter().sum();
    if rows.weight.iter().any(|&s| !(s >= 0.0 && s.is_finite())) || total <= 0.0 {
        return Err(FitError::Input {
            what: "weights must be non-negative with a positive sum".into(),
        });
    }
    let objective = Objective {
        x,
        rows,
        inv_total: 1.0 / total,
        ridge: 1.0 / (settings.c * total),
    };
    let mut theta = vec![0.0; d + 1];
    if let Some(m) = start {
        if m.coef.len() != d {
            return Err(FitError::Input {
                what: format!("a start of {} coefficients for {d} features", m.coef.len()),
            });
        }
        theta[..d].copy_from_slice(&m.coef);
        theta[d] = m.intercept;
    }
    let (theta, f, iterations, converged) = lbfgs(&objective, theta, settings);
    Ok(Fit {
        model: Model {
            coef: theta[..d].to_vec(),
            intercept: theta[d],
        },
        iterations,
        converged,
        objective: f,
    })
}

/// The objective divided by `C * sum(s)`, so that its size does not follow C
/// or the number of rows: mean weighted loss plus ridge/2 * |w|^2.
struct Objective<'a> {
    x: &'a Features<'a>,
    rows: Rows<'a>,
    inv_total: f64,
    ridge: f64,
}

impl Objective<'_> {
    /// The objective at theta = (w, b), with its gradient in `g`.
    fn eval(&self, theta: &[f64], g: &mut [f64]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above
            return unsafe { self.eval_avx2(theta, g) };
        }
        self.eval_body(theta, g)
    }

    /// [`Objective::eval`] compiled for AVX2: wider lanes, the same
    /// operations in the same order (no FMA), so the same values.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn eval_avx2(&self, theta: &[f64], g: &mut [f64]) -> f64 {
        self.eval_body(theta, g)
    }

    #[inline(always)]
    fn eval_body(&self, theta: &[f64], g: &mut [f64]) -> f64 {
        let d = self.x.dim();
        let (w, b) = (&theta[..d], theta[d]);
        g.iter_mut().for_each(|v| *v = 0.0);
        let (gw, gb) = g.split_at_mut(d);
        let mut loss = 0.0;
        let mut grad_b = 0.0;
        for ((&i, &y), &s) in self
            .rows
            .index
            .iter()
            .zip(self.rows.y)
            .zip(self.rows.weight)
        {
            if s == 0.0 {
                continue;
            }
            let row = self.x.row(i);
            let z = dot(row, w) + b;
            let y = if y { 1.0 } else { 0.0 };
            loss += s * (softplus(z) - y * z);
            let r = s * (sigmoid(z) - y);
            grad_b += r;
            for (gj, &xj) in gw.iter_mut().zip(row) {
                *gj += r * f64::from(xj);
            }
        }
        let mut sq = 0.0;
        for (gj, &wj) in gw.iter_mut().zip(w) {
            *gj = *gj * self.inv_total + self.ridge * wj;
            sq += wj * wj;
        }
        gb[0] = grad_b * self.inv_total;
        loss * self.inv_total + 0.5 * self.ridge * sq
    }
}

/// Limited-memory BFGS (ten pairs) with a backtracking Armijo line search;
/// a pair that would break positive curvature is not kept.
fn lbfgs(obj: &Objective, mut x: Vec<f64>, settings: &Settings) -> (Vec<f64>, f64, usize, bool) {
    const MEMORY: usize = 10;
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut f = obj.eval(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::with_capacity(MEMORY);
    let mut y_hist: Vec<Vec<f64>> = Vec::with_capacity(MEMORY);
    let mut rho: Vec<f64> = Vec::with_capacity(MEMORY);
    let mut dir = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut alpha = [0.0; MEMORY];
    for iter in 0..settings.max_iter {
        if max_abs(&g) <= settings.tol {
            return (x, f, iter, true);
        }
        // two-loop recursion: dir = -H g
        dir.copy_from_slice(&g);
        for k in (0..s_hist.len()).rev() {
            alpha[k] = rho[k] * dotf(&s_hist[k], &dir);
            axpyf(&mut dir, -alpha[k], &y_hist[k]);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dotf(s, y) / dotf(y, y),
            // first step: a unit step along the steepest descent, scaled
            _ => 1.0 / max_abs(&g).max(1.0),
        };
        dir.iter_mut().for_each(|v| *v *= gamma);
        for k in 0..s_hist.len() {
            let beta = rho[k] * dotf(&y_hist[k], &dir);
            axpyf(&mut dir, alpha[k] - beta, &s_hist[k]);
        }
        dir.iter_mut().for_each(|v| *v = -*v);
        let mut slope = dotf(&g, &dir);
        if slope >= 0.0 {
            // not a descent direction (history gone stale): restart
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            let scale = 1.0 / max_abs(&g).max(1.0);
            dir.iter_mut().zip(&g).for_each(|(d, &gi)| *d = -gi * scale);
            slope = dotf(&g, &dir);
        }
        let mut step = 1.0;
        let mut f_new;
        loop {
            x_new
                .iter_mut()
                .zip(&x)
                .zip(&dir)
                .for_each(|((xn, &xi), &di)| *xn = xi + step * di);
            f_new = obj.eval(&x_new, &mut g_new);
            if f_new <= f + 1e-4 * step * slope || step < 1e-20 {
                break;
            }
            step *= 0.5;
        }
        if f_new > f {
            // no decrease even at a vanishing step: as far as float64 goes
            return (x, f, iter, max_abs(&g) <= settings.tol.sqrt());
        }
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dotf(&s, &y);
        if sy > 1e-12 * dotf(&s, &s).sqrt() * dotf(&y, &y).sqrt() {
            if s_hist.len() == MEMORY {
                s_hist.remove(0);
                y_hist.remove(0);
                rho.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho.push(1.0 / sy);
        }
        let decrease = f - f_new;
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        f = f_new;
        if decrease <= f64::EPSILON * f.abs().max(1e-300) && max_abs(&g) <= settings.tol.sqrt() {
            // stalled at float64's resolution, close enough to the optimum
            return (x, f, iter + 1, true);
        }
    }
    let converged = max_abs(&g) <= settings.tol;
    (x, f, settings.max_iter, converged)
}

/// x . w for a float32 row, summed in float64 with four accumulators.
#[inline(always)]
fn dot(x: &[f32], w: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (xc, wc) = (x.chunks_exact(4), w.chunks_exact(4));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (a, b) in xc.zip(wc) {
        for k in 0..4 {
            acc[k] += f64::from(a[k]) * b[k];
        }
    }
    let tail: f64 = xr.iter().zip(wr).map(|(&a, &b)| f64::from(a) * b).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn dotf(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpyf(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(yi, &xi)| *yi += a * xi);
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// scikit-learn's `class_weight="balanced"`: each row weighs
/// n / (2 * rows of its class).
pub fn balanced_weights(y: &[bool]) -> Vec<f64> {
    let pos = y.iter().filter(|&&v| v).count();
    let n = y.len() as f64;
    let (wp, wn) = (n / (2.0 * pos as f64), n / (2.0 * (y.len() - pos) as f64));
    y.iter().map(|&v| if v { wp } else { wn }).collect()
}

/// log(1 + exp(z)) without overflow.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// 1 / (1 + exp(-z)) without overflow.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f32> = (0..n * d).map(|_| next() as f32 * 2.0).collect();
        let y = (0..n)
            .map(|i| {
                let z: f64 = x[i * d..(i + 1) * d]
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| v as f64 * (j as f64 - 1.0))
                    .sum();
                z + next() * 2.0 > 0.3
            })
            .collect();
        (x, y)
    }

    /// At the optimum the gradient of the unscaled objective vanishes:
    /// w + C * X^T (s (p - y)) = 0 and sum s (p - y) = 0.
    #[test]
    fn the_fit_is_a_stationary_point_of_the_objective() {
        let (n, d) = (300, 5);
        let (x, y) = problem(n, d, 7);
        let f = Features::new(&x, n, d).unwrap();
        let index: Vec<usize> = (0..n).collect();
        let weight: Vec<f64> = y.iter().map(|&v| if v { 2.0 } else { 1.0 }).collect();
        for c in [1e-3, 0.1, 10.0, 1e4] {
            let rows = Rows {
                index: &index,
                y: &y,
                weight: &weight,
            };
            let fit = fit(&f, rows, &Settings::new(c), None).unwrap();
            assert!(fit.converged, "C={c}: {} iterations", fit.iterations);
            let m = &fit.model;
            let mut gw = m.coef.clone();
            let mut gb = 0.0;
            for i in 0..n {
                let r = weight[i] * (m.proba(f.row(i)) - f64::from(u8::from(y[i])));
                gb += c * r;
                for (g, &xj) in gw.iter_mut().zip(f.row(i)) {
                    *g += c * r * f64::from(xj);
                }
            }
            let scale = c * weight.iter().sum::<f64>();
            let worst = gw.iter().chain([&gb]).fold(0.0f64, |a, v| a.max(v.abs())) / scale;
            assert!(worst < 1e-8, "C={c}: gradient {worst}");
        }
    }

    #[test]
    fn a_warm_start_reaches_the_same_model() {
        let (n, d) = (200, 4);
        let (x, y) = problem(n, d, 11);
        let f = Features::new(&x, n, d).unwrap();
        let index: Vec<usize> = (0..n).collect();
        let weight = vec![1.0; n];
        let rows = Rows {
            index: &index,
            y: &y,
            weight: &weight,
        };
        let cold = fit(&f, rows, &Settings::new(5.0), None).unwrap();
        let near = fit(&f, rows, &Settings::new(1.0), None).unwrap();
        let warm = fit(&f, rows, &Settings::new(5.0), Some(&near.model)).unwrap();
        for (a, b) in cold.model.coef.iter().zip(&warm.model.coef) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
        assert!(
            warm.iterations < cold.iterations,
            "{} vs {}",
            warm.iterations,
            cold.iterations
        );
    }

    #[test]
    fn bad_input_is_named() {
        let x = [0.0f32, 1.0, f32::NAN, 2.0];
        assert_eq!(
            Features::new(&x, 2, 2).unwrap_err(),
            FitError::NotFinite { row: 1, column: 0 }
        );
        assert!(matches!(
            Features::new(&x[..3], 2, 2),
            Err(FitError::Shape { len: 3, .. })
        ));
        let x = [0.0f32, 1.0, 3.0, 2.0];
        let f = Features::new(&x, 2, 2).unwrap();
        let rows = Rows {
            index: &[0, 1],
            y: &[true, false],
            weight: &[1.0, 1.0],
        };
        let e = fit(&f, rows, &Settings::new(-1.0), None).unwrap_err();
        assert!(e.to_string().contains("C must be a positive"), "{e}");
    }

    #[test]
    fn stable_at_the_extremes() {
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
        assert!((softplus(800.0) - 800.0).abs() < 1e-12);
        assert!(softplus(-800.0) >= 0.0 && softplus(-800.0) < 1e-300);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
    }
}
