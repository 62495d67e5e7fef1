//! Decides whether the shared-corpus and dciodvfy tests run (see
//! `tests/it/main.rs`): with the corpus (or `dciodvfy` on PATH) present they
//! run; under CI without it, they run and fail; elsewhere they are ignored
//! with the reason.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(radfm_has_corpus, radfm_has_dciodvfy, radfm_ci)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=RADFM_DICOM_CORPUS");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    println!("cargo::rerun-if-changed={}", root.display());
    let corpus = std::env::var_os("RADFM_DICOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("shared/data/dicom-corpus"));
    if corpus.is_dir() {
        println!("cargo::rustc-cfg=radfm_has_corpus");
    }
    println!("cargo::rerun-if-env-changed=PATH");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("dciodvfy").is_file()));
    if on_path {
        println!("cargo::rustc-cfg=radfm_has_dciodvfy");
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        println!("cargo::rustc-cfg=radfm_ci");
    }
}
