//! `radfm evaluate` end to end on a small case with a built-in subgroup gap.

use std::process::Command;

#[test]
fn metrics_json_with_cis_subgroups_and_delong() {
    let t = tempfile::tempdir().unwrap();
    let (truth, pred, pred2) = (
        t.path().join("truth.jsonl"),
        t.path().join("pred.jsonl"),
        t.path().join("pred2.jsonl"),
    );
    let (mut tl, mut pl, mut p2) = (String::new(), String::new(), String::new());
    // 200 patients, 2 images each; site B's scores carry little signal
    let mut x: u64 = 12345;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 10_000) as f64 / 10_000.0
    };
    for p in 0..200 {
        let site = if p % 2 == 0 { "A" } else { "B" };
        let y = rnd() < 0.3;
        for k in 0..2 {
            let id = format!("img{p}-{k}");
            tl += &format!("{{\"id\": \"{id}\", \"patient_id\": \"P{p}\", \"site\": \"{site}\", \"age\": {}, \"labels\": {{\"Edema\": {}}}}}\n", 30 + p % 60, u8::from(y));
            let signal = if site == "A" { 0.6 } else { 0.1 };
            let s = (0.2 + if y { signal } else { 0.0 } + 0.4 * rnd()).min(1.0);
            pl += &format!("{{\"id\": \"{id}\", \"scores\": {{\"Edema\": {s}}}}}\n");
            p2 += &format!(
                "{{\"id\": \"{id}\", \"scores\": {{\"Edema\": {}}}}}\n",
                rnd()
            );
        }
    }
    std::fs::write(&truth, tl).unwrap();
    std::fs::write(&pred, pl).unwrap();
    std::fs::write(&pred2, p2).unwrap();
    let out = t.path().join("report");
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args([
            "evaluate",
            "--pred",
            pred.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--groups",
            "site,age_band",
            "--bootstrap",
            "300",
            "--seed",
            "3",
            "--compare",
            pred2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let e = &m["observations"]["Edema"];
    let auc = e["auroc"]["value"].as_f64().unwrap();
    let ci = e["auroc"]["ci"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < auc && auc < ci[1].as_f64().unwrap());
    for k in ["auprc", "f1", "sensitivity", "specificity", "brier", "ece"] {
        assert!(e[k]["value"].is_f64(), "{k}: {}", e[k]);
    }
    assert_eq!(m["n_patients"], 200);
    // with one observation, the micro average is that observation
    assert_eq!(m["micro"]["auroc"]["value"], e["auroc"]["value"]);
    assert_eq!(m["bootstrap"]["unit"], "patient");
    // the gap between sites is found, with a CI excluding 0
    let gap = &m["subgroup_gaps"]["site"]["Edema"];
    assert_eq!(
        (
            gap["best"].as_str(),
            gap["worst"].as_str(),
            gap["flag"].as_bool()
        ),
        (Some("A"), Some("B"), Some(true)),
        "{gap}"
    );
    // two sites: one pair, so the interval is the plain 95% one
    assert_eq!(gap["pairs"], 1);
    assert!((gap["ci_level"].as_f64().unwrap() - 0.95).abs() < 1e-12);
    assert!(gap["ci"][0].as_f64().unwrap() > 0.0 && gap["p_holm"].as_f64().unwrap() < 0.05);
    // four age bands: six pairs, so the interval is at 1 - 0.05 / 6
    let age = &m["subgroup_gaps"]["age_band"]["Edema"];
    assert_eq!(age["pairs"], 6, "{age}");
    assert!((age["ci_level"].as_f64().unwrap() - (1.0 - 0.05 / 6.0)).abs() < 1e-12);
    assert!(m["subgroups"]["age_band"]
        .as_object()
        .unwrap()
        .contains_key("40-60"));
    // DeLong against a random model
    assert!(m["compare"]["Edema"]["p"].as_f64().unwrap() < 0.05);
    let dci = m["compare"]["Edema"]["difference_ci"].as_array().unwrap();
    assert!(
        dci[0].as_f64().unwrap() > 0.0,
        "the better model's AUROC difference CI excludes 0: {dci:?}"
    );

    assert!(m["calibration"]["reason"]
        .as_str()
        .unwrap()
        .contains("no validation split"));

    // a validation split: calibration is fitted there, metrics are computed on the rest
    let marked: String = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p: usize = v["patient_id"].as_str().unwrap()[1..].parse().unwrap();
            if p % 4 == 0 {
                v["split"] = "val".into();
            }
            v.to_string() + "\n"
        })
        .collect();
    let tv = t.path().join("truth_val.jsonl");
    std::fs::write(&tv, marked).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args([
            "evaluate",
            "--pred",
            pred.to_str().unwrap(),
            "--truth",
            tv.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--bootstrap",
            "50",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["n_validation_images"], 100);
    assert_eq!(m["n_images"], 300);
    let c = &m["calibration"]["Edema"];
    assert!(
        c["temperature"].as_f64().unwrap() > 0.0 && c["platt"]["a"].is_f64(),
        "{c}"
    );
    for k in ["before", "after_temperature", "after_platt"] {
        assert!(c[k]["ece"].is_f64() && c[k]["brier"].is_f64(), "{c}");
    }

    // runs: the same images scored by two probes; metrics per run, the last one is the main report
    let runs: String = std::fs::read_to_string(&pred)
        .unwrap()
        .lines()
        .flat_map(|l| {
            ["probe-1%", "probe-100%"].map(|r| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["run"] = r.into();
                v.to_string() + "\n"
            })
        })
        .collect();
    let pr = t.path().join("runs.jsonl");
    std::fs::write(&pr, runs).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args([
            "evaluate",
            "--pred",
            pr.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--bootstrap",
            "50",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        m["runs"]["order"],
        serde_json::json!(["probe-1%", "probe-100%"])
    );
    assert_eq!(m["main_run"], "probe-100%");
    assert!(m["runs"]["metrics"]["probe-1%"]["Edema"]["auroc"]["value"].is_f64());
    assert!(std::fs::read_to_string(out.join("report.html"))
        .unwrap()
        .contains("AUROC by run"));

    // ids without truth are an error that names them
    std::fs::write(&pred2, "{\"id\": \"nope\", \"scores\": {\"Edema\": 0.5}}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args([
            "evaluate",
            "--pred",
            pred2.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("1 predictions have no truth line, e.g. [\"nope\"]"));
}
