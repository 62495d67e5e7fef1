//! radfm-eval: the statistics behind `radfm evaluate`, with no model and no
//! tensor framework.
//!
//! - [`metrics`]: AUROC, AUPRC (average precision), F1, sensitivity,
//!   specificity, PPV, NPV, Brier score, equal-width and equal-mass expected
//!   calibration error, each matching scikit-learn's definition (ties
//!   included) to within 1e-9 on the committed fixtures.
//! - [`delong`]: DeLong's test for the AUROC difference of two models scored
//!   on the same images (the fast midrank algorithm of Sun and Xu, 2014).
//! - [`bootstrap`]: percentile confidence intervals that resample patients,
//!   not images.
//!
//! A metric that is undefined (one class only, no positive predictions for
//! PPV, ...) is [`Value::Undefined`] with its reason, never NaN in disguise or
//! a silent 0.5.

pub mod bootstrap;
pub mod calibrate;
pub mod delong;
pub mod evaluate;
pub mod html;
pub mod metrics;
pub mod paired;
pub mod report;

/// A metric value, or why there is none.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Defined(f64),
    Undefined(&'static str),
}

impl Value {
    pub fn get(&self) -> Option<f64> {
        match self {
            Value::Defined(v) => Some(*v),
            Value::Undefined(_) => None,
        }
    }

    /// The value, or NaN when undefined (for arithmetic).
    pub fn or_nan(&self) -> f64 {
        self.get().unwrap_or(f64::NAN)
    }
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}
