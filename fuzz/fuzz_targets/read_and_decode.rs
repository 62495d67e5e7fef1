//! Any bytes: parsing and decoding must return, never panic, never abort.
//! Run (nightly, or stable with RUSTC_BOOTSTRAP=1):
//! `cargo install cargo-fuzz && cd fuzz && mkdir -p corpus &&
//!  cargo fuzz run read_and_decode corpus ../crates/radfm-dicom/tests/fixtures`
//! (new inputs go to `corpus/`; the fixtures are a read-only seed corpus).
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
