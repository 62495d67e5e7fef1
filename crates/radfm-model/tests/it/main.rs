//! The integration tests of radfm-model: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod minilm;
mod parity;
mod peft;
mod resume;
