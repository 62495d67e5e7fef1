//! Labeler quality on the IU chest X-ray development reports (../shared),
//! scored against the expert MeSH codes with the rule in
//! `mesh_to_chexpert.json`. Needs ../shared/data/iu-xray: without it the test
//! is ignored, saying why, and under CI (`CI` set) it fails (see build.rs).
//!
//! `RADFM_IU_ERRORS=FILE` writes every disagreement as JSONL for error analysis.

use std::path::PathBuf;

use radfm_report::input::read_reports;
use radfm_report::iu::{score, GoldMap};
use radfm_report::labeler::{Hedges, LabelOptions, Labeler};

fn iu_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/iu-xray");
    d.join("iu-xray-reports-dev.tgz").exists().then_some(d)
}

#[test]
#[cfg_attr(
    not(any(radfm_has_iu, radfm_ci)),
    ignore = "needs ../shared/data/iu-xray, absent here (CI fails without it)"
)]
fn labeler_quality_on_iu_dev() {
    let dir =
        iu_dir().expect("../shared/data/iu-xray/iu-xray-reports-dev.tgz is required under CI");
    let map =
        GoldMap::from_json(&std::fs::read_to_string(dir.join("mesh_to_chexpert.json")).unwrap())
            .unwrap();
    let mut reports = Vec::new();
    read_reports(&dir.join("iu-xray-reports-dev.tgz"), |r| {
        reports.push(r.expect("IU reports parse"))
    })
    .unwrap();
    assert_eq!(reports.len(), 2980);
    let s = score(Labeler::builtin(), LabelOptions::default(), &reports, &map);
    eprintln!("scored {} reports ({} skipped)", s.scored, s.skipped);
    eprintln!(
        "{:<28} {:>9} {:>9} {:>9} {:>8}",
        "observation", "precision", "recall", "f1", "support"
    );
    for (o, p) in &s.per_observation {
        eprintln!(
            "{o:<28} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            p.precision, p.recall, p.f1, p.support
        );
    }
    eprintln!(
        "macro-F1 over {} observations with support >= 20: {:.4} (counting only positive: {:.4})",
        s.macro_observations.len(),
        s.macro_f1,
        s.macro_f1_strict
    );
    if let Ok(path) = std::env::var("RADFM_IU_ERRORS") {
        let lines: Vec<String> = s
            .disagreements
            .iter()
            .map(|d| serde_json::to_string(d).unwrap())
            .collect();
        std::fs::write(path, lines.join("\n")).unwrap();
    }
    assert!(s.scored > 2800, "the scoring rule skipped too many reports");
    // The target for the primary figure (positive or uncertain counted
    // as positive) is 0.90; the labeler reaches 0.928 with its default hedge
    // policy. With every hedge uncertain (CheXpert's convention) it is 0.885:
    // the MeSH coders leave findings raised only as a possibility uncoded (see
    // docs/reports.md). Floors a little under the figures reached.
    assert!(
        s.macro_f1 >= 0.92,
        "macro-F1 {:.4} fell below 0.92 (target 0.90)",
        s.macro_f1
    );
    let all = score(
        Labeler::builtin(),
        LabelOptions {
            hedges: Hedges::All,
            ..LabelOptions::default()
        },
        &reports,
        &map,
    );
    eprintln!(
        "with every hedge uncertain (--hedges all): macro-F1 {:.4}",
        all.macro_f1
    );
    assert!(
        all.macro_f1 >= 0.87,
        "--hedges all: macro-F1 {:.4} fell below 0.87",
        all.macro_f1
    );
    assert!(
        s.macro_f1_strict >= 0.90,
        "positive-only macro-F1 {:.4} fell below 0.90",
        s.macro_f1_strict
    );
    let per = |o: &str| {
        s.per_observation
            .iter()
            .find(|(n, _)| n.as_str() == o)
            .unwrap()
            .1
    };
    for (o, floor) in [
        ("No Finding", 0.93),
        ("Cardiomegaly", 0.95),
        ("Support Devices", 0.92),
        ("Lung Opacity", 0.92),
        ("Atelectasis", 0.95),
        ("Pleural Effusion", 0.94),
        ("Pneumonia", 0.80),
    ] {
        assert!(
            per(o).f1 >= floor,
            "{o}: F1 {:.3} fell below {floor}",
            per(o).f1
        );
    }
}
