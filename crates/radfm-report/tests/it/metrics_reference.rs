//! `reports score` metrics against the reference packages on committed
//! golden fixtures (values from tools/metrics_reference.py): BLEU-1..4 equal
//! sacrebleu's (tokenize="none", smooth_method="none"), ROUGE-L equals
//! rouge-score's, both within 1e-4 (they agree to ~1e-12).

use std::collections::BTreeMap;

use radfm_report::input::read_reports;
use radfm_report::labeler::Labeler;
use radfm_report::metrics::score;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn by_id(name: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    read_reports(&fixture(name), |r| {
        let r = r.unwrap();
        m.insert(r.id, r.text);
    })
    .unwrap();
    m
}

#[test]
fn bleu_and_rouge_match_the_reference_packages() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("metrics_reference.json")).unwrap())
            .unwrap();
    let p = by_id("metrics_pred.jsonl");
    let r = by_id("metrics_ref.jsonl");
    assert_eq!(p.len(), reference["n"].as_u64().unwrap() as usize);
    let preds: Vec<&str> = p.values().map(String::as_str).collect();
    let refs: Vec<&str> = p.keys().map(|k| r[k].as_str()).collect();
    let s = score(&preds, &refs, Labeler::builtin());
    let want = |k: &str| reference[k].as_f64().unwrap();
    let checks = [
        ("bleu1_sacrebleu", s.bleu1),
        ("bleu2_sacrebleu", s.bleu2),
        ("bleu3_sacrebleu", s.bleu3),
        ("bleu4_sacrebleu", s.bleu4),
        ("rougeL_precision", s.rouge_l_precision),
        ("rougeL_recall", s.rouge_l_recall),
        ("rougeL_f1", s.rouge_l_f1),
    ];
    for (k, got) in checks {
        let w = want(k);
        assert!((got - w).abs() < 1e-4, "{k}: radfm {got} vs reference {w}");
        eprintln!(
            "{k:<18} radfm {got:.12}  reference {w:.12}  diff {:.1e}",
            (got - w).abs()
        );
    }
    // the fixture is not trivial: BLEU below 1, and the empty prediction scores 0
    assert!(s.bleu4 > 0.3 && s.bleu4 < 0.95);
}

#[test]
fn chexpert_f1_is_one_for_identical_reports_and_drops_for_a_changed_finding() {
    let refs = [
        "Small left pleural effusion. Mild cardiomegaly.",
        "No acute disease.",
        "Right lower lobe pneumonia.",
    ];
    let s = score(&refs, &refs, Labeler::builtin());
    assert_eq!((s.chexpert_micro_f1_14, s.chexpert_micro_f1_5), (1.0, 1.0));
    let preds = [
        "No pleural effusion. Mild cardiomegaly.",
        "No acute disease.",
        "Right lower lobe pneumonia.",
    ];
    let s = score(&preds, &refs, Labeler::builtin());
    let eff = s
        .chexpert_per_observation
        .iter()
        .find(|(o, _)| *o == radfm_core::Observation::PleuralEffusion)
        .unwrap()
        .1;
    assert_eq!((eff.tp, eff.fp, eff.fn_), (0, 0, 1));
    assert!(s.chexpert_micro_f1_5 < 1.0 && s.chexpert_micro_f1_5 > 0.5);
}
