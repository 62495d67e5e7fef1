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
        .contains_key("40-59"));
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
    let pred_text = std::fs::read_to_string(&pred).unwrap();
    let m = evaluate(&marked, &pred_text, &[]).unwrap();
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

    // every prediction once per run name
    let as_runs = |names: &[&str]| -> String {
        std::fs::read_to_string(&pred)
            .unwrap()
            .lines()
            .flat_map(|l| {
                names.iter().map(move |r| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["run"] = (*r).into();
                    v.to_string() + "\n"
                })
            })
            .collect()
    };
    // runs: the same images scored by two probes; metrics per run, the last one is the main report
    let runs = as_runs(&["probe-1%", "probe-100%"]);
    let (m, html) =
        evaluate_with_html(&std::fs::read_to_string(&truth).unwrap(), &runs, &[]).unwrap();
    assert_eq!(
        m["runs"]["order"],
        serde_json::json!(["probe-1%", "probe-100%"])
    );
    assert_eq!(m["main_run"], "probe-100%");
    assert!(m["runs"]["metrics"]["probe-1%"]["Edema"]["auroc"]["value"].is_f64());
    assert!(html.contains("AUROC by run"));

    // repeated draws: one x place per draw, the repeats side by side, the spread tabled
    let runs = as_runs(&[
        "probe-5shot-r0",
        "probe-5shot-r1",
        "probe-100%-r0",
        "probe-100%-r1",
    ]);
    let (m, html) =
        evaluate_with_html(&std::fs::read_to_string(&truth).unwrap(), &runs, &[]).unwrap();
    assert_eq!(m["runs"]["repeats"]["probe-5shot"]["Edema"]["n"], 2);
    assert!(html.contains("repeats of a draw side by side"));
    let labels = |name: &str| html.matches(&format!(">{name}</text>")).count();
    // (without the prefix the draws share)
    assert!(labels("5shot") > 0 && labels("100%") > 0);
    assert_eq!(labels("5shot-r0"), 0, "x labels name draws, not repeats");
    assert!(html.contains("run (probe-...)"));
    // the spread table follows the runs' order, not the alphabet
    let table = &html[html.find("Across repeated draws").unwrap()..];
    assert!(table.find("probe-5shot").unwrap() < table.find("probe-100%").unwrap());

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

/// Run `radfm evaluate` on JSONL texts; Ok(metrics.json) or Err(stderr).
fn evaluate(truth: &str, pred: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
    evaluate_with_html(truth, pred, extra).map(|r| r.0)
}

/// [`evaluate`], with report.html.
fn evaluate_with_html(
    truth: &str,
    pred: &str,
    extra: &[&str],
) -> Result<(serde_json::Value, String), String> {
    let t = tempfile::tempdir().unwrap();
    let (tp, pp, out) = (
        t.path().join("truth.jsonl"),
        t.path().join("pred.jsonl"),
        t.path().join("report"),
    );
    std::fs::write(&tp, truth).unwrap();
    std::fs::write(&pp, pred).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args(["evaluate", "--pred", pp.to_str().unwrap(), "--truth"])
        .args([tp.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--bootstrap", "50", "--seed", "1"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    if !o.status.success() {
        // 1: the command refused the input; 2: the parser refused the flags
        assert!(matches!(o.status.code(), Some(1 | 2)), "{stderr}");
        return Err(stderr);
    }
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    Ok((serde_json::from_str(&text).unwrap(), html))
}

/// 120 patients, one image each, two observations; every fifth Edema label and every
/// seventh Atelectasis label is uncertain (-1), written by `uncertain(label_line)`.
fn policy_case(uncertain: &dyn Fn(&str, &str) -> String) -> (String, String) {
    let (mut truth, mut pred) = (String::new(), String::new());
    let mut x: u64 = 99;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 10_000) as f64 / 10_000.0
    };
    for p in 0..120 {
        let (e, a) = (rnd() < 0.4, rnd() < 0.3);
        let el = if p % 5 == 0 {
            uncertain("Edema", "-1")
        } else {
            format!("\"Edema\": {}", u8::from(e))
        };
        let al = if p % 7 == 0 {
            uncertain("Atelectasis", "-1")
        } else {
            format!("\"Atelectasis\": {}", u8::from(a))
        };
        let labels: Vec<String> = [el, al].into_iter().filter(|s| !s.is_empty()).collect();
        truth += &format!(
            "{{\"id\": \"i{p}\", \"patient_id\": \"P{p}\", \"labels\": {{{}}}}}\n",
            labels.join(", ")
        );
        let se = (0.3 * rnd() + if e { 0.4 } else { 0.1 }).min(1.0);
        let sa = (0.5 * rnd() + if a { 0.3 } else { 0.1 }).min(1.0);
        pred += &format!(
            "{{\"id\": \"i{p}\", \"scores\": {{\"Edema\": {se}, \"Atelectasis\": {sa}}}}}\n"
        );
    }
    (truth, pred)
}

#[test]
fn uncertain_labels_follow_the_policy() {
    let with_minus_one = policy_case(&|o, v| format!("\"{o}\": {v}"));
    let removed = policy_case(&|_, _| String::new());
    let as_null = policy_case(&|o, _| format!("\"{o}\": null"));
    let as_zero = policy_case(&|o, _| format!("\"{o}\": 0"));
    let as_one = policy_case(&|o, _| format!("\"{o}\": 1"));
    let run = |case: &(String, String), policy: &str| {
        evaluate(&case.0, &case.1, &["--uncertain", policy]).unwrap()
    };
    let same = |a: &serde_json::Value, b: &serde_json::Value, what: &str| {
        for k in ["observations", "macro", "micro", "n_images"] {
            assert_eq!(a[k], b[k], "{what}: {k} differs");
        }
    };
    let exclude = run(&with_minus_one, "exclude");
    assert_eq!(exclude["labels"]["uncertain"], "exclude");
    assert_eq!(exclude["labels"]["n_uncertain"], 24 + 18);
    assert_eq!(exclude["schema_version"], 2);
    same(
        &exclude,
        &run(&removed, "exclude"),
        "U-Ignore = labels removed",
    );
    same(
        &exclude,
        &run(&as_null, "exclude"),
        "U-Ignore = labels null",
    );
    let zeros = run(&with_minus_one, "zeros");
    same(&zeros, &run(&as_zero, "exclude"), "U-Zeros = labels 0");
    let ones = run(&with_minus_one, "ones");
    same(&ones, &run(&as_one, "exclude"), "U-Ones = labels 1");
    assert_eq!(ones["labels"]["uncertain"], "ones");
    // the policies really differ on this case
    assert_ne!(exclude["observations"], zeros["observations"]);
    assert_ne!(zeros["observations"], ones["observations"]);
    // the default is U-Ignore
    let default = evaluate(&with_minus_one.0, &with_minus_one.1, &[]).unwrap();
    same(&default, &exclude, "default");
}

#[test]
fn bad_labels_scores_and_missing_patients_are_errors_naming_the_place() {
    let (truth, pred) = policy_case(&|o, v| format!("\"{o}\": {v}"));
    // a string label on truth line 4
    let bad: String = truth
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 3 {
                l.replace("\"Atelectasis\": 0", "\"Atelectasis\": \"no\"")
                    .replace("\"Atelectasis\": 1", "\"Atelectasis\": \"no\"")
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    let e = evaluate(&bad, &pred, &[]).unwrap_err();
    assert!(
        e.contains("truth.jsonl") && e.contains("line 4") && e.contains("labels.\"Atelectasis\""),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    // a label that is a number but not 1, 0 or -1
    let half = truth.replacen("\"Edema\": 0", "\"Edema\": 0.5", 1);
    let e = evaluate(&half, &pred, &[]).unwrap_err();
    assert!(e.contains("0.5 is not 1, 0, -1"), "{e}");
    // a null score on predictions line 2
    let null_score = pred
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                l.replacen("\"Edema\": 0.", "\"Edema\": null, \"x\": 0.", 1) + "\n"
            } else {
                l.to_string() + "\n"
            }
        })
        .collect::<String>();
    let e = evaluate(&truth, &null_score, &[]).unwrap_err();
    assert!(
        e.contains("pred.jsonl") && e.contains("line 2") && e.contains("scores.\"Edema\""),
        "{e}"
    );
    // no patient_id: an error unless --unit image, which metrics.json then records
    let anonymous: String = truth
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::json!({"id": v["id"], "labels": v["labels"]}).to_string() + "\n"
        })
        .collect();
    let e = evaluate(&anonymous, &pred, &[]).unwrap_err();
    assert!(
        e.contains("patient_id") && e.contains("--unit image"),
        "{e}"
    );
    let m = evaluate(&anonymous, &pred, &["--unit", "image"]).unwrap();
    assert_eq!(m["bootstrap"]["unit"], "image");
    let m = evaluate(&truth, &pred, &[]).unwrap();
    assert_eq!(m["bootstrap"]["unit"], "patient");
    // an unknown policy is refused by the parser, listing the values
    let e = evaluate(&truth, &pred, &["--uncertain", "ignore"]);
    assert!(e.is_err());
}

#[test]
fn the_operating_point_comes_from_the_validation_split() {
    let (truth, pred) = policy_case(&|o, _| format!("\"{o}\": 0"));
    let m = evaluate(&truth, &pred, &[]).unwrap();
    assert_eq!(m["threshold_source"], "evaluated");
    // the first 40 patients become the validation split
    let split: String = truth
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["split"] = serde_json::json!(if i < 40 { "val" } else { "test" });
            v.to_string() + "\n"
        })
        .collect();
    let m = evaluate(&split, &pred, &[]).unwrap();
    assert_eq!(m["threshold_source"], "validation");
    assert_eq!(m["n_images"], 80);
    assert_eq!(m["n_validation_images"], 40);
    // the threshold is the validation images' Youden point
    let lines = |text: &str, range: std::ops::Range<usize>| -> String {
        let l: Vec<&str> = text.lines().collect();
        l[range]
            .iter()
            .map(|l| l.replace("\"val\"", "\"test\"") + "\n")
            .collect()
    };
    let threshold =
        |m: &serde_json::Value| m["observations"]["Edema"]["threshold"].as_f64().unwrap();
    let on_val = evaluate(&lines(&split, 0..40), &lines(&pred, 0..40), &[]).unwrap();
    let t_val = threshold(&on_val);
    assert_eq!(threshold(&m), t_val);
    let on_test = evaluate(&lines(&split, 40..120), &lines(&pred, 40..120), &[]).unwrap();
    let t_test = threshold(&on_test);
    assert_ne!(t_val, t_test, "the case must tell the two apart");
    // ranking metrics do not depend on the threshold: the same on the test images
    assert_eq!(
        m["observations"]["Edema"]["auroc"]["value"],
        on_test["observations"]["Edema"]["auroc"]["value"]
    );
    // the sensitivity interval comes from resamples that re-choose the threshold
    let ci = m["observations"]["Edema"]["sensitivity"]["ci"]
        .as_array()
        .unwrap();
    assert!(ci[0].as_f64().unwrap() < ci[1].as_f64().unwrap());
}
