//! radfm-adapt: adapting a frozen encoder's embeddings to a task without burn.
//!
//! - [`logistic`]: L2-penalised logistic regression in float64, the minimiser of
//!   scikit-learn's `LogisticRegression` objective (intercept unpenalised), fitted
//!   by L-BFGS with warm starts along a C path.

pub mod logistic;
pub mod probe;
