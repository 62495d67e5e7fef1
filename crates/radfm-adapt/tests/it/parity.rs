//! The probe against scikit-learn's LogisticRegression on a committed problem
//! (tools/probe_reference.py): same coefficients, same test probabilities.

use radfm_adapt::logistic::{balanced_weights, fit, Features, Rows, Settings};

#[test]
fn probabilities_match_scikit_learn_at_fixed_c() {
    let text = include_str!("../fixtures/sklearn_probe.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let d = v["d"].as_u64().unwrap() as usize;
    let floats = |k: &str| -> Vec<f32> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let (train, test) = (floats("train_x"), floats("test_x"));
    let y: Vec<bool> = v["train_y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() == 1)
        .collect();
    let n = y.len();
    let x = Features::new(&train, n, d).unwrap();
    let xt = Features::new(&test, test.len() / d, d).unwrap();
    let index: Vec<usize> = (0..n).collect();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let mut worst = 0.0f64;
    for case in cases {
        let c = case["C"].as_f64().unwrap();
        let weight = match case["class_weight"].as_str().unwrap() {
            "balanced" => balanced_weights(&y),
            _ => vec![1.0; n],
        };
        let rows = Rows {
            index: &index,
            y: &y,
            weight: &weight,
        };
        let fit = fit(&x, rows, &Settings::new(c), None).unwrap();
        assert!(fit.converged, "C={c}: {} iterations", fit.iterations);
        let want: Vec<f64> = case["proba"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(want.len(), xt.rows());
        for (i, &p) in want.iter().enumerate() {
            let got = fit.model.proba(xt.row(i));
            let err = (got - p).abs();
            worst = worst.max(err);
            assert!(
                err <= 1e-4,
                "C={c} {}: row {i}: {got} vs scikit-learn {p}",
                case["class_weight"]
            );
        }
        let b = case["intercept"].as_f64().unwrap();
        assert!(
            (fit.model.intercept - b).abs() <= 1e-4 * b.abs().max(1.0),
            "C={c}: intercept {} vs {b}",
            fit.model.intercept
        );
    }
    eprintln!("largest probability difference from scikit-learn: {worst:.2e}");
}
