//! `radfm demo` end to end in its tiny test configuration (`--smoke`: 160
//! patients, a few steps): the claims' shape and verdict rules, the report and
//! commands.sh, privacy of the outputs, and a run killed during pretraining
//! and resumed giving the uninterrupted run's claims.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{fails, json, kill_once_logged, ok, radfm};

/// The demo's stages, in order, with a text tower.
const STAGES: [&str; 12] = [
    "synth",
    "ingest",
    "split",
    "pretrain-mae",
    "pretrain-clip",
    "embed",
    "probe",
    "lora",
    "zeroshot",
    "baseline",
    "evaluate",
    "claims",
];

fn demo(out: &Path, text: &Path) -> Command {
    let mut c = radfm();
    c.args([
        "demo", "--smoke", "--quiet", "--seed", "3", "--jobs", "2", "--out",
    ])
    .arg(out)
    .arg("--text-model")
    .arg(text)
    .env_remove("RADFM_COHORT");
    c
}

fn without_timings(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("timings");
    v
}

/// The verdict a claim's interval implies, by the rule its statement gives.
fn rule(c: &Value) -> &'static str {
    let id = c["id"].as_str().unwrap();
    let Some(ci) = c["ci"].as_array() else {
        // without an interval only zero-shot's point-estimate rule can decide
        return match (id, c["estimate"].as_f64()) {
            ("zero_shot", Some(e)) if e < 0.85 => "not_held",
            _ => "inconclusive",
        };
    };
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    let est = c["estimate"].as_f64().unwrap();
    let pick = |held: bool, not: bool| match (held, not) {
        (true, _) => "held",
        (false, true) => "not_held",
        _ => "inconclusive",
    };
    match id {
        "label_efficiency" | "weak_supervision" => pick(lo > -0.02, hi < -0.02),
        "zero_shot" => pick(lo > 0.5 && est >= 0.85, est < 0.85),
        "site_shift" => pick(hi < 0.0, lo > 0.0),
        "fairness_sex" | "fairness_age" => pick(lo <= 0.0 && hi >= 0.0, lo > 0.0),
        "site_shortcut" => pick(lo > 0.1, hi < 0.1),
        other => panic!("unknown claim {other}"),
    }
}

#[test]
fn demo_runs_the_lifecycle_states_its_claims_and_resumes_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("text");
    crate::pretrain_cli::text_model(&text);
    let a = tmp.path().join("a");
    let err = ok(&mut demo(&a, &text));
    for stage in STAGES {
        assert!(
            err.contains(&format!("] {stage}")),
            "no progress line for {stage}:\n{err}"
        );
    }
    let claims = json(&a.join("claims.json"));
    let list = claims["claims"].as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "label_efficiency",
            "zero_shot",
            "site_shift",
            "fairness_sex",
            "fairness_age",
            "weak_supervision",
            "site_shortcut"
        ]
    );
    let mut with_ci = 0;
    for c in list {
        assert!(c["statement"].as_str().unwrap().contains("held"), "{c}");
        assert_eq!(c["verdict"].as_str().unwrap(), rule(c), "{c}");
        assert!(!c["reading"].as_str().unwrap().is_empty());
        if let Some(ci) = c["ci"].as_array() {
            let (lo, hi, e) = (
                ci[0].as_f64().unwrap(),
                ci[1].as_f64().unwrap(),
                c["estimate"].as_f64().unwrap(),
            );
            assert!(lo <= hi, "{c}");
            // a percentile interval need not contain the point, but it should be near it
            assert!(e > lo - 0.3 && e < hi + 0.3, "{c}");
            with_ci += 1;
        }
    }
    assert!(
        with_ci >= 4,
        "most claims should have an interval even at this size: {claims}"
    );
    // every observation is either used or left out with a reason
    let used = claims["observations"]["used"].as_array().unwrap().len();
    let left = claims["observations"]["left_out"]
        .as_object()
        .unwrap()
        .len();
    assert_eq!(used + left, 14);
    for stage in STAGES.iter().chain(&["total"]) {
        assert!(
            claims["timings"][stage].as_f64().is_some(),
            "no timing for {stage}"
        );
    }
    assert_eq!(claims["versions"]["radfm"], env!("CARGO_PKG_VERSION"));

    // the report: claims first, a section per model with its evaluate reports
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    let claims_at = html.find("id=\"claims\"").unwrap();
    assert!(claims_at < html.find("id=\"models\"").unwrap());
    for id in ["label-efficiency", "shift", "fairness", "shortcut"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no {id} section");
    }
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "report.html must be self-contained"
    );
    for m in claims["models"].as_array().unwrap() {
        for k in ["report_internal", "report_external"] {
            let rel = m[k].as_str().unwrap();
            assert!(html.contains(rel), "{rel} not linked");
            assert!(a.join(rel).is_file(), "{rel} missing");
        }
    }
    // commands.sh lists every stage's radfm commands
    let sh = std::fs::read_to_string(a.join("commands.sh")).unwrap();
    for cmd in [
        "radfm synth",
        "radfm ingest",
        "radfm split",
        "--hold-out-site",
        "radfm pretrain",
        "--objective clip",
        "radfm embed",
        "radfm probe",
        "radfm finetune",
        "--method lora",
        "radfm zeroshot",
        "radfm evaluate",
        "--where",
    ] {
        assert!(sh.contains(cmd), "commands.sh lacks {cmd}");
    }
    // nothing that identifies a synthetic patient reaches the demo's outputs
    let phi: Vec<String> = std::fs::read_to_string(a.join("archive/phi.jsonl"))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|v| v["value"].as_str().map(str::to_string))
                .filter(|s| s.len() >= 6)
                .collect()
        })
        .unwrap_or_default();
    let outputs = [
        std::fs::read_to_string(a.join("claims.json")).unwrap(),
        html.clone(),
        std::fs::read_to_string(a.join("demo-state.json")).unwrap(),
    ];
    for s in &phi {
        for o in &outputs {
            assert!(!o.contains(s.as_str()), "PHI {s:?} in a demo output");
        }
    }

    // another run in a's directory needs --resume; a resume with other flags is refused
    assert!(fails(&mut demo(&a, &text)).contains("--resume"));
    let mut other = demo(&a, &text);
    other.args(["--resume", "--patients", "50"]);
    assert!(fails(&mut other).contains("another plan"));
    // a finished demo resumed does nothing new and gives the same claims
    ok(demo(&a, &text).arg("--resume"));
    assert_eq!(
        without_timings(json(&a.join("claims.json"))),
        without_timings(claims.clone())
    );

    // killed during MAE pretraining (after its second checkpoint), then resumed
    let b = tmp.path().join("b");
    let killed = kill_once_logged(&mut demo(&b, &text), &b.join("runs/mae"), 12).is_some();
    assert!(
        killed,
        "the demo finished before it could be killed in pretraining"
    );
    assert!(!b.join("claims.json").exists());
    let state = json(&b.join("demo-state.json"));
    let done: Vec<&str> = state["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    assert_eq!(done, ["synth", "ingest", "split"], "killed in pretrain-mae");
    let err = ok(demo(&b, &text).arg("--resume"));
    assert!(
        err.contains("synth: done earlier") && err.contains("] pretrain-mae"),
        "{err}"
    );
    assert_eq!(
        without_timings(json(&b.join("claims.json"))),
        without_timings(claims),
        "the resumed demo's claims differ from the uninterrupted run's"
    );
}
