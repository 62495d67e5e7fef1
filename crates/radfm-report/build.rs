//! Decides whether the tests that need `../shared` run (see `tests/it/iu_dev.rs`):
//! with the IU reports present they run; under CI without them they run and
//! fail; elsewhere they are ignored with the reason.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(radfm_has_iu, radfm_ci)");
    println!("cargo::rerun-if-env-changed=CI");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    println!("cargo::rerun-if-changed={}", root.display());
    if root
        .join("shared/data/iu-xray/iu-xray-reports-dev.tgz")
        .exists()
    {
        println!("cargo::rustc-cfg=radfm_has_iu");
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        println!("cargo::rustc-cfg=radfm_ci");
    }
}
