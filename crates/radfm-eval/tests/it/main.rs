//! The integration tests of radfm-eval: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod coverage;
mod parity;
