//! Any bytes: parsing, decoding and de-identification must return, never
//! panic, never abort, and never allocate what a header merely declares.
//! Run (nightly, or stable with RUSTC_BOOTSTRAP=1), from `fuzz/`:
//! `cargo install cargo-fuzz && cargo fuzz build -O && mkdir -p corpus/read_and_decode &&
//!  target/x86_64-unknown-linux-gnu/release/read_and_decode corpus/read_and_decode
//!  ../crates/radfm-dicom/tests/fixtures ../../shared/data/dicom-corpus -fork=2
//!  -ignore_crashes=1 -max_total_time=600 -max_len=8192 -rss_limit_mb=2048
//!  -malloc_limit_mb=2048 -artifact_prefix=artifacts/`
//! (new inputs go to `corpus/`; the fixtures and the shared corpus are read-only
//! seeds). Every input it has found is kept in
//! `crates/radfm-dicom/tests/fixtures/fuzz/`, which a test replays.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radfm_dicom::{DicomError, Stage};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = radfm_dicom::read::parse(data) {
        let _ = radfm_dicom::DicomInfo::from_file(&file);
        match radfm_dicom::decode(&file, Stage::Display) {
            // a panic caught inside a codec is still a bug to fix
            Err(DicomError::Panic { reason }) => panic!("caught panic: {reason}"),
            _ => {}
        }
        let _ = radfm_dicom::deid::Deidentifier::new([1; 32]).apply(&file.dataset);
    }
});
