//! End-to-end tests of the `radfm` binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

fn radfm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_radfm"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../radfm-dicom/tests/fixtures")
        .join(name)
}

#[test]
fn dicom_info_json_has_the_essentials() {
    let out = radfm()
        .args(["dicom", "info", "--json"])
        .arg(fixture("emri_small_RLE.dcm"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["modality"], "MR");
    assert_eq!(v["rows"], 64);
    assert_eq!(v["number_of_frames"], 10);
    assert_eq!(v["transfer_syntax_uid"], "1.2.840.10008.1.2.5");
    assert_eq!(v["transfer_syntax"], "RLE Lossless");
    let text = radfm()
        .args(["dicom", "info"])
        .arg(fixture("emri_small_RLE.dcm"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("photometric_interpretation  MONOCHROME2")
    );
}

#[test]
fn dicom_decode_writes_4d_npy_for_each_stage() {
    let tmp = tempfile::tempdir().unwrap();
    for (stage, descr) in [("raw", "<u2"), ("modality", "<f4"), ("display", "<f4")] {
        let out = tmp.path().join(format!("{stage}.npy"));
        let st = radfm()
            .args(["dicom", "decode"])
            .arg(fixture("jpeg12_extended.dcm"))
            .args(["--stage", stage, "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let n = radfm_core::npy::Npy::read(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(n.shape, vec![10, 64, 64, 1], "{stage}");
        assert_eq!(n.descr, descr, "{stage}");
    }
}

#[test]
fn unusable_arguments_fail_with_a_clear_message() {
    let out = radfm()
        .args(["dicom", "info", "/no/such/file.dcm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/file.dcm") && err.contains("No such file"),
        "{err}"
    );
    let t = tempfile::tempdir().unwrap();
    let never = t.path().join("never");
    let out = radfm()
        .args(["ingest", "/no/such/dir", "--out"])
        .arg(&never)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(
        !never.exists(),
        "nothing is created for a run that cannot start"
    );
    let out = radfm()
        .args([
            "split", "/tmp", "--train", "0.9", "--val", "0.3", "--test", "0.1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sum to"));
}

/// Shard files the catalog references: the catalog is the source of truth (a shard renamed
/// into place by a run killed before its commit is not part of the dataset).
fn committed_shards(ds: &Path) -> Vec<PathBuf> {
    let Ok(c) = rusqlite::Connection::open(ds.join("catalog.sqlite")) else {
        return Vec::new();
    };
    let Ok(mut st) = c.prepare("SELECT DISTINCT shard FROM images") else {
        return Vec::new();
    };
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|n| ds.join("shards").join(n))
        .collect()
}

/// sop_uid -> sha256 of the image's .npy, read from the committed shards; panics on a
/// duplicate SOP or a missing shard.
fn dataset_images(ds: &Path) -> BTreeMap<String, String> {
    let mut by_key: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for p in committed_shards(ds) {
        let mut ar = tar::Archive::new(std::fs::File::open(&p).unwrap());
        for m in ar.entries().unwrap() {
            let mut m = m.unwrap();
            let name = m.path().unwrap().to_string_lossy().to_string();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut m, &mut buf).unwrap();
            let (key, ext) = name.split_once('.').unwrap();
            let slot = by_key.entry(key.to_string()).or_default();
            if ext == "json" {
                let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
                slot.0 = Some(v["meta"]["sop_uid"].as_str().unwrap().to_string());
            } else {
                slot.1 = Some(
                    Sha256::digest(&buf)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for (key, (sop, hash)) in by_key {
        let sop = sop.unwrap_or_else(|| panic!("{key} has no json"));
        assert!(
            out.insert(sop.clone(), hash.unwrap()).is_none(),
            "duplicate SOP {sop}"
        );
    }
    out
}

fn catalog_count(ds: &Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open(ds.join("catalog.sqlite")) else {
        return 0;
    };
    c.query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Kill -9 at several moments, resume, and compare with a clean run.
#[test]
fn killed_ingest_resumes_to_the_same_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let n = 200;
    for i in 0..n {
        radfm_data::testdata::write_variant(
            &fixture("deflated.dcm"),
            &input.join(format!("f{i:03}.dcm")),
            i,
            true,
        )
        .unwrap();
    }
    std::fs::write(input.join("readme.txt"), "not an image").unwrap();
    let key = tmp.path().join("shared.key");
    let ingest = |out: &Path| {
        let mut c = radfm();
        c.arg("ingest")
            .arg(&input)
            .arg("--out")
            .arg(out)
            .arg("--key")
            .arg(&key)
            .args(["--shard-size", "1", "--jobs", "2", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let clean = tmp.path().join("clean");
    assert!(ingest(&clean).status().unwrap().success());
    let want = dataset_images(&clean);
    assert_eq!(want.len(), n);

    let resumed = tmp.path().join("resumed");
    let mut partial_seen = 0;
    let mut delay = Duration::from_millis(10);
    for _ in 0..80 {
        let before = catalog_count(&resumed);
        if before as usize == n {
            break;
        }
        let mut child = ingest(&resumed).spawn().unwrap();
        let t = Instant::now();
        while t.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let after = catalog_count(&resumed);
        if after > before && (after as usize) < n {
            partial_seen += 1;
            // after a kill, every committed image is readable from a complete shard
            let got = dataset_images(&resumed);
            if got.len() as i64 != after {
                let c = rusqlite::Connection::open(resumed.join("catalog.sqlite")).unwrap();
                let rows: Vec<(String, String, String)> = c
                    .prepare("SELECT key, sop_uid, shard FROM images ORDER BY key")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let files: Vec<_> = std::fs::read_dir(resumed.join("shards"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                for p in committed_shards(&resumed) {
                    let mut ar = tar::Archive::new(std::fs::File::open(&p).unwrap());
                    let names: Vec<String> = ar
                        .entries()
                        .unwrap()
                        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
                        .collect();
                    eprintln!("{}: {names:?}", p.display());
                }
                panic!(
                    "catalog {after} vs shards {}: rows {rows:?}\nfiles {files:?}",
                    got.len()
                );
            }
        }
        delay += Duration::from_millis(8);
    }
    assert!(
        partial_seen >= 2,
        "never caught ingest mid-run ({partial_seen})"
    );
    assert!(ingest(&resumed).status().unwrap().success());
    let got = dataset_images(&resumed);
    assert_eq!(got, want, "resumed dataset differs from a clean run");
    // after a completed run, the shards folder holds exactly the committed shards
    let mut on_disk: Vec<PathBuf> = std::fs::read_dir(resumed.join("shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut committed = committed_shards(&resumed);
    on_disk.sort();
    committed.sort();
    assert_eq!(
        on_disk, committed,
        "temporary or orphan shards left after a completed run"
    );
    let log = std::fs::read_to_string(resumed.join("ingest-log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), n + 1, "one log line per input file");
}
