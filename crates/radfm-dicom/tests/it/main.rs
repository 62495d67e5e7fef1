//! The integration tests of radfm-dicom: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod decode;
mod sr;
