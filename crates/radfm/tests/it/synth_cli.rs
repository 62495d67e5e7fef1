//! `radfm synth` end to end: the archive ingests, every image that is not
//! quarantined lands in the dataset, images with text in the pixels are
//! quarantined whether the header says so or not (and kept with
//! --allow-burned-in), and no injected PHI string survives.

use std::path::Path;
use std::process::Command;

fn radfm(args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "radfm {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

#[test]
fn synth_then_ingest_leaves_no_phi() {
    let t = tempfile::tempdir().unwrap();
    let arch = t.path().join("archive");
    let ds = t.path().join("dataset");
    radfm(&[
        "synth",
        "--out",
        p(&arch),
        "--patients",
        "60",
        "--seed",
        "5",
        "--size",
        "256",
        "--burned-in",
        "0.3",
        "--quiet",
        "--contact-sheet",
    ]);
    assert!(arch.join("contact-sheet.png").exists());
    let truth: Vec<serde_json::Value> = std::fs::read_to_string(arch.join("truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let marked = truth.iter().filter(|t| t["burned_in"] == "marked").count();
    let o = radfm(&[
        "ingest",
        p(&arch.join("dicom")),
        "--reports",
        p(&arch.join("reports.jsonl")),
        "--out",
        p(&ds),
        "--quiet",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);

    let db = rusqlite::Connection::open(ds.join("catalog.sqlite")).unwrap();
    let images: usize = db
        .query_row("select count(*) from images", [], |r| r.get(0))
        .unwrap();
    // the log says why each image was quarantined; the map to paths is private
    let reason: std::collections::HashMap<String, String> =
        std::fs::read_to_string(t.path().join("dataset.sources.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                (
                    v["path"].as_str().unwrap().to_string(),
                    v["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
    let why = |t: &serde_json::Value| {
        reason[&p(&arch.join(t["file"].as_str().unwrap())).to_string()].clone()
    };
    let (mut by_header, mut by_pixels, mut unmarked) = (0, 0, 0);
    for t in &truth {
        let r = why(t);
        match t["burned_in"].as_str().unwrap() {
            "marked" => assert!(r.contains("BurnedInAnnotation is YES"), "{t}: {r}"),
            "unmarked" => {
                unmarked += 1;
                by_pixels += usize::from(r.contains("text found in the pixels"));
            }
            _ => assert!(
                !r.contains("quarantined"),
                "a clean image was quarantined: {r}"
            ),
        }
        by_header += usize::from(r.contains("BurnedInAnnotation"));
    }
    assert!(
        unmarked >= 3 && by_pixels * 10 >= unmarked * 9,
        "{by_pixels} of {unmarked} unmarked images found"
    );
    assert_eq!(by_header, marked);
    assert_eq!(
        images + marked + by_pixels,
        truth.len(),
        "every image not quarantined for burned-in text is ingested: {out}"
    );
    // --allow-burned-in keeps them all
    let kept = t.path().join("kept");
    radfm(&[
        "ingest",
        p(&arch.join("dicom")),
        "--out",
        p(&kept),
        "--quiet",
        "--allow-burned-in",
    ]);
    let n: usize = rusqlite::Connection::open(kept.join("catalog.sqlite"))
        .unwrap()
        .query_row("select count(*) from images", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, truth.len());

    // everything the dataset holds as text: catalog rows, shard JSON, log, card
    let mut text = String::new();
    let tables: Vec<String> = db
        .prepare("select name from sqlite_master where type='table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for tname in tables {
        let mut st = db.prepare(&format!("select * from \"{tname}\"")).unwrap();
        let ncol = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for c in 0..ncol {
                if let Ok(v) = r.get::<_, rusqlite::types::Value>(c) {
                    text.push_str(&format!("{v:?}\n"));
                }
            }
        }
    }
    let mut stack = vec![ds.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "tar") {
                let mut ar = tar::Archive::new(std::fs::File::open(&path).unwrap());
                for entry in ar.entries().unwrap() {
                    let mut entry = entry.unwrap();
                    if entry
                        .path()
                        .unwrap()
                        .extension()
                        .is_some_and(|x| x == "json")
                    {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut entry, &mut s).unwrap();
                        text.push_str(&s);
                    }
                }
            } else if path
                .extension()
                .is_some_and(|x| x == "json" || x == "jsonl" || x == "md")
            {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    assert!(
        text.contains("FINDINGS"),
        "scrubbed reports are in the catalog"
    );
    let phi: Vec<serde_json::Value> = std::fs::read_to_string(arch.join("phi.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut leaks = Vec::new();
    for r in phi.iter().filter(|r| r["location"] != "pixels") {
        let v = r["value"].as_str().unwrap();
        if text.contains(v) {
            leaks.push(format!("{v} ({})", r["location"]));
        }
    }
    leaks.sort();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "{} PHI strings survive: {:?}",
        leaks.len(),
        &leaks[..leaks.len().min(10)]
    );
}
