//! `radfm pretrain` killed with SIGKILL mid-run and resumed ends where an
//! uninterrupted run ends: same loss curve, bitwise-identical weights.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A dataset directory with one shard of `n` small uint16 images.
fn dataset(dir: &Path, n: usize) {
    let shards = dir.join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    let f = std::fs::File::create(shards.join("shard-000000.tar")).unwrap();
    let mut tar = tar::Builder::new(f);
    for i in 0..n {
        let (cx, cy) = ((i * 7 % 23) as f64 + 4.0, (i * 5 % 19) as f64 + 6.0);
        let px: Vec<u16> = (0..32 * 32)
            .map(|k| {
                let (x, y) = ((k % 32) as f64, (k / 32) as f64);
                (65535.0 * (-((x - cx).powi(2) + (y - cy).powi(2)) / 40.0).exp()) as u16
            })
            .collect();
        let raw: Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
        let npy = radfm_dicom::npy::to_bytes("<u2", &[1, 32, 32, 1], &raw);
        let mut h = tar::Header::new_gnu();
        h.set_size(npy.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("{i:09}.npy"), &npy[..])
            .unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
}

fn pretrain(data: &Path, out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_radfm"));
    c.args(["pretrain", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--steps",
            "40",
            "--batch",
            "8",
            "--image-size",
            "32",
            "--patch",
            "4",
            "--depth",
            "2",
            "--checkpoint-every",
            "5",
            "--seed",
            "3",
            "--quiet",
        ]);
    if resume {
        c.arg("--resume");
    }
    c
}

#[test]
fn kill_9_then_resume_equals_an_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("ds");
    dataset(&data, 24);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let o = pretrain(&data, &a, false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // start the same run, kill it once a checkpoint past step 10 exists
    let mut child = pretrain(&data, &b, false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut killed_after = None;
    while t0.elapsed() < Duration::from_secs(120) {
        let lines = std::fs::read_to_string(b.join("metrics.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= 12 {
            child.kill().unwrap(); // SIGKILL
            killed_after = Some(lines);
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait().unwrap();
    let killed_after = killed_after.expect("the run finished before it could be killed");
    eprintln!("killed after {killed_after} logged steps");
    assert!(killed_after < 40, "killed after the last step");
    let o = pretrain(&data, &b, true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let metrics = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let losses = |m: &str| -> Vec<(u64, u64)> {
        m.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["step"].as_u64().unwrap(),
                    v["loss"].as_f64().unwrap().to_bits(),
                )
            })
            .collect()
    };
    let (la, lb) = (losses(&metrics(&a)), losses(&metrics(&b)));
    assert_eq!(la.len(), 40);
    assert_eq!(la, lb, "loss curves differ (no step lost or repeated)");
    for f in [
        "model/model.safetensors",
        "checkpoints/step-00000040/optimizer.safetensors",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    // the exported encoder runs
    let x: Vec<f32> = (0..2 * 32 * 32).map(|i| (i as f32 * 0.01).sin()).collect();
    let xin = t.path().join("x.npy");
    std::fs::write(&xin, radfm_dicom::npy::f32_bytes(&[2, 1, 32, 32], &x)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args(["model", "run", "--model"])
        .arg(b.join("model"))
        .arg("--input")
        .arg(&xin)
        .arg("--out")
        .arg(t.path().join("y.npy"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
