//! Labeler quality on the IU chest X-ray development reports (../shared),
//! scored against the expert MeSH codes with the rule in
//! `mesh_to_chexpert.json`. Skips when ../shared is absent.
//!
//! `RADFM_IU_ERRORS=FILE` writes every disagreement as JSONL for error analysis.

use std::path::PathBuf;

use radfm_report::input::read_reports;
use radfm_report::iu::{score, GoldMap};
use radfm_report::labeler::Labeler;

fn iu_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/iu-xray");
    d.join("iu-xray-reports-dev.tgz").exists().then_some(d)
}

#[test]
fn labeler_quality_on_iu_dev() {
    let Some(dir) = iu_dir() else {
        eprintln!("skipping: ../shared/data/iu-xray is absent");
        return;
    };
    let map = GoldMap::from_json(&std::fs::read_to_string(dir.join("mesh_to_chexpert.json")).unwrap()).unwrap();
    let mut reports = Vec::new();
    read_reports(&dir.join("iu-xray-reports-dev.tgz"), |r| reports.push(r.expect("IU reports parse"))).unwrap();
    assert_eq!(reports.len(), 2980);
    let s = score(Labeler::builtin(), &reports, &map);
    eprintln!("scored {} reports ({} skipped)", s.scored, s.skipped);
    eprintln!("{:<28} {:>9} {:>9} {:>9} {:>8}", "observation", "precision", "recall", "f1", "support");
    for (o, p) in &s.per_observation {
        eprintln!("{o:<28} {:>9.3} {:>9.3} {:>9.3} {:>8}", p.precision, p.recall, p.f1, p.support);
    }
    eprintln!("macro-F1 over {} observations with support >= 20: {:.4}", s.macro_observations.len(), s.macro_f1);
    if let Ok(path) = std::env::var("RADFM_IU_ERRORS") {
        let lines: Vec<String> = s.disagreements.iter().map(|d| serde_json::to_string(d).unwrap()).collect();
        std::fs::write(path, lines.join("\n")).unwrap();
    }
    assert!(s.scored > 2800, "the scoring rule skipped too many reports");
    assert!(s.macro_f1 >= 0.90, "macro-F1 {:.4} below the 0.90 target", s.macro_f1);
}
