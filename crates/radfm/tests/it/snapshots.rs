//! Snapshot tests (insta): `metrics.json` of a committed fixture, the card of
//! a small ingested dataset, and every subcommand's `--help`. Temporary paths
//! are filtered out. Review changes with `cargo insta review`, or accept them
//! with `INSTA_UPDATE=always cargo test -p radfm`.

use std::path::Path;
use std::process::Command;

fn radfm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_radfm"))
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// stdout of a successful run, with temporary directories filtered.
fn run_ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

macro_rules! filtered {
    ($($body:tt)*) => {
        insta::with_settings!({
            filters => vec![
                (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
                (r"[0-9]+\.[0-9] s\b", "[SECONDS] s"),
            ],
            omit_expression => true,
        }, { $($body)* })
    };
}

#[test]
fn metrics_json_of_the_fixture() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("report");
    let eval = fixtures().join("eval");
    let stdout = run_ok(
        radfm()
            .arg("evaluate")
            .arg("--pred")
            .arg(eval.join("pred.jsonl"))
            .arg("--truth")
            .arg(eval.join("truth.jsonl"))
            .arg("--out")
            .arg(&out)
            .args([
                "--groups",
                "site,sex,age_band",
                "--bootstrap",
                "200",
                "--seed",
                "5",
            ]),
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    filtered! {
        insta::assert_json_snapshot!("metrics_json", m);
        insta::assert_snapshot!("evaluate_stdout", stdout);
    }
}

#[test]
fn card_of_a_small_dataset() {
    let t = tempfile::tempdir().unwrap();
    let (input, ds) = (t.path().join("in"), t.path().join("ds"));
    std::fs::create_dir(&input).unwrap();
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-dicom/tests/fixtures/deflated.dcm");
    for i in 0..4 {
        radfm_data::testdata::write_variant(&template, &input.join(format!("{i}.dcm")), i, true)
            .unwrap();
    }
    std::fs::write(input.join("notes.txt"), "not an image\n").unwrap();
    // a fixed key, so that the pseudonyms (site labels) are the same every run
    let key = t.path().join("fixed.deid-key");
    std::fs::write(&key, "0123456789abcdef".repeat(4)).unwrap();
    run_ok(
        radfm()
            .arg("ingest")
            .arg(&input)
            .arg("--out")
            .arg(&ds)
            .arg("--key")
            .arg(&key)
            .args(["--size", "32", "--quiet"]),
    );
    let card = std::fs::read_to_string(ds.join("card.md")).unwrap();
    filtered! {
        insta::assert_snapshot!("card_md", card);
    }
}

/// Every subcommand, as the words that name it.
const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["dicom"],
    &["dicom", "info"],
    &["dicom", "decode"],
    &["ingest"],
    &["split"],
    &["synth"],
    &["evaluate"],
    &["reports"],
    &["reports", "label"],
    &["reports", "sections"],
    &["reports", "scrub"],
    &["reports", "score"],
    &["reports", "bench"],
    &["model"],
    &["model", "run"],
    &["text"],
    &["text", "embed"],
    &["pretrain"],
    &["embed"],
    &["probe"],
    &["finetune"],
    &["zeroshot"],
    &["demo"],
    &["retrieve"],
    &["retrieve", "index"],
    &["retrieve", "query"],
    &["retrieve", "eval"],
    &["bench"],
    &["bench", "vit"],
    &["bench", "finetune"],
    &["bench", "retrieval"],
    &["predict"],
    &["sr"],
    &["serve"],
    &["pacs"],
    &["pacs", "sync"],
    &["card"],
    &["verify"],
];

#[test]
fn every_subcommand_help() {
    for words in SUBCOMMANDS {
        let help = run_ok(radfm().args(*words).arg("--help"));
        let name = if words.is_empty() {
            "help_radfm".to_string()
        } else {
            format!("help_{}", words.join("_"))
        };
        filtered! {
            insta::assert_snapshot!(name, help);
        }
    }
    // the list above is complete: every command `radfm --help` lists is in it
    let top = run_ok(radfm().arg("--help"));
    let listed: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .collect();
    for c in &listed {
        assert!(
            SUBCOMMANDS.contains(&&[*c][..]),
            "no --help snapshot for {c}"
        );
    }
    assert!(listed.len() >= 10, "{listed:?}");
}
