//! The synthetic archive: determinism, valid files, findings in the pixels,
//! and reports that say what the truth file says.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use radfm_core::Observation;
use radfm_report::input::Report;
use radfm_report::labeler::{Hedges, LabelOptions, Labeler, NoFindingRule};
use radfm_synth::{generate, Config};

fn cfg(out: &Path, patients: usize, seed: u64, size: usize) -> Config {
    Config {
        out: out.to_path_buf(),
        patients,
        sites: 3,
        seed,
        size,
        cohort: None,
        contact_sheet: false,
        burned_in: 0.05,
    }
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                m.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    m
}

/// The display-stage pixels of a file, in [0, 1].
fn display(p: &Path) -> ([usize; 4], Vec<f32>) {
    let f = radfm_dicom::read::open(p).unwrap();
    let d = radfm_dicom::decode(&f, radfm_dicom::Stage::Display).unwrap();
    match d.values {
        radfm_dicom::DecodedValues::Float(v) => (d.shape, v),
        other => panic!("display stage gave {other:?}"),
    }
}

fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn same_seed_same_bytes_and_valid_files() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    let sa = generate(&cfg(&a, 8, 7, 96), &|_, _| {}).unwrap();
    generate(&cfg(&b, 8, 7, 96), &|_, _| {}).unwrap();
    generate(&cfg(&c, 8, 8, 96), &|_, _| {}).unwrap();
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), fb.len());
    for (k, v) in &fa {
        assert!(
            fb.get(k) == Some(v),
            "{} differs between two runs with the same seed",
            k.display()
        );
    }
    assert_ne!(
        fa.get(Path::new("truth.jsonl")),
        fc.get(Path::new("truth.jsonl")),
        "another seed, another archive"
    );

    let truth = jsonl(&a.join("truth.jsonl"));
    let reports = jsonl(&a.join("reports.jsonl"));
    assert_eq!(truth.len(), sa.images);
    assert_eq!(reports.len(), sa.studies);
    let dcm: Vec<_> = fa
        .keys()
        .filter(|k| k.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(dcm.len(), sa.images);
    let mut uids = HashSet::new();
    let mut syntaxes = HashSet::new();
    for t in &truth {
        let rel = t["file"].as_str().unwrap();
        let (shape, _) = display(&a.join(rel));
        assert_eq!(shape, [1, 96, 96, 1], "{rel}");
        // the transfer syntax as declared in the file meta (the reader inflates deflated files)
        let raw = &fa[Path::new(rel)];
        let at = raw
            .windows(6)
            .position(|w| w == b"\x02\x00\x10\x00UI")
            .expect("TransferSyntaxUID in the meta");
        let len = u16::from_le_bytes([raw[at + 6], raw[at + 7]]) as usize;
        let ts = String::from_utf8_lossy(&raw[at + 8..at + 8 + len])
            .trim_end_matches('\0')
            .to_string();
        syntaxes.insert(ts);
        let uid = t["sop_instance_uid"].as_str().unwrap();
        assert!(
            uid.len() <= 64
                && uid.starts_with("2.25.")
                && uid[5..].bytes().all(|c| c.is_ascii_digit()),
            "{uid}"
        );
        assert!(!uid[5..].starts_with('0'));
        assert!(uids.insert(uid.to_string()), "duplicate UID {uid}");
        assert_eq!(t["labels"].as_object().unwrap().len(), 14);
    }
    assert_eq!(
        syntaxes.len(),
        3,
        "three sites, three transfer syntaxes: {syntaxes:?}"
    );
    let phi = jsonl(&a.join("phi.jsonl"));
    assert_eq!(phi.len(), sa.phi_strings);
    for loc in [
        "PatientName",
        "PatientAddress",
        "private (0009,1001)",
        "OtherPatientIDsSequence/PatientID",
        "report",
    ] {
        assert!(
            phi.iter().any(|p| p["location"] == loc),
            "no PHI recorded in {loc}"
        );
    }
}

/// Rank-based AUROC (ties count half).
fn auroc(pos: &[f64], neg: &[f64]) -> f64 {
    let mut wins = 0.0;
    for p in pos {
        for n in neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()) as f64
}

/// Mean display intensity of a box in normalised coordinates.
fn mean(img: &[f32], n: usize, u: (f32, f32), v: (f32, f32)) -> f64 {
    let (x0, x1) = ((u.0 * n as f32) as usize, (u.1 * n as f32) as usize);
    let (y0, y1) = ((v.0 * n as f32) as usize, (v.1 * n as f32) as usize);
    let mut s = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            s += img[y * n + x] as f64;
        }
    }
    s / ((x1 - x0) * (y1 - y0)) as f64
}

#[test]
fn findings_are_in_the_pixels_and_sites_differ() {
    let t = tempfile::tempdir().unwrap();
    let n = 128;
    generate(&cfg(t.path(), 260, 3, n), &|_, _| {}).unwrap();
    let truth = jsonl(&t.path().join("truth.jsonl"));
    let (mut eff, mut no_eff, mut cm, mut no_cm) = (vec![], vec![], vec![], vec![]);
    let mut site_means: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut sex_lower: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for t0 in &truth {
        if t0["view"] == "LL" || t0["burned_in"] != "none" {
            continue;
        }
        let (_, img) = display(&t.path().join(t0["file"].as_str().unwrap()));
        let img = &img;
        // effusion: the lower lateral lung zone against the upper zone of the same side, worse side
        let side = |u: (f32, f32)| mean(img, n, u, (0.66, 0.74)) - mean(img, n, u, (0.28, 0.38));
        let lower = side((0.16, 0.28)).max(side((0.72, 0.84)));
        // heart width: brightness just lateral to a normal heart, against the upper lungs there
        let cardiac = mean(img, n, (0.33, 0.40), (0.56, 0.64))
            + mean(img, n, (0.66, 0.74), (0.56, 0.64))
            - mean(img, n, (0.33, 0.40), (0.30, 0.38))
            - mean(img, n, (0.66, 0.74), (0.30, 0.38));
        let l = &t0["labels"];
        if l["Pleural Effusion"] == 1 {
            &mut eff
        } else {
            &mut no_eff
        }
        .push(lower);
        if l["Cardiomegaly"] == 1 {
            &mut cm
        } else {
            &mut no_cm
        }
        .push(cardiac);
        site_means
            .entry(t0["site"].as_str().unwrap().to_string())
            .or_default()
            .push(mean(img, n, (0.1, 0.9), (0.1, 0.9)));
        // lower lung zones (breast shadows), normal studies only
        if l["No Finding"] == 1 {
            let z =
                mean(img, n, (0.16, 0.84), (0.55, 0.70)) - mean(img, n, (0.16, 0.84), (0.28, 0.38));
            sex_lower
                .entry(t0["sex"].as_str().unwrap().to_string())
                .or_default()
                .push(z);
        }
    }
    let a_eff = auroc(&eff, &no_eff);
    let a_cm = auroc(&cm, &no_cm);
    eprintln!(
        "effusion AUROC {a_eff:.3} ({} vs {}), cardiomegaly AUROC {a_cm:.3} ({} vs {})",
        eff.len(),
        no_eff.len(),
        cm.len(),
        no_cm.len()
    );
    assert!(eff.len() >= 15 && cm.len() >= 15, "enough positives");
    assert!(a_eff > 0.9, "effusion AUROC {a_eff}");
    assert!(a_cm > 0.9, "cardiomegaly AUROC {a_cm}");
    // site-level intensity shift: site means differ by more than their spread
    let stats: Vec<(String, f64, f64)> = site_means
        .iter()
        .map(|(s, v)| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            (s.clone(), m, sd)
        })
        .collect();
    for (s, m, sd) in &stats {
        eprintln!("{s}: mean display intensity {m:.3} (sd {sd:.3})");
    }
    let (f, m) = (&sex_lower["F"], &sex_lower["M"]);
    let a_sex = auroc(f, m);
    eprintln!(
        "lower-zone brightness of normal studies, women vs men: AUROC {a_sex:.3} ({} vs {})",
        f.len(),
        m.len()
    );
    assert!(a_sex > 0.7, "sex shift AUROC {a_sex}");
    let (lo, hi) = stats
        .iter()
        .fold((f64::MAX, f64::MIN), |a, s| (a.0.min(s.1), a.1.max(s.1)));
    let pooled = stats.iter().map(|s| s.2).sum::<f64>() / stats.len() as f64;
    assert!(
        (hi - lo) / pooled > 1.0,
        "site shift {:.3} vs spread {pooled:.3}",
        hi - lo
    );
}

#[test]
fn reports_say_what_the_truth_says() {
    let t = tempfile::tempdir().unwrap();
    let s = generate(&cfg(t.path(), 150, 11, 64), &|_, _| {}).unwrap();
    let truth = jsonl(&t.path().join("truth.jsonl"));
    let reports = jsonl(&t.path().join("reports.jsonl"));
    let by_acc: BTreeMap<&str, &serde_json::Value> = truth
        .iter()
        .map(|t| (t["accession_number"].as_str().unwrap(), t))
        .collect();
    let labeler = Labeler::builtin();
    let (mut agree_stated, mut truth_mismatch, mut documented) = (0, 0, 0);
    for r in &reports {
        let acc = r["accession_number"].as_str().unwrap();
        let t0 = by_acc[acc];
        let rep = Report::from_text(acc, r["text"].as_str().unwrap());
        let l = labeler.label_with(
            &rep.select(&["findings", "impression"]),
            LabelOptions {
                no_finding: NoFindingRule::Chexpert,
                hedges: Hedges::All,
            },
        );
        let said: HashSet<&str> = l
            .iter()
            .filter(|(o, st)| *o != Observation::NoFinding && st.is_positive_or_uncertain())
            .map(|(o, _)| o.as_str())
            .collect();
        let stated: HashSet<&str> = t0["report_labels"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let image: HashSet<&str> = t0["labels"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(o, v)| *o != "No Finding" && **v == 1)
            .map(|(o, _)| o.as_str())
            .collect();
        if said == stated {
            agree_stated += 1;
        }
        if stated != image {
            truth_mismatch += 1;
            documented += usize::from(!t0["report_disagreement"].is_null());
        }
    }
    eprintln!(
        "{} reports: the labeler reads what the truth file says the report states in {agree_stated}; {truth_mismatch} state something else than the image, {documented} of them documented",
        reports.len()
    );
    assert_eq!(
        truth_mismatch, documented,
        "every report/image disagreement is documented"
    );
    assert_eq!(s.reports_disagreeing, documented);
    let share = documented as f64 / reports.len() as f64;
    assert!(share > 0.01 && share < 0.12, "disagreement share {share}");
    assert!(
        agree_stated as f64 >= 0.97 * reports.len() as f64,
        "{agree_stated} of {}",
        reports.len()
    );
}
