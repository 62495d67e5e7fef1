//! `radfm model run` end to end on the committed DINOv2 parity fixture.

use std::path::Path;
use std::process::Command;

use radfm_core::npy::Npy;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-model/tests/fixtures")
}

#[test]
fn model_run_matches_the_reference_and_explains_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("y.npy");
    let dino = fixtures().join("dinov2");
    for (output, reference) in [
        ("pooled", "x24_pooled"),
        ("last_hidden_state", "x24_last_hidden_state"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
            .args(["model", "run", "--model"])
            .arg(&dino)
            .arg("--input")
            .arg(dino.join("x24.npy"))
            .arg("--out")
            .arg(&out)
            .args(["--output", output, "--batch", "1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = Npy::read(std::fs::File::open(&out).unwrap()).unwrap();
        let want =
            Npy::read(std::fs::File::open(dino.join(format!("{reference}.npy"))).unwrap()).unwrap();
        assert_eq!(got.shape, want.shape);
        let diff = got
            .to_f64()
            .iter()
            .zip(want.to_f64())
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-5, "{output}: {diff}");
    }
    // a text model is not an image encoder; a 3-channel input does not fit a 1-channel ViT
    for (model, needle) in [
        ("bert", "not a supported image encoder"),
        ("vit", "3 channels"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
            .args(["model", "run", "--model"])
            .arg(fixtures().join(model))
            .arg("--input")
            .arg(dino.join("x24.npy"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{model}: {err}");
    }
}
