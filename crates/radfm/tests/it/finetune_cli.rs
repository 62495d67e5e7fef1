//! `radfm finetune` end to end on an ingested, split synthetic archive, from
//! a small radfm MAE encoder: LoRA killed with SIGKILL and resumed ends where
//! an uninterrupted run ends (losses, evaluations, adapter, predictions, bit
//! for bit); the classifier directory, its merged form and `model run --lora`
//! agree; full fine-tuning with layer decay on truth labels; bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{fails, json, jsonl, kill_once_logged, ok, radfm, same_files};

/// A synthetic archive of `patients`, ingested at 32 px with its reports and
/// truth, split by patient; and a 2-block MAE encoder pretrained on it.
fn setup(tmp: &Path, patients: usize) -> (PathBuf, PathBuf) {
    let arch = tmp.join("archive");
    ok(radfm()
        .args([
            "synth",
            "--size",
            "64",
            "--seed",
            "6",
            "--burned-in",
            "0",
            "--quiet",
        ])
        .args(["--patients", &patients.to_string(), "--out"])
        .arg(&arch));
    let ds = tmp.join("ds");
    ok(radfm()
        .arg("ingest")
        .arg(arch.join("dicom"))
        .arg("--reports")
        .arg(arch.join("reports.jsonl"))
        .arg("--truth")
        .arg(arch.join("truth.jsonl"))
        .args(["--size", "32", "--quiet", "--out"])
        .arg(&ds));
    ok(radfm()
        .arg("split")
        .arg(&ds)
        .args(["--train", "0.6", "--val", "0.2", "--test", "0.2"]));
    let mae = tmp.join("mae");
    ok(radfm()
        .args(["pretrain", "--data"])
        .arg(&ds)
        .arg("--out")
        .arg(&mae)
        .args([
            "--steps",
            "4",
            "--batch",
            "8",
            "--image-size",
            "32",
            "--patch",
            "8",
        ])
        .args(["--depth", "2", "--quiet"]));
    (ds, mae)
}

fn finetune(ds: &Path, model: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = radfm();
    c.args(["finetune", "--data"])
        .arg(ds)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out)
        .args([
            "--batch",
            "8",
            "--checkpoint-every",
            "4",
            "--seed",
            "2",
            "--quiet",
        ])
        .args(extra);
    c
}

const LORA: [&str; 12] = [
    "--method",
    "lora",
    "--lora-dropout",
    "0.1",
    "--steps",
    "24",
    "--rank",
    "4",
    "--alpha",
    "8",
    "--targets",
    "q,v,fc1",
];

/// The step lines of metrics.jsonl as (step, loss bits), and the evaluation lines.
fn curves(run: &Path) -> (Vec<(u64, u64)>, Vec<String>) {
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for v in jsonl(&run.join("metrics.jsonl")) {
        match v["loss"].as_f64() {
            Some(l) => steps.push((v["step"].as_u64().unwrap(), l.to_bits())),
            None => evals.push(v.to_string()),
        }
    }
    (steps, evals)
}

/// The lora_dropout the exported PEFT adapter records.
fn ac_dropout(run: &Path) -> f64 {
    json(&run.join("model/adapter/adapter_config.json"))["lora_dropout"]
        .as_f64()
        .unwrap()
}

fn npy(path: &Path) -> Vec<f32> {
    let n = radfm_core::npy::Npy::read(std::fs::File::open(path).unwrap()).unwrap();
    n.to_f64().into_iter().map(|x| x as f32).collect()
}

#[test]
fn lora_finetuning_resumes_exactly_and_its_adapter_and_merged_encoder_agree() {
    let t = tempfile::tempdir().unwrap();
    let (ds, mae) = setup(t.path(), 30);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let mut extra = LORA.to_vec();
    extra.push("--merge");
    let err = ok(&mut finetune(&ds, &mae, &a, &extra));
    assert!(err.contains("trainable parameters"), "{err}");
    // the same run killed after a few steps, then resumed
    let killed = kill_once_logged(&mut finetune(&ds, &mae, &b, &extra), &b, 7)
        .expect("the run finished before it could be killed");
    eprintln!("killed after {killed} metric lines");
    assert!(killed < 30, "killed after the last step");
    ok(finetune(&ds, &mae, &b, &extra).arg("--resume"));
    let ((sa, ea), (sb, eb)) = (curves(&a), curves(&b));
    assert_eq!(sa.len(), 24);
    assert_eq!(sa, sb, "loss curves differ (no step lost or repeated)");
    assert_eq!(ea.len(), 6, "an evaluation every 4 steps: {ea:?}");
    assert_eq!(ea, eb, "evaluations differ");
    same_files(
        &a,
        &b,
        &[
            "model/adapter/adapter_model.safetensors",
            "model/encoder/model.safetensors",
            "model/classifier.json",
            "pred.jsonl",
            "checkpoints/step-00000024/optimizer.safetensors",
            "params.json",
        ],
    );

    // LoRA dropout on, and by default the first block of two recomputes its activations
    let cfg = json(&a.join("config.json"));
    assert_eq!(cfg["finetune"]["lora"]["dropout"], 0.1, "{cfg}");
    assert_eq!(cfg["finetune"]["recompute"], 1, "{cfg}");
    assert_eq!(ac_dropout(&a), 0.1);

    // what was trained: q, v and fc1 of both blocks at rank 4 (d 192, mlp 768), and the head
    let params = json(&a.join("params.json"));
    let lora = 2 * (2 * 4 * (192 + 192) + 4 * (192 + 768));
    assert_eq!(params["trainable"], lora + 192 * 14 + 14, "{params}");
    assert_eq!(params["adapted"].as_array().unwrap().len(), 6);
    // the selected step is the best evaluation, and the classifier says so
    let cls = json(&a.join("model/classifier.json"));
    let best = ea
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["val_macro_auroc"].is_number())
        .max_by(|x, y| {
            let (p, q) = (x["val_macro_auroc"].as_f64(), y["val_macro_auroc"].as_f64());
            // the first of equal values wins, as in the run
            p.partial_cmp(&q).unwrap().then(std::cmp::Ordering::Greater)
        })
        .unwrap();
    assert_eq!(cls["selected"]["step"], best["step"], "{cls}");
    assert_eq!(cls["observations"].as_object().unwrap().len(), 14);
    assert!(cls["base"]["sha256"].as_str().unwrap().len() == 64);
    // the adapter is PEFT's format, named for the base's architecture
    let ac = json(&a.join("model/adapter/adapter_config.json"));
    assert_eq!(ac["peft_type"], "LORA");
    assert_eq!(ac["r"], 4);
    assert!(ac["target_modules"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("encoder.layer.1.mlp.fc1")));

    // predictions: every test image once, 14 probabilities
    let index = radfm_data::reader::Reader::open(&ds).unwrap();
    let test: std::collections::BTreeSet<String> = index
        .records()
        .iter()
        .filter(|r| r.split.as_deref() == Some("test"))
        .map(|r| r.sop_uid.clone())
        .collect();
    let pred = jsonl(&a.join("pred.jsonl"));
    let ids: std::collections::BTreeSet<String> = pred
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, test);
    assert!(pred
        .iter()
        .all(|p| p["scores"].as_object().unwrap().len() == 14
            && p["scores"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap()))));

    // the adapter over its base (model run --lora) equals the merged encoder
    let x: Vec<f32> = (0..3 * 32 * 32).map(|i| (i as f32 * 0.013).sin()).collect();
    let xin = t.path().join("x.npy");
    std::fs::write(&xin, radfm_core::npy::f32_bytes(&[3, 1, 32, 32], &x)).unwrap();
    let run = |model: &Path, lora: Option<&Path>, out: &str| -> Vec<f32> {
        let mut c = radfm();
        c.args(["model", "run", "--model"])
            .arg(model)
            .arg("--input")
            .arg(&xin);
        c.arg("--out").arg(t.path().join(out));
        if let Some(l) = lora {
            c.arg("--lora").arg(l);
        }
        ok(&mut c);
        npy(&t.path().join(out))
    };
    let adapted = run(&mae.join("model"), Some(&a.join("model")), "adapted.npy");
    let merged = run(&a.join("model/encoder"), None, "merged.npy");
    let plain = run(&mae.join("model"), None, "plain.npy");
    let diff = |p: &[f32], q: &[f32]| p.iter().zip(q).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = adapted.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        diff(&adapted, &merged) <= 1e-5 * scale.max(1.0),
        "merged differs by {}",
        diff(&adapted, &merged)
    );
    assert!(
        diff(&adapted, &plain) > 1e-3 * scale,
        "the adapter did not train"
    );

    // an adapter is refused on another base: its checksum is recorded
    let other = t.path().join("other");
    ok(radfm()
        .args(["pretrain", "--data"])
        .arg(&ds)
        .arg("--out")
        .arg(&other)
        .args([
            "--steps",
            "1",
            "--batch",
            "8",
            "--image-size",
            "32",
            "--patch",
            "8",
        ])
        .args(["--depth", "2", "--seed", "9", "--quiet"]));
    let err = fails(
        radfm()
            .args(["model", "run", "--model"])
            .arg(other.join("model"))
            .arg("--lora")
            .arg(a.join("model"))
            .arg("--input")
            .arg(&xin)
            .arg("--out")
            .arg(t.path().join("no.npy")),
    );
    assert!(err.contains("sha256"), "{err}");
}

#[test]
fn full_finetuning_on_truth_labels_and_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let (ds, mae) = setup(t.path(), 16);
    let run = t.path().join("full");
    let err = ok(finetune(
        &ds,
        &mae,
        &run,
        &[
            "--method",
            "full",
            "--steps",
            "8",
            "--layer-decay",
            "0.8",
            "--pos-weight",
            "balanced",
            "--labels",
        ],
    )
    .arg(ds.join("truth.jsonl")));
    assert!(err.contains("full fine-tuning"), "{err}");
    let params = json(&run.join("params.json"));
    assert_eq!(params["trainable"], params["total"], "{params}");
    let cfg = json(&run.join("config.json"));
    assert_eq!(cfg["finetune"]["layer_decay"], 0.8);
    assert_eq!(cfg["finetune"]["pos_weight"].as_array().unwrap().len(), 14);
    assert!(run.join("model/encoder/model.safetensors").is_file());
    assert!(!run.join("model/adapter").exists());
    assert!(!jsonl(&run.join("pred.jsonl")).is_empty());

    // resuming with another method is refused, naming the flag
    let err =
        fails(finetune(&ds, &mae, &run, &["--method", "lora", "--steps", "8"]).arg("--resume"));
    assert!(err.contains("--method"), "{err}");
    // an unknown target lists the available ones
    let err = fails(&mut finetune(
        &ds,
        &mae,
        &t.path().join("x"),
        &["--method", "lora", "--targets", "q,qkv"],
    ));
    assert!(
        err.contains("\"qkv\"") && err.contains("fc1") && err.contains("q_proj"),
        "{err}"
    );
    // labels that name none of the dataset's images
    let bogus = t.path().join("bogus.jsonl");
    std::fs::write(&bogus, "{\"id\": \"1.2.3\", \"labels\": {\"Edema\": 1}}\n").unwrap();
    let err = fails(
        finetune(&ds, &mae, &t.path().join("y"), &["--method", "full"])
            .arg("--labels")
            .arg(&bogus),
    );
    assert!(
        err.contains("no image of the train split has labels"),
        "{err}"
    );
    // a dataset ingested without reports has no labels at all
    let bare = t.path().join("bare");
    ok(radfm()
        .arg("ingest")
        .arg(t.path().join("archive/dicom"))
        .args(["--size", "32", "--quiet", "--out"])
        .arg(&bare));
    ok(radfm().arg("split").arg(&bare));
    let err = fails(&mut finetune(
        &bare,
        &mae,
        &t.path().join("z"),
        &["--method", "full"],
    ));
    assert!(err.contains("--reports"), "{err}");
    // nor can a dataset without splits be fine-tuned
    let unsplit = t.path().join("unsplit");
    ok(radfm()
        .arg("ingest")
        .arg(t.path().join("archive/dicom"))
        .arg("--reports")
        .arg(t.path().join("archive/reports.jsonl"))
        .args(["--size", "32", "--quiet", "--out"])
        .arg(&unsplit));
    let err = fails(&mut finetune(
        &unsplit,
        &mae,
        &t.path().join("w"),
        &["--method", "full"],
    ));
    assert!(err.contains("radfm split"), "{err}");
}
