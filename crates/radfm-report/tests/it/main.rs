//! The integration tests of radfm-report: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod iu_dev;
mod metrics_reference;
mod phi_iu;
mod phi_scrub;
