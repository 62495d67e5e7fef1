//! `radfm pretrain` killed with SIGKILL mid-run and resumed ends where an
//! uninterrupted run ends: same loss curve, bitwise-identical weights.

use std::path::Path;
use std::process::Command;

use crate::common::{kill_once_logged, ok, radfm, same_files};

/// A dataset from `radfm ingest` of a synthetic archive of `patients`
/// patients, at 32 px.
fn dataset(dir: &Path, patients: usize) {
    let archive = dir.with_extension("archive");
    ok(radfm()
        .args([
            "synth",
            "--size",
            "64",
            "--seed",
            "4",
            "--quiet",
            "--patients",
        ])
        .arg(patients.to_string())
        .arg("--out")
        .arg(&archive));
    ok(radfm()
        .arg("ingest")
        .arg(archive.join("dicom"))
        .args(["--size", "32", "--quiet", "--out"])
        .arg(dir));
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

/// A run's logged (step, loss bits), in order.
fn loss_curve(run: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

#[test]
fn kill_9_then_resume_equals_an_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("ds");
    dataset(&data, 12);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let o = pretrain(&data, &a, false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the frames were preprocessed once into the dataset's cache ...
    let frames: Vec<_> = std::fs::read_dir(data.join(".cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("frames-"))
        .collect();
    assert_eq!(frames.len(), 2, "{frames:?}");

    // start the same run, kill it once a checkpoint past step 10 exists
    let killed_after = kill_once_logged(&mut pretrain(&data, &b, false), &b, 12);
    let killed_after = killed_after.expect("the run finished before it could be killed");
    eprintln!("killed after {killed_after} logged steps");
    assert!(killed_after < 40, "killed after the last step");
    let o = pretrain(&data, &b, true).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // ... and read back by the later runs
    assert!(err.contains("frames read from"), "{err}");

    let (la, lb) = (loss_curve(&a), loss_curve(&b));
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
    std::fs::write(&xin, radfm_core::npy::f32_bytes(&[2, 1, 32, 32], &x)).unwrap();
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

/// A tiny text tower: the committed random BertModel fixture with a
/// 99-entry vocabulary (special tokens, letters and word pieces).
pub(crate) fn text_model(dir: &Path) {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-model/tests/fixtures/bert");
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fx.join(f), dir.join(f)).unwrap();
    }
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in 'a'..='z' {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    for w in [
        "no",
        "effusion",
        "pleural",
        "pneumothorax",
        "heart",
        "size",
        "normal",
        "the",
        "is",
        "of",
        "left",
        "right",
        "lung",
        "nodule",
        "edema",
        "atelectasis",
        "cardiomegaly",
        "consolidation",
        "mild",
        "moderate",
        "there",
        "with",
        "and",
        "or",
        "clear",
    ] {
        vocab.push(w.to_string());
    }
    vocab.truncate(99);
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
}

fn clip(data: &Path, text: &Path, out: &Path, steps: &str, resume: bool) -> Command {
    let mut c = radfm();
    c.args(["pretrain", "--objective", "clip", "--data"])
        .arg(data)
        .arg("--text-model")
        .arg(text)
        .arg("--out")
        .arg(out)
        .args([
            "--steps",
            steps,
            "--batch",
            "8",
            "--image-size",
            "32",
            "--patch",
            "8",
            "--depth",
            "1",
            "--projection-dim",
            "16",
            "--holdout",
            "0.3",
            "--checkpoint-every",
            "4",
            "--seed",
            "2",
            "--quiet",
        ]);
    if resume {
        c.arg("--resume");
    }
    c
}

#[test]
fn clip_pretraining_on_an_ingested_archive_resumes_exactly_and_reports_retrieval() {
    let t = tempfile::tempdir().unwrap();
    let (archive, data, text) = (
        t.path().join("ar"),
        t.path().join("ds"),
        t.path().join("tx"),
    );
    ok(radfm()
        .args([
            "synth",
            "--patients",
            "14",
            "--size",
            "64",
            "--seed",
            "4",
            "--quiet",
            "--out",
        ])
        .arg(&archive));
    // a fixed key: the held-out patients are chosen by a hash of their pseudonyms, so a
    // fresh random key per run would make the held-out set's size vary from run to run
    let key = t.path().join("fixed.deid-key");
    std::fs::write(&key, "5eed".repeat(16)).unwrap();
    ok(radfm()
        .arg("ingest")
        .arg(archive.join("dicom"))
        .arg("--reports")
        .arg(archive.join("reports.jsonl"))
        .arg("--key")
        .arg(&key)
        .args(["--size", "64", "--quiet", "--out"])
        .arg(&data));
    text_model(&text);

    // without a text tower there is nothing to contrast against
    let o = radfm()
        .args(["pretrain", "--objective", "clip", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(t.path().join("none"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--text-model"));

    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let err = ok(&mut clip(&data, &text, &a, "30", false));
    assert!(err.contains("held out"), "{err}");
    // the report embeddings were cached in the dataset and are reused
    let cached = || {
        std::fs::read_dir(data.join(".cache"))
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name()
                    .to_string_lossy()
                    .starts_with("report-embeddings-")
            })
            .count()
    };
    assert_eq!(cached(), 1);
    // the same run, killed once a few steps are logged (if it is still running), then resumed
    kill_once_logged(&mut clip(&data, &text, &b, "30", false), &b, 6);
    ok(&mut clip(&data, &text, &b, "30", true));
    assert_eq!(cached(), 1);

    assert_eq!(loss_curve(&a).len(), 30);
    assert_eq!(loss_curve(&a), loss_curve(&b));
    same_files(
        &a,
        &b,
        &["model/model.safetensors", "model/clip_head.safetensors"],
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["objective"], "clip");
    assert_eq!(cfg["clip"]["text_dim"], 32);
    assert!(cfg["augment"]["rotate_degrees"].as_f64().unwrap() > 0.0);

    // retrieval on the held-out patients: every held-out image queries every held-out report
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("retrieval.json")).unwrap()).unwrap();
    let (q, c) = (
        r["queries"].as_u64().unwrap(),
        r["candidates"].as_u64().unwrap(),
    );
    assert!(q >= c && c >= 2, "{r}");
    for row in r["recall"].as_array().unwrap() {
        let (k, rec, chance) = (
            row[0].as_u64().unwrap(),
            row[1].as_f64().unwrap(),
            row[2].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&rec));
        assert!((chance - (k as f64 / c as f64).min(1.0)).abs() < 1e-12);
    }
    // the exported encoder is an ordinary radfm ViT
    let x: Vec<f32> = (0..32 * 32).map(|i| (i as f32 * 0.01).cos()).collect();
    let xin = t.path().join("x.npy");
    std::fs::write(&xin, radfm_core::npy::f32_bytes(&[1, 1, 32, 32], &x)).unwrap();
    ok(radfm()
        .args(["model", "run", "--model"])
        .arg(a.join("model"))
        .arg("--input")
        .arg(&xin)
        .arg("--out")
        .arg(t.path().join("y.npy")));
}

/// stderr of a run that must fail with exit 1 or 2 and a reason, never a panic.
fn refused(c: &mut Command) -> String {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "{:?}: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.trim().is_empty());
    err
}

/// The small MAE run of [`pretrain`], with some of its flags set to other values.
fn small(data: &Path, out: &Path, resume: bool, over: &[(&str, &str)]) -> Command {
    let c = pretrain(data, out, resume);
    let mut args: Vec<String> = c
        .get_args()
        .map(|a| a.to_string_lossy().to_string())
        .collect();
    for (flag, v) in over {
        match args.iter().position(|a| a == flag) {
            // `--flag=value` keeps a value such as -1 from reading as a flag
            Some(i) => {
                args[i] = format!("{flag}={v}");
                args.remove(i + 1);
            }
            None => args.push(format!("{flag}={v}")),
        }
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_radfm"));
    c.args(args);
    c
}

#[test]
fn bad_numbers_and_changed_arguments_on_resume_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (data, run) = (t.path().join("ds"), t.path().join("run"));
    dataset(&data, 8);
    // numbers out of range are refused by the parser, naming the flag
    for (flag, v) in [
        ("--patch", "0"),
        ("--batch", "0"),
        ("--lr", "-1"),
        ("--lr", "0"),
        ("--drop-path", "1"),
        ("--image-size", "0"),
    ] {
        let err = refused(&mut small(&data, &run, false, &[(flag, v)]));
        assert!(err.contains(flag), "{flag} {v}: {err}");
    }
    let err = refused(&mut small(&data, &run, false, &[("--image-size", "30")]));
    assert!(
        err.contains("--image-size 30 is not a multiple of --patch 4"),
        "{err}"
    );
    assert!(!run.exists(), "nothing written");
    ok(&mut small(&data, &run, false, &[("--steps", "2")]));
    // resuming with the run's own arguments, extended, works
    ok(&mut small(
        &data,
        &run,
        true,
        &[("--steps", "3"), ("--checkpoint-every", "7")],
    ));
    // anything else that differs is an error listing the saved and the given value
    let err = refused(&mut small(&data, &run, true, &[("--image-size", "64")]));
    assert!(
        err.contains("--image-size: the run has 32, given 64"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let err = refused(&mut small(&data, &run, true, &[("--lr", "0.002")]));
    assert!(
        err.contains("--lr: the run has 0.001, given 0.002"),
        "{err}"
    );
    let err = refused(&mut small(
        &data,
        &run,
        true,
        &[("--lr", "0.002"), ("--batch", "4"), ("--augment", "none")],
    ));
    for flag in ["--lr", "--batch", "--augment"] {
        assert!(
            err.contains(&format!("{flag}: the run has")),
            "{flag}: {err}"
        );
    }
    let err = refused(&mut small(&data, &run, true, &[("--depth", "3")]));
    assert!(err.contains("--depth: the run has 2, given 3"), "{err}");
    let err = refused(&mut small(
        &data,
        &run,
        true,
        &[("--norm-pix-loss", "false")],
    ));
    assert!(
        err.contains("--norm-pix-loss: the run has true, given false"),
        "{err}"
    );
    // a CLIP run's text tower: the MAE run's config rewritten as a CLIP run's
    let cfg_path = run.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let enc = cfg["mae"]["encoder"].clone();
    let obj = cfg.as_object_mut().unwrap();
    obj.remove("mae");
    obj.insert("objective".into(), "clip".into());
    obj.insert(
        "clip".into(),
        serde_json::json!({"encoder": enc, "text_dim": 16, "projection_dim": 128,
                           "init_temperature": 0.07, "text_model": "/models/text-a"}),
    );
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let err = refused(&mut small(
        &data,
        &run,
        true,
        &[("--objective", "clip"), ("--text-model", "/models/text-b")],
    ));
    assert!(
        err.contains("--text-model: the run has \"/models/text-a\", given \"/models/text-b\""),
        "{err}"
    );
}
