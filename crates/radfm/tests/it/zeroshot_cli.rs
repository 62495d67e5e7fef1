//! `radfm zeroshot` and `radfm retrieve` end to end: on the committed HF
//! CLIPModel fixtures against the reference probabilities, and on a radfm
//! CLIP run pretrained on an ingested synthetic archive.

use std::path::{Path, PathBuf};

use crate::common::{fails, jsonl, ok, radfm};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-model/tests/fixtures/zeroshot")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `radfm zeroshot` on the hf_clip fixture's images.
fn on_hf_clip() -> std::process::Command {
    let fx = fixtures();
    let mut c = radfm();
    c.arg("zeroshot")
        .arg("--model")
        .arg(fx.join("hf_clip"))
        .arg("--input")
        .arg(fx.join("x.npy"));
    c
}

#[test]
fn zeroshot_on_hf_clip_models_gives_the_reference_probabilities() {
    let t = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let want = json(&fx.join("zeroshot.json"));
    let ids = t.path().join("ids.txt");
    std::fs::write(
        &ids,
        (0..6).map(|i| format!("img-{i}\n")).collect::<String>(),
    )
    .unwrap();
    let run = |out: &str, extra: &[&str]| -> Vec<serde_json::Value> {
        let p = t.path().join(out);
        ok(on_hf_clip()
            .arg("--ids")
            .arg(&ids)
            .arg("--prompts")
            .arg(fx.join("prompts.json"))
            .arg("--out")
            .arg(&p)
            .args(extra));
        jsonl(&p)
    };
    let check = |lines: &[serde_json::Value], key: &str| {
        assert_eq!(lines.len(), 6);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["id"], format!("img-{i}"));
            assert_eq!(l["prompts"]["name"], "fixture");
            let scores = l["scores"].as_object().unwrap();
            assert_eq!(scores.len(), 3);
            for (o, p) in scores {
                let w = want[key][o][i].as_f64().unwrap();
                assert!((p.as_f64().unwrap() - w).abs() <= 1e-4, "{key} {o} {i}");
            }
        }
    };
    check(&run("t1.jsonl", &[]), "tau_1");
    check(&run("tm.jsonl", &["--temperature", "model"]), "tau_model");
    let second = fx.join("hf_clip2");
    check(
        &run("ens.jsonl", &["--ensemble", second.to_str().unwrap()]),
        "ensemble_tau_1",
    );
    // the meta file names both models with their checksums, and the rule
    let meta = json(&t.path().join("ens.meta.json"));
    assert_eq!(meta["models"].as_array().unwrap().len(), 2);
    assert_eq!(meta["models"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(meta["prompts"]["version"], "1");
    assert!(meta["rule"].as_str().unwrap().contains("normalised"));

    // bad input: clear errors naming the item
    let bad_prompts = |text: &str| {
        let p = t.path().join("bad.json");
        std::fs::write(&p, text).unwrap();
        fails(
            on_hf_clip()
                .arg("--prompts")
                .arg(&p)
                .arg("--out")
                .arg(t.path().join("never.jsonl")),
        )
    };
    let e = bad_prompts(
        r#"{"name":"b","version":"1","templates":["{}"],"observations":{"Oedema":{"positive":["x"],"negative":["y"]}}}"#,
    );
    assert!(
        e.contains("unknown observation") && e.contains("Oedema"),
        "{e}"
    );
    let e = bad_prompts(
        r#"{"name":"b","version":"1","templates":["a chest x-ray"],"observations":{"Edema":{"positive":["x"],"negative":["y"]}}}"#,
    );
    assert!(e.contains("placeholder"), "{e}");
    assert!(!t.path().join("never.jsonl").exists());
    // a prompt longer than the context is cut, and said so once
    let long = "effusion ".repeat(120);
    let p = t.path().join("long.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"name":"l","version":"1","templates":["{{}}"],"observations":{{"Edema":{{"positive":["{long}", "{long} again"],"negative":["no edema"]}}}}}}"#
        ),
    )
    .unwrap();
    let err = ok(on_hf_clip()
        .arg("--prompts")
        .arg(&p)
        .arg("--out")
        .arg(t.path().join("long.jsonl")));
    assert_eq!(err.matches("truncated").count(), 1, "{err}");
    assert!(err.contains("2 of 3"), "{err}");
    // ids that do not match the rows
    std::fs::write(&ids, "a\nb\n").unwrap();
    let e = fails(
        on_hf_clip()
            .arg("--ids")
            .arg(&ids)
            .arg("--out")
            .arg(t.path().join("never.jsonl")),
    );
    assert!(e.contains("2 lines for 6 images"), "{e}");
    // images that are not floating point
    let ints = t.path().join("ints.npy");
    std::fs::write(
        &ints,
        radfm_core::npy::to_bytes("<i4", &[1, 3, 32, 32], &vec![0u8; 4 * 3 * 32 * 32]),
    )
    .unwrap();
    let e = fails(
        radfm()
            .arg("zeroshot")
            .arg("--model")
            .arg(fixtures().join("hf_clip"))
            .arg("--input")
            .arg(&ints)
            .arg("--out")
            .arg(t.path().join("never.jsonl")),
    );
    assert!(e.contains("dtype <i4, expected float32"), "{e}");
}

#[test]
fn zeroshot_and_retrieval_with_a_radfm_clip_run() {
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
            "16",
            "--size",
            "64",
            "--seed",
            "5",
            "--quiet",
            "--out",
        ])
        .arg(&archive));
    ok(radfm()
        .arg("ingest")
        .arg(archive.join("dicom"))
        .arg("--reports")
        .arg(archive.join("reports.jsonl"))
        .arg("--truth")
        .arg(archive.join("truth.jsonl"))
        .args(["--size", "64", "--quiet", "--out"])
        .arg(&data));
    ok(radfm().arg("split").arg(&data).args([
        "--train", "0.5", "--val", "0.2", "--test", "0.3", "--seed", "1",
    ]));
    crate::pretrain_cli::text_model(&text);
    let run = t.path().join("clip");
    ok(radfm()
        .args(["pretrain", "--objective", "clip", "--data"])
        .arg(&data)
        .arg("--text-model")
        .arg(&text)
        .arg("--out")
        .arg(&run)
        .args([
            "--steps",
            "6",
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
            "--seed",
            "2",
            "--quiet",
        ]));
    // the run's model/ carries its text tower, so the recorded path is not needed
    assert!(run.join("model/text/config.json").is_file());
    std::fs::remove_dir_all(&text).unwrap();

    // zero-shot on the test split, with the default (chexzero) prompts
    let pred = t.path().join("zs.jsonl");
    let err = ok(radfm()
        .arg("zeroshot")
        .arg("--model")
        .arg(&run)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&pred)
        .arg("--quiet"));
    assert!(err.contains("prompt set chexzero v1"), "{err}");
    let lines = jsonl(&pred);
    assert!(!lines.is_empty());
    for l in &lines {
        let s = l["scores"].as_object().unwrap();
        assert_eq!(s.len(), 14);
        assert!(s
            .values()
            .all(|p| (0.0..=1.0).contains(&p.as_f64().unwrap())));
        assert_eq!(l["prompts"]["name"], "chexzero");
    }
    // and radfm evaluate reads it against the archive's truth
    ok(radfm()
        .arg("evaluate")
        .arg("--pred")
        .arg(&pred)
        .arg("--truth")
        .arg(data.join("truth.jsonl"))
        .arg("--out")
        .arg(t.path().join("eval")));
    assert!(t.path().join("eval/metrics.json").is_file());
    // the ELIXR-style set, by name
    let pred2 = t.path().join("zs2.jsonl");
    ok(radfm()
        .arg("zeroshot")
        .arg("--model")
        .arg(&run)
        .arg("--data")
        .arg(&data)
        .args([
            "--prompts",
            "elixr",
            "--temperature",
            "model",
            "--quiet",
            "--out",
        ])
        .arg(&pred2));
    assert_eq!(jsonl(&pred2)[0]["prompts"]["name"], "elixr");
    assert_eq!(jsonl(&pred2).len(), lines.len());

    // an encoder without a text tower is refused
    let mae = t.path().join("mae");
    ok(radfm()
        .args(["pretrain", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&mae)
        .args([
            "--steps",
            "1",
            "--batch",
            "4",
            "--image-size",
            "32",
            "--patch",
            "8",
            "--depth",
            "1",
            "--quiet",
        ]));
    let e = fails(
        radfm()
            .arg("zeroshot")
            .arg("--model")
            .arg(&mae)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(t.path().join("never.jsonl")),
    );
    assert!(e.contains("has no text tower"), "{e}");

    // retrieval: index every image, query by text, id and DICOM file, evaluate
    let ix = t.path().join("index");
    ok(radfm()
        .args(["retrieve", "index", "--model"])
        .arg(&run)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&ix)
        .arg("--quiet"));
    let items = jsonl(&ix.join("index.jsonl"));
    let meta = json(&ix.join("retrieve.json"));
    assert_eq!(
        meta["embeddings"]["rows"].as_u64().unwrap() as usize,
        items.len()
    );
    assert!(items
        .iter()
        .all(|i| i["patient_id"].is_string() && i["split"].is_string()));
    let query = |args: &[&str]| -> serde_json::Value {
        let o = radfm()
            .args(["retrieve", "query", "--index"])
            .arg(&ix)
            .args(args)
            .args(["--k", "3", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let r = query(&["--text", "large left pleural effusion"]);
    let res = r["results"].as_array().unwrap();
    assert_eq!(res.len(), 3);
    let scores: Vec<f64> = res.iter().map(|x| x["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(res[0]["metadata"]["split"].is_string());
    // an id: its own row is not among its results
    let id = items[0]["id"].as_str().unwrap();
    let r = query(&["--id", id]);
    assert!(r["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["id"] != id));
    // a DICOM file of the archive
    let dcm = walk(&archive.join("dicom"));
    let r = query(&["--image", dcm.to_str().unwrap()]);
    assert_eq!(r["results"].as_array().unwrap().len(), 3);
    assert_eq!(r["search"], "exact");
    // with an approximate (HNSW) graph the same query searches it, or exactly on request
    let ax = t.path().join("index-hnsw");
    ok(radfm()
        .args(["retrieve", "index", "--approximate", "--model"])
        .arg(&run)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&ax)
        .arg("--quiet"));
    assert_eq!(
        json(&ax.join("retrieve.json"))["approximate"]["connections"],
        24
    );
    let q = |extra: &[&str]| -> serde_json::Value {
        let o = radfm()
            .args(["retrieve", "query", "--index"])
            .arg(&ax)
            .args(["--id", id, "--k", "3", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (a, x) = (q(&[]), q(&["--exact"]));
    assert_eq!(a["search"], "approximate (HNSW)");
    assert_eq!(x["search"], "exact");
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    // on a few dozen images the graph search is exact
    assert_eq!(ids(&a), ids(&x));
    assert!(!ids(&a).contains(&id.to_string()));
    let e = fails(
        radfm()
            .args(["retrieve", "query", "--index"])
            .arg(&ix)
            .args(["--id", "1.2.3.nope"]),
    );
    assert!(e.contains("no such image"), "{e}");
    // a query with another model than the index's is refused
    let e = fails(
        radfm()
            .args(["retrieve", "query", "--index"])
            .arg(&ix)
            .args(["--text", "effusion", "--model"])
            .arg(fixtures().join("hf_clip")),
    );
    assert!(e.contains("another model"), "{e}");
    let res = t.path().join("retrieval.json");
    ok(radfm()
        .args(["retrieve", "eval", "--index"])
        .arg(&ix)
        .args(["--k", "1,3", "--out"])
        .arg(&res));
    let r = json(&res);
    let p = &r["image_to_image"]["precision"];
    assert_eq!(p.as_array().unwrap().len(), 2);
    for row in p.as_array().unwrap() {
        let (v, c) = (
            row["value"].as_f64().unwrap(),
            row["chance"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&v) && (0.0..=1.0).contains(&c));
    }
    let rec = r["text_to_image"]["recall"].as_array().unwrap();
    let n = r["text_to_image"]["candidates"].as_f64().unwrap();
    assert!(n >= 2.0);
    // recall@k of a report among n test images: chance is at least k/n
    assert!(rec[0]["chance"].as_f64().unwrap() >= 1.0 / n - 1e-12);
    assert!(rec[1]["value"].as_f64().unwrap() >= rec[0]["value"].as_f64().unwrap());
}

/// The first DICOM file under `dir`.
fn walk(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "dcm") {
                return p;
            }
        }
    }
    panic!("no .dcm under {}", dir.display());
}
