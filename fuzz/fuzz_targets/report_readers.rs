//! Any bytes as a report file: the IU XML reader, the JSONL and CSV readers,
//! section splitting, the labeler and the PHI scrubber must return, never
//! panic. Run as `read_and_decode` is run (see its header), seeded with
//! `../crates/radfm-report/tests/fixtures`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use radfm_report::input::{parse_iu_xml, read_csv, read_jsonl};
use radfm_report::labeler::Labeler;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut reports = Vec::new();
    if let Ok(r) = parse_iu_xml("fuzz".into(), &text) {
        reports.push(r);
    }
    let path = Path::new("fuzz");
    let _ = read_jsonl(path, data, |r| reports.extend(r.ok()));
    let _ = read_csv(path, data, |r| reports.extend(r.ok()));
    reports.push(radfm_report::input::Report::from_text("fuzz", text.to_string()));
    for r in &reports {
        let body = r.select(&["findings", "impression"]);
        let _ = Labeler::builtin().label(&body);
        let _ = radfm_report::sections::split(&r.text);
        let _ = radfm_report::scrub::scrub(&r.text, &radfm_report::scrub::Known { names: vec!["Doe".into()], ids: vec!["12345".into()] });
    }
});
