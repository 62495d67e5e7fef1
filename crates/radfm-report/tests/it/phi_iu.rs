//! The scrubber on real IU report texts with PHI injected (tools/make_phi_iu.py):
//! the committed cases hold only offsets into the IU texts (which may not be
//! committed edited), the injected PHI and glue; the texts come from
//! ../shared/data/iu-xray. Measures recall per PHI type, clinical phrases kept
//! and non-PHI words removed, and checks that scrubbing leaves the labels of the
//! 2,980 original reports alone.
//!
//! `RADFM_PHI_MISSES=FILE` writes every miss and over-scrub as text, for error analysis.
//! `RADFM_PHI_SET=dev` measures the tuning set instead of the test set.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;

use radfm_report::input::{read_reports, Report};
use radfm_report::labeler::Labeler;
use radfm_report::scrub::{find, scrub, Known, Span};

fn iu_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/iu-xray");
    d.join("iu-xray-reports-dev.tgz").exists().then_some(d)
}

fn iu_reports() -> Vec<Report> {
    let dir =
        iu_dir().expect("../shared/data/iu-xray/iu-xray-reports-dev.tgz is required under CI");
    let mut reports = Vec::new();
    read_reports(&dir.join("iu-xray-reports-dev.tgz"), |r| {
        reports.push(r.expect("IU reports parse"))
    })
    .unwrap();
    assert_eq!(reports.len(), 2980);
    reports
}

/// A case rebuilt: its text, and byte ranges of its PHI (with type) and clinical phrases.
pub struct Case {
    pub id: String,
    pub text: String,
    pub phi: Vec<(usize, usize, String)>,
    pub clinical: Vec<(usize, usize)>,
}

fn sha16(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cases(set: &str, reports: &[Report]) -> Vec<Case> {
    let by_id: HashMap<&str, &str> = reports
        .iter()
        .map(|r| (r.id.as_str(), r.text.as_str()))
        .collect();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/phi_iu/{set}.jsonl.gz"));
    let mut raw = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut raw)
        .unwrap();
    raw.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            let orig = by_id[id.as_str()];
            assert_eq!(
                sha16(orig),
                v["sha"].as_str().unwrap(),
                "{id}: the IU text is not the one the case was made on"
            );
            // offsets are in characters
            let chars: Vec<(usize, char)> = orig.char_indices().collect();
            let byte = |c: usize| chars.get(c).map_or(orig.len(), |x| x.0);
            let mut text = String::new();
            let (mut phi, mut clinical) = (Vec::new(), Vec::new());
            for p in v["pieces"].as_array().unwrap() {
                if let Some(r) = p.as_array() {
                    let (a, b) = (
                        r[0].as_u64().unwrap() as usize,
                        r[1].as_u64().unwrap() as usize,
                    );
                    text.push_str(&orig[byte(a)..byte(b)]);
                } else if let Some(t) = p["t"].as_str() {
                    text.push_str(t);
                } else if let Some(t) = p["phi"].as_str() {
                    phi.push((
                        text.len(),
                        text.len() + t.len(),
                        p["type"].as_str().unwrap().to_string(),
                    ));
                    text.push_str(t);
                } else {
                    let t = p["clin"].as_str().unwrap();
                    clinical.push((text.len(), text.len() + t.len()));
                    text.push_str(t);
                }
            }
            Case {
                id,
                text,
                phi,
                clinical,
            }
        })
        .collect()
}

fn covered(spans: &[Span], text: &str, a: usize, b: usize) -> bool {
    // every letter and digit of text[a..b] inside a span
    text[a..b].char_indices().all(|(i, c)| {
        !c.is_alphanumeric() || spans.iter().any(|s| s.start <= a + i && a + i < s.end)
    })
}

fn touched(spans: &[Span], a: usize, b: usize) -> bool {
    spans.iter().any(|s| s.start < b && a < s.end)
}

#[derive(Default, Debug)]
struct Tally {
    recall: BTreeMap<String, (usize, usize)>,
    clinical: (usize, usize),
    words: (usize, usize),
}

fn measure(cases: &[Case], log: &mut Vec<String>) -> Tally {
    let mut t = Tally::default();
    for c in cases {
        let spans = find(&c.text, &Known::default());
        for (a, b, ty) in &c.phi {
            let e = t.recall.entry(ty.clone()).or_default();
            e.1 += 1;
            if covered(&spans, &c.text, *a, *b) {
                e.0 += 1;
            } else {
                log.push(format!(
                    "MISS {ty} {:?} in {}: {:?}",
                    &c.text[*a..*b],
                    c.id,
                    line_of(&c.text, *a)
                ));
            }
        }
        for (a, b) in &c.clinical {
            t.clinical.1 += 1;
            if !touched(&spans, *a, *b) {
                t.clinical.0 += 1;
            } else {
                log.push(format!("CLIN {:?} in {}", &c.text[*a..*b], c.id));
            }
        }
        // non-PHI words: alphanumeric runs outside PHI, but the source's XXXX marks
        let mut i = 0;
        let text = &c.text;
        while i < text.len() {
            let ch = text[i..].chars().next().unwrap();
            if !ch.is_alphanumeric() {
                i += ch.len_utf8();
                continue;
            }
            let end = text[i..]
                .char_indices()
                .find(|(_, c)| !c.is_alphanumeric())
                .map_or(text.len(), |(k, _)| i + k);
            let word = &text[i..end];
            let in_phi = c.phi.iter().any(|(a, b, _)| *a < end && i < *b);
            if !in_phi && !word.chars().all(|c| c == 'X') {
                t.words.1 += 1;
                if touched(&spans, i, end) {
                    t.words.0 += 1;
                    log.push(format!("OVER {word:?} in {}: {:?}", c.id, line_of(text, i)));
                }
            }
            i = end;
        }
    }
    t
}

fn line_of(text: &str, at: usize) -> &str {
    let a = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let b = text[at..].find('\n').map_or(text.len(), |i| at + i);
    &text[a..b]
}

#[test]
#[cfg_attr(
    not(any(radfm_has_iu, radfm_ci)),
    ignore = "needs ../shared/data/iu-xray, absent here (CI fails without it)"
)]
fn scrubber_recall_on_iu_with_injected_phi() {
    let reports = iu_reports();
    let set = std::env::var("RADFM_PHI_SET").unwrap_or_else(|_| "test".into());
    let cases = cases(&set, &reports);
    assert!(cases.len() >= 1480, "{} cases", cases.len());
    let mut log = Vec::new();
    let t = measure(&cases, &mut log);
    if let Ok(p) = std::env::var("RADFM_PHI_MISSES") {
        std::fs::write(p, log.join("\n")).unwrap();
    }
    let (mut hit, mut all) = (0, 0);
    eprintln!("{set} set: {} reports", cases.len());
    eprintln!("{:<12} {:>6} {:>8}", "type", "n", "recall");
    let mut worst = 1.0f64;
    for (ty, (h, n)) in &t.recall {
        eprintln!("{ty:<12} {n:>6} {:>8.4}", *h as f64 / *n as f64);
        worst = worst.min(*h as f64 / *n as f64);
        hit += h;
        all += n;
    }
    let recall = hit as f64 / all as f64;
    let kept = t.clinical.0 as f64 / t.clinical.1 as f64;
    let over = t.words.0 as f64 / t.words.1 as f64;
    eprintln!("overall recall {recall:.4} ({hit}/{all}); clinical phrases kept {kept:.4} ({}/{}); non-PHI words removed {over:.4} ({}/{})",
        t.clinical.0, t.clinical.1, t.words.0, t.words.1);
    assert!(
        all > 6000 && t.recall.len() == 10,
        "the set holds every type"
    );
    assert!(recall >= 0.99, "overall recall {recall:.4} < 0.99");
    assert!(worst >= 0.97, "a type's recall {worst:.4} < 0.97");
    assert!(kept >= 0.99, "clinical phrases kept {kept:.4} < 0.99");
    assert!(over <= 0.02, "non-PHI words removed {over:.4} > 0.02");
}

#[test]
#[cfg_attr(
    not(any(radfm_has_iu, radfm_ci)),
    ignore = "needs ../shared/data/iu-xray, absent here (CI fails without it)"
)]
fn scrubbing_leaves_the_labels_of_iu_reports_alone() {
    let reports = iu_reports();
    let labeler = Labeler::builtin();
    let sections = ["findings", "impression"];
    let mut changed = Vec::new();
    for r in &reports {
        let (clean, _) = scrub(&r.text, &Known::default());
        let before =
            labeler.label(&Report::from_text(r.id.clone(), r.text.clone()).select(&sections));
        let after =
            labeler.label(&Report::from_text(r.id.clone(), clean.clone()).select(&sections));
        if (before.chexpert(), before.other().collect::<Vec<_>>())
            != (after.chexpert(), after.other().collect::<Vec<_>>())
        {
            changed.push(format!("{}: {:?}\n  -> {clean:?}", r.id, r.text));
        }
    }
    let same = 1.0 - changed.len() as f64 / reports.len() as f64;
    eprintln!(
        "labels unchanged on {same:.4} of {} IU reports",
        reports.len()
    );
    for c in changed.iter().take(10) {
        eprintln!("{c}");
    }
    assert!(same >= 0.995, "labels unchanged on {same:.4} < 0.995");
}
