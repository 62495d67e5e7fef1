//! Parity with scikit-learn (AUROC, AUPRC, F1, Brier, ECE) and with a direct
//! implementation of DeLong's formulas, on committed fixtures made by
//! tools/eval_reference.py. Differences must be <= 1e-9.

use radfm_eval::delong::delong;
use radfm_eval::metrics::{brier, ece, Bins, Confusion, Ranked};

fn fixtures() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval_cases.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn bools(v: &serde_json::Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() == 1)
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(name: &str, what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9,
        "{name} {what}: radfm {got} vs reference {want}"
    );
}

#[test]
fn metrics_match_scikit_learn() {
    let f = fixtures();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    let mut checked = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let (y, s) = (bools(&c["labels"]), floats(&c["scores"]));
        let r = Ranked::new(&y, &s);
        close(
            name,
            "auroc",
            r.auroc().get().unwrap(),
            c["auroc"].as_f64().unwrap(),
        );
        close(
            name,
            "auprc",
            r.auprc().get().unwrap(),
            c["auprc"].as_f64().unwrap(),
        );
        close(
            name,
            "f1",
            Confusion::at(&y, &s, 0.5).f1().get().unwrap(),
            c["f1_at_0.5"].as_f64().unwrap(),
        );
        checked += 3;
        if let Some(b) = c.get("brier") {
            close(
                name,
                "brier",
                brier(&y, &s).get().unwrap(),
                b.as_f64().unwrap(),
            );
            close(
                name,
                "ece uniform",
                ece(&y, &s, 10, Bins::Uniform).get().unwrap(),
                c["ece_uniform_10"].as_f64().unwrap(),
            );
            close(
                name,
                "ece quantile",
                ece(&y, &s, 10, Bins::Quantile).get().unwrap(),
                c["ece_quantile_10"].as_f64().unwrap(),
            );
            checked += 3;
        }
    }
    eprintln!(
        "{checked} values match scikit-learn {} within 1e-9",
        f["sklearn"]
    );
}

#[test]
fn delong_matches_the_papers_formulas() {
    let f = fixtures();
    for p in f["delong"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let d = delong(&bools(&p["labels"]), &floats(&p["a"]), &floats(&p["b"])).unwrap();
        close(name, "auc a", d.auc_a, p["auc_a"].as_f64().unwrap());
        close(name, "auc b", d.auc_b, p["auc_b"].as_f64().unwrap());
        close(name, "z", d.z, p["z"].as_f64().unwrap());
        close(name, "p", d.p, p["p"].as_f64().unwrap());
        eprintln!("{name}: z {:.6} p {:.6}", d.z, d.p);
    }
}
