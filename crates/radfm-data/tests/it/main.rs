//! The integration tests of radfm-data: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod ingest;
mod preprocess;
mod reader;
