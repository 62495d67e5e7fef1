//! Decides whether the Orthanc and dciodvfy tests run (see
//! `tests/it/deploy_cli.rs`): with Orthanc and its DICOMweb plugin (and
//! dciodvfy) installed they run; under CI without them they run and fail;
//! elsewhere they are ignored with the reason.

use std::path::Path;

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(radfm_has_orthanc, radfm_has_dciodvfy, radfm_ci)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let orthanc = on_path("Orthanc") || Path::new("/usr/sbin/Orthanc").is_file();
    let plugin = Path::new("/usr/share/orthanc/plugins/libOrthancDicomWeb.so").is_file();
    if orthanc && plugin {
        println!("cargo::rustc-cfg=radfm_has_orthanc");
    }
    if on_path("dciodvfy") {
        println!("cargo::rustc-cfg=radfm_has_dciodvfy");
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        println!("cargo::rustc-cfg=radfm_ci");
    }
}
