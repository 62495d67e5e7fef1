//! The pixel text detector (radfm_dicom::text_detect) on a synthetic archive
//! of 2,000+ images, 35% of the frontal ones with text burned in
//! (name, MRN, birth date; random size, aspect, weight, slant, spacing,
//! position, polarity, contrast, box): recall on images whose header flags
//! the text and on those whose header does not, and the false-detection rate
//! on clean images (which carry lead side markers).
//!
//! `RADFM_BURNED_IN_ARCHIVE=DIR` measures an existing `radfm synth` output instead.

use std::path::PathBuf;

use radfm_dicom::text_detect::{detect_samples, first_frame};
use rayon::prelude::*;

#[test]
fn text_in_the_pixels_is_found_on_2000_synthetic_images() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var("RADFM_BURNED_IN_ARCHIVE") {
        Ok(d) => PathBuf::from(d),
        Err(_) => {
            let out = tmp.path().join("archive");
            radfm_synth::generate(
                &radfm_synth::Config {
                    out: out.clone(),
                    patients: 1000,
                    sites: 3,
                    seed: 23,
                    size: 512,
                    cohort: None,
                    contact_sheet: false,
                    burned_in: 0.35,
                },
                &|_, _| {},
            )
            .unwrap();
            out
        }
    };
    let truth: Vec<(String, String)> = std::fs::read_to_string(dir.join("truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["file"].as_str().unwrap().to_string(),
                v["burned_in"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(truth.len() >= 2000, "{} images", truth.len());
    let results: Vec<(String, bool, String)> = truth
        .par_iter()
        .map(|(f, kind)| {
            let file = radfm_dicom::read::open(&dir.join(f)).unwrap();
            let (img, rows, cols, channels) = first_frame(&file).unwrap();
            let found = detect_samples(&img, rows, cols, channels).is_some();
            (kind.clone(), found, f.clone())
        })
        .collect();
    let rate = |kind: &str| {
        let of: Vec<_> = results.iter().filter(|r| r.0 == kind).collect();
        let hit = of.iter().filter(|r| r.1).count();
        (hit, of.len(), hit as f64 / of.len().max(1) as f64)
    };
    let (m, u, n) = (rate("marked"), rate("unmarked"), rate("none"));
    eprintln!("{} images", results.len());
    eprintln!(
        "burned in, header flags it:    found {}/{} = {:.4}",
        m.0, m.1, m.2
    );
    eprintln!(
        "burned in, header does not:    found {}/{} = {:.4}",
        u.0, u.1, u.2
    );
    eprintln!(
        "clean, wrongly found (false):  {}/{} = {:.4}",
        n.0, n.1, n.2
    );
    for r in results.iter().filter(|r| (r.0 == "none") == r.1).take(8) {
        eprintln!("  wrong: {} ({})", r.2, r.0);
    }
    assert!(
        m.1 >= 150 && u.1 >= 100 && n.1 >= 1400,
        "enough of each kind"
    );
    assert!(u.2 >= 0.95, "recall on unmarked images {:.4} < 0.95", u.2);
    assert!(m.2 >= 0.95, "recall on marked images {:.4} < 0.95", m.2);
    assert!(
        n.2 <= 0.02,
        "false detection on clean images {:.4} > 0.02",
        n.2
    );
}
