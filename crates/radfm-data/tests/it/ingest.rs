//! Integration tests of ingest, de-identification, splits and resume, on files generated
//! from the committed radfm-dicom fixtures.

use std::path::{Path, PathBuf};

use radfm_data::ingest::{ingest, IngestConfig, NoReporter};
use radfm_data::testdata;

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-dicom/tests/fixtures/deflated.dcm")
}

fn config(inputs: Vec<PathBuf>, out: &Path) -> IngestConfig {
    IngestConfig {
        inputs,
        out: out.to_path_buf(),
        reports: None,
        size: 32,
        deid: true,
        allow_burned_in: false,
        surrogates: false,
        jobs: 2,
        key_path: radfm_data::key::default_path(out),
        site: None,
        shard_size: 3,
    }
}

/// Every byte of every file under `dir`, as lowercase text (lossy), with its
/// path; tar archives are also opened member by member, and gzip streams
/// decompressed, so that nothing hides inside a container.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, String)> {
    fn expand(path: PathBuf, b: Vec<u8>, out: &mut Vec<(PathBuf, String)>) {
        if b.starts_with(&[0x1f, 0x8b]) {
            let mut d = Vec::new();
            use std::io::Read;
            if flate2::read::GzDecoder::new(&b[..])
                .read_to_end(&mut d)
                .is_ok()
            {
                expand(path.join("[gunzip]"), d, out);
            }
        }
        if b.len() > 262 && &b[257..262] == b"ustar" {
            let mut ar = tar::Archive::new(&b[..]);
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_path_buf();
                let mut m = Vec::new();
                use std::io::Read;
                e.read_to_end(&mut m).unwrap();
                out.push((path.join(&name), name.to_string_lossy().to_lowercase()));
                expand(path.join(name), m, out);
            }
        }
        out.push((path, String::from_utf8_lossy(&b).to_lowercase()));
    }
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        // file and folder names count too
        out.push((
            e.path().to_path_buf(),
            e.file_name().to_string_lossy().to_lowercase(),
        ));
        if e.file_type().is_file() {
            expand(
                e.path().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
                &mut out,
            );
        }
    }
    out
}

/// The source key of the input whose path ends with `name`, from the private
/// map beside the dataset.
fn source_of(ds: &Path, name: &str) -> String {
    let map = std::fs::read_to_string(radfm_data::ingest::sources_path(ds)).unwrap();
    map.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("{name} is not in the private sources file"))["source"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `DIR/in/` with `n` header variants of the template, named `<prefix><i>.dcm`.
fn variants(dir: &Path, prefix: &str, n: usize) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..n {
        testdata::write_variant(
            &template(),
            &input.join(format!("{prefix}{i}.dcm")),
            i,
            false,
        )
        .unwrap();
    }
    input
}

/// The dataset's ingest log: its text and its lines.
fn ingest_log(ds: &Path) -> (String, Vec<serde_json::Value>) {
    let log = std::fs::read_to_string(ds.join(radfm_data::ingest::LOG_FILE)).unwrap();
    let lines = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (log, lines)
}

/// Property: no PHI survives de-identification, anywhere in the dataset.
#[test]
fn no_injected_phi_token_survives_anywhere_in_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut reports = String::new();
    let n = 6;
    for i in 0..n {
        testdata::write_variant(&template(), &input.join(format!("img{i}.dcm")), i, true).unwrap();
        let acc = &testdata::phi_tokens(i)[14];
        reports.push_str(&serde_json::json!({"accession_number": acc, "study_instance_uid": "", "text": testdata::phi_report(i)}).to_string());
        reports.push('\n');
    }
    let rep = tmp.path().join("reports.jsonl");
    std::fs::write(&rep, reports).unwrap();
    let out = tmp.path().join("ds");
    let mut cfg = config(vec![input.clone()], &out);
    cfg.reports = Some(rep);
    let s = ingest(&cfg, &NoReporter).unwrap();
    assert_eq!((s.ok, s.images, s.reports_linked), (n, n, n), "{s:?}");

    let files = all_bytes(&out);
    assert!(files.len() >= 5, "catalog, shards, log and card expected");
    let mut tokens: Vec<String> = (0..n).flat_map(testdata::phi_tokens).collect();
    tokens.extend(["555-867-5309".to_string(), "03/17/2019".to_string()]);
    for (path, text) in &files {
        for t in &tokens {
            assert!(
                !text.contains(&t.to_lowercase()),
                "{t} survives in {}",
                path.display()
            );
        }
    }
    // the key is outside the dataset, mode 0600, and its contents appear nowhere inside
    let key = std::fs::read_to_string(radfm_data::key::default_path(&out)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(radfm_data::key::default_path(&out))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for (path, text) in &files {
        assert!(
            !text.contains(key.trim()),
            "key leaked into {}",
            path.display()
        );
    }

    // patient characteristics, modality and geometry are kept
    let cat = radfm_data::catalog::Catalog::open(&out).unwrap();
    let rows: Vec<(String, f64, String, i64, i64, f64)> = cat
        .conn
        .prepare("SELECT sex, age_years, modality, orig_rows, orig_columns, spacing_row FROM images ORDER BY sex")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), n);
    assert_eq!(rows.iter().filter(|r| r.0 == "F").count(), 3);
    for r in &rows {
        assert!(
            r.1 == 71.0 || r.1 == 72.0,
            "age from birth 1947-03-12 and a 2019 study: {}",
            r.1
        );
        assert_eq!(r.2, "DX");
        assert_eq!((r.3, r.4), (64, 64));
        assert!(r.5 > 0.0, "pixel spacing kept and scaled");
    }
    // the reports were scrubbed but keep their clinical content
    let text: String = cat
        .conn
        .query_row("SELECT text FROM reports LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(
        text.contains("No pleural effusion or pneumothorax."),
        "{text}"
    );
    assert!(
        text.contains("[NAME]") && text.contains("[DATE]") && text.contains("[PHONE]"),
        "{text}"
    );
    // each image comes with its own study's (scrubbed) report, in key order
    let pairs = cat.image_reports().unwrap();
    assert_eq!(pairs.len(), n);
    assert!(pairs.windows(2).all(|w| w[0].key < w[1].key));
    for p in &pairs {
        let stored: String = cat
            .conn
            .query_row(
                "SELECT text FROM reports WHERE study_uid = ?1",
                [&p.study_uid],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(p.report.as_deref(), Some(stored.as_str()));
        assert_eq!(p.split, None, "no split assigned yet");
        assert!(p.shard.starts_with("shard-"));
    }
}

#[test]
fn malformed_inputs_are_logged_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bad");
    std::fs::create_dir(&input).unwrap();
    let good_path = tmp.path().join("good.dcm");
    testdata::write_variant(&template(), &good_path, 0, false).unwrap();
    let good = std::fs::read(&good_path).unwrap();
    std::fs::write(
        input.join("random.bin"),
        (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(input.join("empty.dcm"), b"").unwrap();
    std::fs::write(input.join("truncated.dcm"), &good[..good.len() / 2]).unwrap();
    let mut absurd = good.clone();
    // an element length far past the end of the file, right after the meta group
    let pos = absurd
        .windows(6)
        .position(|w| w == [0x10, 0x00, 0x20, 0x00, b'L', b'O'])
        .unwrap();
    absurd[pos + 6..pos + 8].copy_from_slice(&[0xFF, 0xFF]);
    std::fs::write(input.join("absurd_length.dcm"), &absurd).unwrap();
    std::fs::write(input.join("notes.txt"), "Radiology department notes\n").unwrap();
    let mut dicm_garbage = vec![0u8; 128];
    dicm_garbage.extend_from_slice(b"DICM");
    dicm_garbage.extend((0..300u32).map(|i| (i * 7) as u8));
    std::fs::write(input.join("dicm_then_garbage.dcm"), &dicm_garbage).unwrap();

    let out = tmp.path().join("ds");
    let s = ingest(&config(vec![input], &out), &NoReporter).unwrap();
    assert_eq!(s.found, 6);
    assert_eq!(s.ok, 0);
    assert_eq!(s.skipped + s.failed, 6, "{s:?}");
    let (_, lines) = ingest_log(&out);
    assert_eq!(lines.len(), 6, "one line per input file");
    for l in &lines {
        assert_ne!(l["status"], "ok");
        let reason = l["reason"].as_str().unwrap();
        assert!(reason.len() > 10, "reason too vague: {l}");
    }
    // the log names files by key; the private map beside the dataset has the paths
    let by = |name: &str| {
        let key = source_of(&out, name);
        lines.iter().find(|l| l["source"] == key).unwrap().clone()
    };
    assert!(by("empty.dcm")["reason"]
        .as_str()
        .unwrap()
        .contains("empty"));
    assert!(by("notes.txt")["reason"]
        .as_str()
        .unwrap()
        .contains("not DICOM"));
    assert_eq!(by("truncated.dcm")["status"], "failed");
    assert!(
        by("absurd_length.dcm")["reason"]
            .as_str()
            .unwrap()
            .contains("declares 65535 bytes"),
        "{}",
        by("absurd_length.dcm")
    );
    assert_eq!(by("dicm_then_garbage.dcm")["status"], "failed");
}

/// A PACS export laid out the usual way (`NAME^GIVEN_MRN/DATE_ACCESSION/NAME_MRN.dcm`)
/// of patients aged 93 to 96: no token of any path reaches the dataset (its catalog,
/// shards and their members, sidecars, card, log), the private map beside it has the
/// paths, and no stored age is above 90.
#[test]
fn a_pacs_style_tree_leaves_no_path_token_and_no_age_over_90() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("export");
    let people = [
        (
            "ZAWADZKI",
            "ROSALIND",
            "MRN4417203",
            "19300415",
            "ACC7781234",
            1925,
        ),
        (
            "QUIXLEY",
            "BARNABY",
            "MRN5520918",
            "20190822",
            "ACC7781990",
            1924,
        ),
        (
            "VANTERPOOL",
            "HEPZIBAH",
            "MRN6631457",
            "20200109",
            "ACC7782311",
            1923,
        ),
        (
            "OKONKWO",
            "TIBERIUS",
            "MRN7790026",
            "20181130",
            "ACC7783020",
            1926,
        ),
    ];
    let mut tokens = Vec::new();
    for (i, (fam, given, mrn, date, acc, born)) in people.iter().enumerate() {
        let dir = input
            .join(format!("{fam}^{given}_{mrn}"))
            .join(format!("{date}_{acc}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{fam}_{mrn}.dcm"));
        testdata::write_variant(&template(), &file, i, false).unwrap();
        // a birth date that makes the patient 93 to 96 at the study
        let mut b = std::fs::read(&file).unwrap();
        let old = b"19470312";
        let pos = b
            .windows(8)
            .position(|w| w == old)
            .expect("birth date in the file");
        b[pos..pos + 8].copy_from_slice(format!("{born}0312").as_bytes());
        std::fs::write(&file, b).unwrap();
        tokens.extend([fam, given, mrn, date, acc].map(|t| t.to_lowercase()));
    }
    let out = tmp.path().join("ds");
    let s = ingest(&config(vec![input.clone()], &out), &NoReporter).unwrap();
    assert_eq!(s.ok, 4, "{s:?}");
    let files = all_bytes(&out);
    assert!(
        files.len() > 20,
        "catalog, shards and their members, log, card"
    );
    for (path, text) in &files {
        for t in &tokens {
            assert!(
                !text.contains(t.as_str()),
                "path token {t} in {}",
                path.display()
            );
        }
        assert!(
            !text.contains("export"),
            "the input folder's name in {}",
            path.display()
        );
    }
    // the private map has every path, and is the owner's alone
    let private = radfm_data::ingest::sources_path(&out);
    assert!(!private.starts_with(&out));
    let map = std::fs::read_to_string(&private).unwrap();
    for (fam, _, mrn, ..) in &people {
        assert!(map.contains(&format!("{fam}_{mrn}.dcm")), "{map}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // ages: all 90, none above; the card's band is 90+
    let cat = radfm_data::catalog::Catalog::open(&out).unwrap();
    for table in ["images", "studies"] {
        let ages: Vec<f64> = cat
            .conn
            .prepare(&format!("SELECT age_years FROM {table}"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ages, vec![90.0; 4], "{table}");
    }
    for (path, text) in files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "json"))
    {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            if let Some(age) = v["meta"]["age_years"].as_f64() {
                assert!(age <= 90.0, "{age} in {}", path.display());
            }
        }
    }
    let card = std::fs::read_to_string(out.join("card.md")).unwrap();
    assert!(card.contains("| 90+ | 4 |"), "{card}");
}

/// A `--no-deid` dataset says so in its card, its catalog and every sidecar; a
/// dataset refuses a run under the other policy or under another key.
#[test]
fn one_dataset_one_policy_and_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let input = variants(tmp.path(), "", 2);
    // not de-identified: said everywhere
    let plain = tmp.path().join("plain");
    let mut cfg = config(vec![input.clone()], &plain);
    cfg.deid = false;
    ingest(&cfg, &NoReporter).unwrap();
    let card = std::fs::read_to_string(plain.join("card.md")).unwrap();
    assert!(
        card.contains("De-identification: NOT DE-IDENTIFIED"),
        "{card}"
    );
    assert!(!card.contains("Basic Profile"), "{card}");
    let cat = radfm_data::catalog::Catalog::open(&plain).unwrap();
    assert_eq!(
        cat.meta("deidentification").unwrap().as_deref(),
        Some("identified")
    );
    assert!(cat
        .meta("deidentification_method")
        .unwrap()
        .unwrap()
        .starts_with("NOT DE-IDENTIFIED"));
    let sidecars: Vec<serde_json::Value> = all_bytes(&plain)
        .into_iter()
        .filter(|(p, _)| {
            p.extension().is_some_and(|e| e == "json") && p.to_string_lossy().contains(".tar/")
        })
        .filter_map(|(_, t)| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter(|v| v.is_object())
        .collect();
    assert_eq!(sidecars.len(), 2);
    for v in &sidecars {
        // all_bytes lowercases
        assert!(
            v["deidentification"]
                .as_str()
                .unwrap()
                .starts_with("not de-identified"),
            "{v}"
        );
    }
    // and a de-identified run cannot add to it
    let mut cfg2 = config(vec![input.clone()], &plain);
    cfg2.deid = true;
    let e = ingest(&cfg2, &NoReporter).unwrap_err().to_string();
    assert!(e.contains("one dataset, one policy"), "{e}");
    // a de-identified dataset refuses --no-deid, and another key
    let ds = tmp.path().join("ds");
    ingest(&config(vec![input.clone()], &ds), &NoReporter).unwrap();
    let mut no = config(vec![input.clone()], &ds);
    no.deid = false;
    let e = ingest(&no, &NoReporter).unwrap_err().to_string();
    assert!(e.contains("the dataset is deidentified"), "{e}");
    let other_key = tmp.path().join("other.deid-key");
    std::fs::write(&other_key, "ab".repeat(32)).unwrap();
    let mut other = config(vec![input.clone()], &ds);
    other.key_path = other_key;
    let e = ingest(&other, &NoReporter).unwrap_err().to_string();
    assert!(e.contains("another key"), "{e}");
    // and a key that did not exist is not left behind by the refused run
    let missing_key = tmp.path().join("new.deid-key");
    let mut fresh = config(vec![input.clone()], &ds);
    fresh.key_path = missing_key.clone();
    let e = ingest(&fresh, &NoReporter).unwrap_err().to_string();
    assert!(e.contains("another key"), "{e}");
    assert!(
        !missing_key.exists(),
        "the key made for the refused run is removed"
    );
    // the catalog keeps the key's fingerprint, never the key
    let key = std::fs::read_to_string(radfm_data::key::default_path(&ds)).unwrap();
    let fp = radfm_data::catalog::Catalog::open(&ds)
        .unwrap()
        .meta("key_fingerprint")
        .unwrap()
        .unwrap();
    assert_eq!(fp.len(), 32);
    assert!(!key.contains(&fp) && !fp.contains(key.trim()));
    for (path, text) in all_bytes(&ds) {
        assert!(!text.contains(key.trim()), "key in {}", path.display());
    }
    // the same key again is fine
    ingest(&config(vec![input.clone()], &ds), &NoReporter).unwrap();
    // a dataset made by an older radfm (pseudonyms without the keyed check) is refused
    let cat = radfm_data::catalog::Catalog::open(&ds).unwrap();
    assert_eq!(cat.meta("pseudonym_scheme").unwrap().as_deref(), Some("2"));
    drop(cat);
    rusqlite::Connection::open(ds.join("catalog.sqlite"))
        .unwrap()
        .execute("delete from meta where key = 'pseudonym_scheme'", [])
        .unwrap();
    let e = ingest(&config(vec![input], &ds), &NoReporter)
        .unwrap_err()
        .to_string();
    assert!(e.contains("older form"), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Property: a random PHI string placed in any header element the variants carry
    /// (patient, physician, institution, description, comment, ID, accession, address
    /// fields, a nested sequence, a private tag), in the folder name or in the file name
    /// never appears anywhere under the dataset, tar members included.
    #[test]
    fn a_random_phi_string_anywhere_in_the_input_never_reaches_the_dataset(
        long in "Q[A-Z0-9]{29}",
        place in 0usize..27,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let tokens = testdata::phi_tokens(0);
        // as long as the token it replaces (so the element keeps its length), else 14
        let phi = long[..if place < 25 { tokens[place].len() } else { 14 }].to_string();
        let folder = if place == 25 { phi.clone() } else { "in".to_string() };
        let input = tmp.path().join(&folder);
        std::fs::create_dir(&input).unwrap();
        let name = if place == 26 { format!("{phi}.dcm") } else { "x.dcm".to_string() };
        let file = input.join(name);
        testdata::write_variant(&template(), &file, 0, true).unwrap();
        if place < 25 {
            // the token of that element, overwritten in place (same length)
            let token = tokens[place].as_bytes();
            let mut b = std::fs::read(&file).unwrap();
            let mut hits = 0;
            while let Some(pos) = b.windows(token.len()).position(|w| w == token) {
                b[pos..pos + token.len()].copy_from_slice(phi.as_bytes());
                hits += 1;
            }
            assert!(hits > 0, "token {place} is in the file");
            std::fs::write(&file, b).unwrap();
        }
        let out = tmp.path().join("ds");
        let s = ingest(&config(vec![input], &out), &NoReporter).unwrap();
        proptest::prop_assert_eq!(s.ok, 1);
        let needle = phi.to_lowercase();
        for (path, text) in all_bytes(&out) {
            proptest::prop_assert!(!text.contains(&needle), "{} (place {}) in {}", phi, place, path.display());
        }
    }
}

/// A StudyDate holding a non-ASCII byte once panicked de-identification (a
/// string sliced inside a UTF-8 character), which aborted the whole ingest.
/// Now that file fails alone, with a reason, and the good files are ingested.
#[test]
fn a_non_ascii_study_date_fails_that_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let input = variants(tmp.path(), "good", 3);
    let bad = input.join("bad_date.dcm");
    testdata::write_variant(&template(), &bad, 3, false).unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    // the study date's last digit becomes a lone 0xC3, the lead byte of a
    // two-byte UTF-8 character, so the decoded text's 8th byte starts a
    // multi-byte character
    let date = testdata::phi_tokens(3)[30].clone().into_bytes();
    let mut patched = 0;
    while let Some(pos) = bytes.windows(8).position(|w| w == date.as_slice()) {
        bytes[pos + 7] = 0xC3;
        patched += 1;
    }
    assert!(patched >= 1, "the study date is in the file");
    std::fs::write(&bad, &bytes).unwrap();

    let out = tmp.path().join("ds");
    let s = ingest(&config(vec![input], &out), &NoReporter).unwrap();
    assert_eq!((s.found, s.ok), (4, 3), "{s:?}");
    let (log, lines) = ingest_log(&out);
    assert_eq!(lines.len(), 4, "{log}");
    let ok = lines.iter().filter(|l| l["status"] == "ok").count();
    assert_eq!(ok, 3, "{log}");
    let bad_line = lines
        .iter()
        .find(|l| l["status"] != "ok")
        .expect("the bad file has its line");
    assert_eq!(bad_line["status"], "failed", "{bad_line}");
    let reason = bad_line["reason"].as_str().unwrap();
    assert!(
        !reason.contains("internal error"),
        "handled, not caught: {reason}"
    );
    assert!(reason.len() > 10, "{reason}");
}

#[test]
fn reingest_skips_done_work_and_splits_are_patient_disjoint() {
    let tmp = tempfile::tempdir().unwrap();
    let input = variants(tmp.path(), "a", 10);
    // the same image under another name is a duplicate, not a second image
    std::fs::copy(input.join("a0.dcm"), input.join("copy_of_a0.dcm")).unwrap();
    let out = tmp.path().join("ds");
    let s1 = ingest(&config(vec![input.clone()], &out), &NoReporter).unwrap();
    assert_eq!((s1.images, s1.skipped), (10, 1), "{s1:?}");
    // what a run killed between a shard's rename and its catalog commit leaves behind:
    // a complete but unreferenced shard, and a temporary one
    let shards = out.join("shards");
    let first = std::fs::read_dir(&shards)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&first, shards.join("shard-000077.tar")).unwrap();
    std::fs::write(shards.join(".shard-000078.tar.tmp"), b"partial").unwrap();
    let s2 = ingest(&config(vec![input.clone()], &out), &NoReporter).unwrap();
    assert_eq!((s2.already_done, s2.ok, s2.images), (11, 0, 0), "{s2:?}");
    assert!(
        !shards.join("shard-000077.tar").exists(),
        "orphan shard not removed"
    );
    assert!(
        !shards.join(".shard-000078.tar.tmp").exists(),
        "temporary shard not removed"
    );
    assert!(first.exists());

    let c = radfm_data::split::assign(&out, 0.6, 0.2, 0.2, 7).unwrap();
    assert_eq!(c.train + c.val + c.test, 10);
    assert_eq!((c.train, c.val, c.test), (6, 2, 2));
    let cat = radfm_data::catalog::Catalog::open(&out).unwrap();
    let mixed: i64 = cat
        .conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT i.patient_key FROM images i JOIN patients p USING(patient_key)
             GROUP BY i.patient_key HAVING COUNT(DISTINCT p.split) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mixed, 0);
    // same seed, same assignment
    let splits = || -> Vec<String> {
        cat.conn
            .prepare("SELECT split FROM patients ORDER BY patient_key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let before = splits();
    radfm_data::split::assign(&out, 0.6, 0.2, 0.2, 7).unwrap();
    let after = splits();
    assert_eq!(before, after);
    assert!(
        radfm_data::split::assign(&out, 0.5, 0.2, 0.2, 7).is_err(),
        "fractions must sum to 1"
    );
    // an external site: three patients' studies moved to site-X are all test patients
    let three: Vec<String> = cat
        .conn
        .prepare("SELECT patient_key FROM patients ORDER BY patient_key LIMIT 3")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for k in &three {
        cat.conn
            .execute(
                "UPDATE studies SET site = 'site-X' WHERE patient_key = ?1",
                [k],
            )
            .unwrap();
    }
    let c = radfm_data::split::assign_holding_out(&out, 0.6, 0.2, 0.2, 7, Some("site-X")).unwrap();
    assert_eq!((c.held_out, c.train + c.val + c.test), (3, 10));
    assert_eq!(
        (c.train, c.val, c.test),
        (4, 1, 3 + 2),
        "the other seven cut 0.6/0.2/0.2"
    );
    for k in &three {
        let s: String = cat
            .conn
            .query_row(
                "SELECT split FROM patients WHERE patient_key = ?1",
                [k],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(s, "test", "{k}");
    }
    let e = radfm_data::split::assign_holding_out(&out, 0.6, 0.2, 0.2, 7, Some("site-nowhere"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("site-nowhere") && e.contains("site-X"), "{e}");
    radfm_data::split::assign(&out, 0.6, 0.2, 0.2, 7).unwrap();
    assert_eq!(
        splits(),
        before,
        "without a held-out site the old assignment comes back"
    );
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("card.json")).unwrap()).unwrap();
    assert_eq!(card["by_split"]["train"], 6);
}

#[test]
fn ct_slices_become_one_volume_sorted_along_the_normal() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ct");
    std::fs::create_dir(&input).unwrap();
    // written out of order; slice k sits at z = 2.5 k and has value 100 k
    for (file, k) in [3usize, 0, 4, 1, 2].iter().enumerate() {
        testdata::write_ct_slice(
            &template(),
            &input.join(format!("s{file}.dcm")),
            *k,
            2.5 * *k as f64,
            100 * *k as u16,
        )
        .unwrap();
    }
    let out = tmp.path().join("ds");
    let s = ingest(&config(vec![input], &out), &NoReporter).unwrap();
    assert_eq!((s.ok, s.volumes, s.images), (5, 1, 0), "{s:?}");
    let cat = radfm_data::catalog::Catalog::open(&out).unwrap();
    let (frames, slice, shard): (i64, f64, String) = cat
        .conn
        .query_row("SELECT frames, spacing_slice, shard FROM images", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(frames, 5);
    assert!((slice - 2.5).abs() < 1e-9, "slice spacing {slice}");
    let mut ar = tar::Archive::new(std::fs::File::open(out.join("shards").join(shard)).unwrap());
    let npy = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy().ends_with(".npy"))
        .map(|mut e| {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut b).unwrap();
            radfm_core::npy::Npy::read(&b[..]).unwrap()
        })
        .unwrap();
    assert_eq!(npy.shape[0], 5);
    let v = npy.to_f64();
    let per = v.len() / 5;
    let means: Vec<f64> = (0..5)
        .map(|k| v[k * per..(k + 1) * per].iter().sum::<f64>() / per as f64)
        .collect();
    // window 500/1000 maps value 100 k linearly: increasing along z
    assert!(
        means.windows(2).all(|w| w[1] > w[0]),
        "slices out of order: {means:?}"
    );
}

#[test]
fn reports_load_from_csv_and_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("r.csv");
    std::fs::write(&csv, "accession_number,study_instance_uid,text\nA1,,\"No effusion, no pneumothorax.\"\n,1.2.3,Cardiomegaly.\nA3,,\n").unwrap();
    let idx = radfm_data::reports::load(&csv).unwrap();
    assert_eq!(
        idx.find(Some("A1"), None),
        Some("No effusion, no pneumothorax.")
    );
    assert_eq!(idx.find(Some("zzz"), Some("1.2.3")), Some("Cardiomegaly."));
    assert_eq!(
        idx.rejected.len(),
        1,
        "empty text is rejected with a reason"
    );
    let jl = tmp.path().join("r.jsonl");
    std::fs::write(
        &jl,
        "{\"accession_number\": \"B7\", \"text\": \"Clear lungs.\"}\nnot json\n",
    )
    .unwrap();
    let idx = radfm_data::reports::load(&jl).unwrap();
    assert_eq!(idx.find(Some("B7"), None), Some("Clear lungs."));
    assert_eq!(idx.rejected.len(), 1);
    // a second report for an accession is a rejected row, never an overwrite
    std::fs::write(
        &jl,
        "{\"accession_number\": \"B7\", \"text\": \"Clear lungs.\"}\n\
         {\"accession_number\": \"C1\", \"text\": \"Small effusion.\"}\n\
         {\"accession_number\": \"B7\", \"text\": \"Large effusion.\"}\n",
    )
    .unwrap();
    let idx = radfm_data::reports::load(&jl).unwrap();
    assert_eq!(idx.find(Some("B7"), None), Some("Clear lungs."));
    assert_eq!(idx.rejected.len(), 1, "{:?}", idx.rejected);
    let why = &idx.rejected[0];
    assert!(
        why.contains("report 3") && why.contains("report 1") && !why.contains("B7"),
        "{why}"
    );
}
