//! End-to-end tests of `radfm reports label|sections|scrub|score|bench`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::jsonl as lines;

fn radfm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radfm"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn iu_xml(findings: &str, impression: &str, majors: &[&str]) -> String {
    let m: String = majors
        .iter()
        .map(|x| format!("<major>{x}</major>"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><eCitation><MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">XXXX-year-old male, cough.</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation><MeSH>{m}</MeSH></eCitation>"#
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn label_iu_xml_directory_and_tgz() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ecgen-radiology");
    std::fs::create_dir_all(&dir).unwrap();
    let a = iu_xml(
        "Heart size is normal. Small right pleural effusion. No pneumothorax.",
        "Right effusion.",
        &["Pleural Effusion/right/small"],
    );
    let b = iu_xml(
        "The lungs are clear. No effusion.",
        "No acute cardiopulmonary abnormality.",
        &["normal"],
    );
    std::fs::write(dir.join("1234.xml"), &a).unwrap();
    std::fs::write(dir.join("77.xml"), &b).unwrap();
    std::fs::write(
        dir.join("broken.xml"),
        "<eCitation><AbstractText Label=\"FINDINGS\">never closed",
    )
    .unwrap();
    let out = tmp.path().join("labels.jsonl");
    let o = radfm(&["reports", "label", p(&dir), "--out", p(&out)]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken.xml") && err.contains("without </AbstractText>"),
        "{err}"
    );
    let v = lines(&out);
    assert_eq!(v.len(), 2, "the broken file is skipped, the rest labelled");
    let first = v.iter().find(|x| x["id"] == "1234").unwrap();
    assert_eq!(first["labels"]["Pleural Effusion"], "positive");
    assert_eq!(first["labels"]["Pneumothorax"], "negative");
    assert_eq!(first["labels"]["Cardiomegaly"], "negative");
    assert!(first["labels"].get("No Finding").is_none());
    assert!(
        first["labels"].get("Edema").is_none(),
        "unmentioned observations are left out"
    );
    // evidence offsets point into the labelled text (FINDINGS + blank line + IMPRESSION)
    let text =
        "Heart size is normal. Small right pleural effusion. No pneumothorax.\n\nRight effusion.";
    for e in first["evidence"].as_array().unwrap() {
        let (s, t) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[s..t], e["text"].as_str().unwrap());
    }
    let second = v.iter().find(|x| x["id"] == "77").unwrap();
    assert_eq!(second["labels"]["No Finding"], "positive");

    // the same reports as a .tgz; only the impression
    let tgz = tmp.path().join("reports.tgz");
    {
        let f = std::fs::File::create(&tgz).unwrap();
        let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::default(),
        ));
        for (name, body) in [
            ("ecgen-radiology/1234.xml", &a),
            ("ecgen-radiology/77.xml", &b),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
    }
    let out2 = tmp.path().join("impression.jsonl");
    ok(&radfm(&[
        "reports",
        "label",
        p(&tgz),
        "--out",
        p(&out2),
        "--sections",
        "impression",
    ]));
    let v = lines(&out2);
    assert_eq!(v.len(), 2);
    let first = v.iter().find(|x| x["id"] == "1234").unwrap();
    assert!(
        first["labels"].get("Pneumothorax").is_none(),
        "findings were not labelled"
    );

    // the bench scores against MeSH gold with a mapping file
    let map = tmp.path().join("map.json");
    std::fs::write(&map, r#"{"_excluded_if_only": ["No Indexing"], "No Finding": ["normal"], "Pleural Effusion": ["Pleural Effusion"]}"#).unwrap();
    let o = radfm(&[
        "reports",
        "bench",
        p(&dir),
        "--gold",
        p(&map),
        "--repeat",
        "2",
    ]);
    ok(&o);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("reports/s") && s.contains("scored 2 reports"),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("Pleural Effusion") && l.contains("1.000")),
        "{s}"
    );
}

#[test]
fn hedge_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("r.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"id": "a", "text": "Right basilar opacity may represent atelectasis."}"#,
            "\n",
            r#"{"id": "b", "text": "Right basilar opacity, probably atelectasis."}"#,
            "\n",
        ),
    )
    .unwrap();
    let by_id = |out: &Path| -> Vec<serde_json::Value> {
        let mut v = lines(out);
        v.sort_by_key(|x| x["id"].as_str().unwrap().to_string());
        v
    };
    // default: a finding raised only as a possibility is weak evidence, not a label
    let out = tmp.path().join("probable.jsonl");
    ok(&radfm(&["reports", "label", p(&input), "--out", p(&out)]));
    let v = by_id(&out);
    assert!(v[0]["labels"].get("Atelectasis").is_none(), "{}", v[0]);
    assert_eq!(v[0]["labels"]["Lung Opacity"], "positive");
    assert!(v[0]["labels"].get("No Finding").is_none());
    let ev = v[0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["observation"] == "Atelectasis")
        .unwrap();
    assert_eq!(ev["status"], "uncertain");
    assert_eq!(ev["weak"], true);
    assert_eq!(v[1]["labels"]["Atelectasis"], "uncertain");
    assert!(v[1]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e.get("weak").is_none()));
    // --hedges all: every hedge is uncertain, as CheXpert labels
    let out = tmp.path().join("all.jsonl");
    ok(&radfm(&[
        "reports",
        "label",
        p(&input),
        "--out",
        p(&out),
        "--hedges",
        "all",
    ]));
    let v = by_id(&out);
    assert_eq!(v[0]["labels"]["Atelectasis"], "uncertain");
    assert_eq!(v[1]["labels"]["Atelectasis"], "uncertain");
    // a policy that does not exist is refused, naming the flag
    let o = radfm(&[
        "reports",
        "label",
        p(&input),
        "--out",
        p(&out),
        "--hedges",
        "some",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("'some'")
            && err.contains("--hedges")
            && err.contains("[possible values: probable, all]"),
        "{err}"
    );
}

#[test]
fn sections_scrub_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("r.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            "{\"id\": \"a\", \"text\": \"HISTORY: cough\\nFINDINGS: Mild cardiomegaly.\\nIMPRESSION: Cardiomegaly. Discussed with Dr. Quixote on 03/14/2019.\"}\n",
            "{\"id\": \"b\", \"text\": \"Lungs are clear.\"}\n",
            "{\"id\": \"c\"}\n",
        ),
    )
    .unwrap();
    let out = tmp.path().join("sections.jsonl");
    let o = radfm(&["reports", "sections", p(&jsonl), "--out", p(&out)]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("r.jsonl:3: no \"text\""));
    let v = lines(&out);
    assert_eq!(v[0]["sections"]["indication"], "cough");
    assert_eq!(v[0]["sections"]["findings"], "Mild cardiomegaly.");
    assert_eq!(
        v[1]["sections"]["findings"], "Lungs are clear.",
        "an unheaded report is all findings"
    );

    let out = tmp.path().join("scrubbed.jsonl");
    ok(&radfm(&["reports", "scrub", p(&jsonl), "--out", p(&out)]));
    let v = lines(&out);
    let t = v[0]["text"].as_str().unwrap();
    assert!(
        !t.contains("Quixote")
            && !t.contains("03/14/2019")
            && t.contains("[NAME]")
            && t.contains("[DATE]"),
        "{t}"
    );
    assert_eq!(v[0]["phi"], serde_json::json!(["NAME", "DATE"]));

    // usage errors name the problem; nothing is written
    let bad = tmp.path().join("never.jsonl");
    let o = radfm(&[
        "reports",
        "label",
        p(&jsonl),
        "--out",
        p(&bad),
        "--sections",
        "findings,bogus",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown section \"bogus\""));
    let o = radfm(&[
        "reports",
        "label",
        "/nonexistent/reports.jsonl",
        "--out",
        p(&bad),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = radfm(&[
        "reports",
        "label",
        p(&jsonl),
        "--out",
        "/nonexistent-dir/x.jsonl",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write"));
    assert!(!bad.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files removed");
}

#[test]
fn score_pairs_by_id_and_rejects_mismatches() {
    let tmp = tempfile::tempdir().unwrap();
    let pred = tmp.path().join("pred.jsonl");
    let refp = tmp.path().join("ref.jsonl");
    std::fs::write(&pred, "{\"id\":\"2\",\"text\":\"Mild cardiomegaly. No effusion.\"}\n{\"id\":\"1\",\"text\":\"The lungs are clear.\"}\n").unwrap();
    std::fs::write(&refp, "{\"id\":\"1\",\"text\":\"The lungs are clear.\"}\n{\"id\":\"2\",\"text\":\"Mild cardiomegaly. Small left effusion.\"}\n").unwrap();
    let out = tmp.path().join("metrics.json");
    let o = radfm(&[
        "reports",
        "score",
        "--pred",
        p(&pred),
        "--ref",
        p(&refp),
        "--out",
        p(&out),
    ]);
    ok(&o);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(m["n"], 2);
    let b1 = m["bleu1"].as_f64().unwrap();
    assert!(b1 > 0.5 && b1 < 1.0, "{m}");
    assert_eq!(m["chexpert_per_observation"]["Pleural Effusion"]["fn"], 1);
    assert_eq!(m["chexpert_per_observation"]["Cardiomegaly"]["tp"], 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("BLEU-1..4"));

    std::fs::write(&refp, "{\"id\":\"1\",\"text\":\"The lungs are clear.\"}\n").unwrap();
    let o = radfm(&["reports", "score", "--pred", p(&pred), "--ref", p(&refp)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("1 predictions have no reference, e.g. [\"2\"]"));
}
