//! The integration tests of radfm-synth: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod burned_in;
mod synth;
