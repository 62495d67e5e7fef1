//! `radfm embed` and `radfm probe` end to end: a small ingested dataset with
//! weak labels, a tiny DINOv2 checkpoint (the committed model fixture) with a
//! preprocessor config, embeddings in dataset order with their index, probes
//! per observation at fractions, shots and repeats, and the errors for bad input.

use std::path::{Path, PathBuf};

use crate::common::{fails, jsonl, ok, radfm};

/// A small synthetic archive (distinct images, several per patient for
/// some), its reports replaced by controlled ones (every other study with an
/// effusion, nothing else positive), ingested and split; its image count.
pub(crate) fn dataset(tmp: &Path, patients: usize) -> (PathBuf, usize) {
    let arch = tmp.join("archive");
    ok(radfm()
        .args(["synth", "--out"])
        .arg(&arch)
        .args([
            "--patients",
            &patients.to_string(),
            "--seed",
            "4",
            "--size",
            "64",
        ])
        .args(["--burned-in", "0", "--quiet"]));
    let reports: String = std::fs::read_to_string(arch.join("reports.jsonl"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"] = serde_json::json!(if i % 2 == 0 {
                "FINDINGS: Large right pleural effusion. IMPRESSION: Effusion."
            } else {
                "FINDINGS: No pleural effusion. Heart size normal. IMPRESSION: Normal chest."
            });
            format!("{v}\n")
        })
        .collect();
    std::fs::write(tmp.join("reports.jsonl"), reports).unwrap();
    let out = tmp.join("ds");
    // a fixed key: the split goes by a hash of the pseudonyms, so a fresh random key per run
    // would put other patients in val and test each run, and the models built on it vary
    let key = tmp.join("fixed.deid-key");
    std::fs::write(&key, "5eed".repeat(16)).unwrap();
    ok(radfm()
        .arg("ingest")
        .arg("--key")
        .arg(&key)
        .arg(arch.join("dicom"))
        .arg("--reports")
        .arg(tmp.join("reports.jsonl"))
        .arg("--truth")
        .arg(arch.join("truth.jsonl"))
        .arg("--out")
        .arg(&out)
        .args(["--size", "24", "--shard-size", "5", "--quiet"]));
    ok(radfm()
        .arg("split")
        .arg(&out)
        .args(["--train", "0.6", "--val", "0.2", "--test", "0.2"]));
    let n = radfm_data::reader::Reader::open(&out)
        .unwrap()
        .records()
        .len();
    (out, n)
}

/// The committed tiny DINOv2 (16 px, 3 channels) with a processor config.
pub(crate) fn model(tmp: &Path, with_processor: bool) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-model/tests/fixtures/dinov2");
    let dir = tmp.join(if with_processor {
        "model"
    } else {
        "bare-model"
    });
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    if with_processor {
        std::fs::write(
            dir.join("preprocessor_config.json"),
            serde_json::json!({
                "crop_size": {"height": 16, "width": 16}, "do_center_crop": true,
                "do_normalize": true, "do_rescale": true, "do_resize": true,
                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
                "resample": 3, "rescale_factor": 0.00392156862745098,
                "size": {"shortest_edge": 18}
            })
            .to_string(),
        )
        .unwrap();
    }
    dir
}

fn npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let n = radfm_core::npy::Npy::read(std::fs::File::open(path).unwrap()).unwrap();
    let v = n.to_f64().into_iter().map(|x| x as f32).collect();
    (n.shape, v)
}

#[test]
fn embed_then_probe_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, n) = dataset(tmp.path(), 16);
    assert!(n >= 16, "{n} images");
    let m = model(tmp.path(), true);
    let emb = tmp.path().join("emb");
    ok(radfm()
        .args(["embed", "--model"])
        .arg(&m)
        .arg("--data")
        .arg(&ds)
        .arg("--out")
        .arg(&emb)
        .args(["--batch", "3", "--quiet"]));
    let (shape, x) = npy_f32(&emb.join("embeddings.npy"));
    assert_eq!(shape, vec![n, 32]);
    assert!(x.iter().all(|v| v.is_finite()));
    let index = jsonl(&emb.join("index.jsonl"));
    assert_eq!(index.len(), n);
    // rows follow the dataset (catalog key order); weak labels came with them
    let reader = radfm_data::reader::Reader::open(&ds).unwrap();
    for (row, rec) in index.iter().zip(reader.records()) {
        assert_eq!(row["id"], rec.sop_uid.as_str());
        assert_eq!(row["patient_id"], rec.patient_key.as_str());
        assert!(row["split"].is_string(), "{row}");
        assert_eq!(row["labeled"], true);
        assert!(
            matches!(row["labels"]["Pleural Effusion"].as_i64(), Some(0 | 1)),
            "{row}"
        );
    }
    // the archive's truth came into the dataset under its pseudonyms, and
    // nothing of the archive's identities with it
    let key = std::fs::read_to_string(tmp.path().join("fixed.deid-key")).unwrap();
    let key: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&key.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let deid = radfm_dicom::deid::Deidentifier::new(key.try_into().unwrap());
    let archive_truth = jsonl(&tmp.path().join("archive/truth.jsonl"));
    let truth = jsonl(&ds.join("truth.jsonl"));
    assert_eq!(truth.len(), n);
    let by_id: std::collections::HashMap<&str, &serde_json::Value> = truth
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t))
        .collect();
    for row in &index {
        let t = by_id[row["id"].as_str().unwrap()];
        for f in [
            "patient_id",
            "study_instance_uid",
            "sex",
            "age",
            "site",
            "view",
        ] {
            assert_eq!(t[f], row[f], "{f}");
        }
        let fields: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields.len(), 8, "{fields:?}");
    }
    let written = std::fs::read_to_string(ds.join("truth.jsonl")).unwrap();
    let mut matched = 0;
    for a in &archive_truth {
        if let Some(t) = by_id.get(deid.uid(a["id"].as_str().unwrap()).as_str()) {
            assert_eq!(t["labels"], a["labels"]);
            matched += 1;
        }
        for f in [
            "id",
            "patient_id",
            "study_instance_uid",
            "accession_number",
            "file",
        ] {
            let v = a[f].as_str().unwrap();
            assert!(!written.contains(v), "{f} {v} reached the dataset");
        }
    }
    assert_eq!(matched, n);

    let positives = index
        .iter()
        .filter(|r| r["labels"]["Pleural Effusion"] == 1)
        .count();
    assert!(positives > 0 && positives < n, "{positives} of {n}");
    // a study's images share its report's labels
    let mut by_study = std::collections::HashMap::new();
    for r in &index {
        let study = r["study_instance_uid"].as_str().unwrap().to_string();
        let e = by_study.entry(study).or_insert(r["labels"].clone());
        assert_eq!(*e, r["labels"]);
    }
    // the images differ, so their embeddings do
    assert!(x[..32] != x[32..64]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(emb.join("embed.json")).unwrap()).unwrap();
    assert_eq!(meta["pooling"], "pooled");
    assert_eq!(meta["preprocessing"]["resize"]["size"]["shortest_edge"], 18);
    assert_eq!(meta["preprocessing"]["center_crop"]["height"], 16);
    assert_eq!(meta["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(meta["dataset"]["images"], n);

    // one split only; mean pooling differs from the pooled output
    let emb_test = tmp.path().join("emb-test");
    ok(radfm()
        .args(["embed", "--model"])
        .arg(&m)
        .arg("--data")
        .arg(&ds)
        .arg("--out")
        .arg(&emb_test)
        .args(["--split", "test", "--pooling", "mean", "--quiet"]));
    let n_test = index.iter().filter(|r| r["split"] == "test").count();
    assert_eq!(
        npy_f32(&emb_test.join("embeddings.npy")).0,
        vec![n_test, 32]
    );

    // the default probe: one run, a prediction per test image
    let run = tmp.path().join("probe");
    ok(radfm()
        .args(["probe", "--embeddings"])
        .arg(&emb)
        .arg("--out")
        .arg(&run));
    let preds = jsonl(&run.join("pred.jsonl"));
    assert_eq!(preds.len(), n_test);
    assert!(preds.iter().all(|p| p["run"] == "probe-100%"));
    let p = preds[0]["scores"]["Pleural Effusion"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("probe.json")).unwrap()).unwrap();
    let obs = report["runs"][0]["observations"].as_array().unwrap();
    let eff = obs
        .iter()
        .find(|o| o["observation"] == "Pleural Effusion")
        .unwrap();
    assert!(
        eff["C"].as_f64().is_some() && eff["sweep"].as_array().unwrap().len() == 17,
        "{eff}"
    );
    assert!(eff["n_positive"].as_u64().unwrap() > 0);
    // no report mentions a fracture: skipped with a reason, not failed
    let frac = obs.iter().find(|o| o["observation"] == "Fracture").unwrap();
    assert!(
        frac["skipped"].as_str().unwrap().contains("no positives"),
        "{frac}"
    );

    // an exported classifier: on an embedding, its heads give the probe's scores
    // (standardisation folded into the coefficients)
    let cls = tmp.path().join("classifier");
    let run_std = tmp.path().join("probe-std");
    ok(radfm()
        .args(["probe", "--embeddings"])
        .arg(&emb)
        .arg("--out")
        .arg(&run_std)
        .args(["--standardize", "--C", "1", "--export"])
        .arg(&cls)
        .arg("--model")
        .arg(&m));
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cls.join("classifier.json")).unwrap())
            .unwrap();
    assert!(cls.join("encoder/model.safetensors").is_file());
    assert!(cls.join("encoder/preprocessor_config.json").is_file());
    assert_eq!(c["pooling"], "pooled");
    let head = &c["observations"]["Pleural Effusion"];
    let coef: Vec<f64> = head["coef"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let b = head["intercept"].as_f64().unwrap();
    let std_preds = jsonl(&run_std.join("pred.jsonl"));
    for p in &std_preds {
        let row = index.iter().position(|r| r["id"] == p["id"]).unwrap();
        let z: f64 = coef
            .iter()
            .zip(&x[row * 32..(row + 1) * 32])
            .map(|(w, &v)| w * f64::from(v))
            .sum::<f64>()
            + b;
        let want = p["scores"]["Pleural Effusion"].as_f64().unwrap();
        assert!(
            (1.0 / (1.0 + (-z).exp()) - want).abs() < 1e-5,
            "{z} vs {want}"
        );
    }
    // another encoder than the embeddings' is refused
    let other = tmp.path().join("other-model");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(m.join("config.json"), other.join("config.json")).unwrap();
    std::fs::write(other.join("model.safetensors"), b"not the same weights").unwrap();
    let e = fails(
        radfm()
            .args(["probe", "--embeddings"])
            .arg(&emb)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .arg("--export")
            .arg(tmp.path().join("cls2"))
            .arg("--model")
            .arg(&other),
    );
    assert!(
        e.contains("are not those the embeddings were made with"),
        "{e}"
    );

    // fractions, shots and repeats: named runs, deterministic for a seed
    let runs = tmp.path().join("probe-many");
    let args = |out: &Path| {
        let mut c = radfm();
        c.args(["probe", "--embeddings"])
            .arg(&emb)
            .arg("--out")
            .arg(out)
            .args([
                "--fractions",
                "0.5,1",
                "--shots",
                "1",
                "--repeats",
                "2",
                "--C",
                "0.5",
            ]);
        c
    };
    ok(&mut args(&runs));
    let names: std::collections::BTreeSet<String> =
        std::fs::read_to_string(runs.join("pred.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["run"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
    let want: std::collections::BTreeSet<String> = [
        "probe-50%-r0",
        "probe-50%-r1",
        "probe-100%-r0",
        "probe-100%-r1",
        "probe-1shot-r0",
        "probe-1shot-r1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
    let again = tmp.path().join("probe-again");
    ok(&mut args(&again));
    assert_eq!(
        std::fs::read(runs.join("pred.jsonl")).unwrap(),
        std::fs::read(again.join("pred.jsonl")).unwrap()
    );

    // other labels: every id must be there
    let truth = tmp.path().join("truth.jsonl");
    let lines: String = index
        .iter()
        .skip(1)
        .map(|r| {
            format!(
                "{}\n",
                serde_json::json!({"id": r["id"], "labels": {"Pleural Effusion": 1}})
            )
        })
        .collect();
    std::fs::write(&truth, lines).unwrap();
    let e = fails(
        radfm()
            .args(["probe", "--embeddings"])
            .arg(&emb)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .arg("--labels")
            .arg(&truth),
    );
    assert!(
        e.contains(&format!("1 of {n} embedded images have no labels")),
        "{e}"
    );

    // an index that does not match the embeddings; a NaN in them
    let bad = tmp.path().join("bad-emb");
    std::fs::create_dir(&bad).unwrap();
    std::fs::copy(emb.join("embeddings.npy"), bad.join("embeddings.npy")).unwrap();
    let idx = std::fs::read_to_string(emb.join("index.jsonl")).unwrap();
    std::fs::write(
        bad.join("index.jsonl"),
        idx.lines().skip(1).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let e = fails(
        radfm()
            .args(["probe", "--embeddings"])
            .arg(&bad)
            .arg("--out")
            .arg(tmp.path().join("x")),
    );
    assert!(
        e.contains(&format!("{n} embeddings but {} lines", n - 1)),
        "{e}"
    );
    let mut xs = x.clone();
    xs[5 * 32 + 7] = f32::NAN;
    std::fs::write(
        bad.join("embeddings.npy"),
        radfm_core::npy::f32_bytes(&[n, 32], &xs),
    )
    .unwrap();
    std::fs::write(bad.join("index.jsonl"), &idx).unwrap();
    let e = fails(
        radfm()
            .args(["probe", "--embeddings"])
            .arg(&bad)
            .arg("--out")
            .arg(tmp.path().join("x")),
    );
    assert!(e.contains("row 5, column 7 is not a finite number"), "{e}");
}

#[test]
fn a_model_without_its_preprocessing_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, _) = dataset(tmp.path(), 3);
    let m = model(tmp.path(), false);
    let e = fails(
        radfm()
            .args(["embed", "--model"])
            .arg(&m)
            .arg("--data")
            .arg(&ds)
            .arg("--out")
            .arg(tmp.path().join("emb")),
    );
    assert!(e.contains("preprocessing cannot be determined"), "{e}");
    assert!(!tmp.path().join("emb").join("embed.json").exists());
}
