//! Helpers shared by the test modules: running the binary and reading its
//! JSONL outputs.

use std::path::Path;
use std::process::Command;

/// The radfm binary under test.
pub fn radfm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_radfm"))
}

/// Run `c`, which must succeed; its standard error.
pub fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run `c`, which must fail; its standard error.
pub fn fails(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{c:?} should have failed");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every line of a JSONL file, parsed.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
