//! Scrubbing on 50 synthetic reports with injected PHI (committed fixture,
//! made by tools/make_phi_reports.py): no PHI string survives, and the
//! labels of the scrubbed text equal those of the original.

use radfm_report::input::{read_reports, Report};
use radfm_report::labeler::Labeler;
use radfm_report::scrub::{scrub, Known};

#[test]
fn no_phi_survives_and_labels_are_unchanged() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phi_reports.jsonl");
    let raw = std::fs::read_to_string(&path).unwrap();
    let phi: Vec<Vec<String>> = raw
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["phi"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    let mut reports = Vec::new();
    read_reports(&path, |r| reports.push(r.unwrap())).unwrap();
    assert_eq!(reports.len(), 50);
    let labeler = Labeler::builtin();
    let sections = ["findings", "impression"];
    let mut leaks = Vec::new();
    let mut total = 0;
    for (r, phi) in reports.iter().zip(&phi) {
        let (clean, kinds) = scrub(&r.text, &Known::default());
        assert!(!kinds.is_empty());
        let lower = clean.to_lowercase();
        for p in phi {
            total += 1;
            if lower.contains(&p.to_lowercase()) {
                leaks.push(format!("{}: {p:?} survives in {clean:?}", r.id));
            }
        }
        let before = labeler.label(&r.select(&sections));
        let after =
            labeler.label(&Report::from_text(r.id.clone(), clean.clone()).select(&sections));
        assert_eq!(
            (before.chexpert(), before.other().collect::<Vec<_>>()),
            (after.chexpert(), after.other().collect::<Vec<_>>()),
            "{}: labels changed by scrubbing:\n{}\n---\n{clean}",
            r.id,
            r.text
        );
        assert!(
            before.iter().count() > 0,
            "{}: the fixture's clinical text is labelled",
            r.id
        );
    }
    assert!(total >= 400, "the fixture holds {total} PHI strings");
    assert!(
        leaks.is_empty(),
        "{} of {total} PHI strings survive:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
