//! Reading reports from the input formats `radfm reports` accepts:
//!
//! - a directory, `.tgz`/`.tar.gz`/`.tar` of Open-i/IU XML reports
//!   (`<AbstractText Label="FINDINGS">`); the id is the file stem;
//! - a directory (or archive) of `.txt` files; the id is the file stem;
//! - a single `.xml` or `.txt` file;
//! - JSONL with `id` (or `accession_number`) and `text` per line, and the
//!   study keys `accession_number` and `study_instance_uid` when present;
//! - CSV with `id` (or `accession_number`) and `text` columns, likewise.
//!
//! Reports stream to a callback one at a time; a bad item (unreadable file,
//! missing field, bad XML) is passed as an [`ItemError`] naming it, and the
//! rest of the input continues. Items come in a stable order (sorted file
//! names for directories, archive order for archives, line order otherwise).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::sections::{self, Section};

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: String,
    /// the full text (for XML: `LABEL: text` paragraphs)
    pub text: String,
    /// sections, with byte offsets into `text`
    pub sections: Vec<Section>,
    /// IU/Open-i expert MeSH `<major>` terms (empty for other formats)
    pub mesh_major: Vec<String>,
    /// the study keys a JSONL line or CSV row carries (`accession_number`,
    /// `study_instance_uid`), which ingest matches to images
    pub accession_number: Option<String>,
    pub study_instance_uid: Option<String>,
}

impl Report {
    /// A report from free text; sections are found by [`sections::split`].
    pub fn from_text(id: impl Into<String>, text: impl Into<String>) -> Report {
        let text = text.into();
        let sections = sections::split(&text);
        Report {
            id: id.into(),
            text,
            sections,
            mesh_major: Vec::new(),
            accession_number: None,
            study_instance_uid: None,
        }
    }

    /// The same report with its study keys (blank keys are none).
    pub fn with_keys(mut self, accession: Option<&str>, study_uid: Option<&str>) -> Report {
        let key = |k: Option<&str>| {
            k.map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        };
        self.accession_number = key(accession);
        self.study_instance_uid = key(study_uid);
        self
    }

    /// The text of the named sections (see [`sections::select`]).
    pub fn select(&self, names: &[&str]) -> String {
        sections::select(&self.sections, names)
    }
}

/// A report that could not be read; the batch continues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {reason}")]
pub struct ItemError {
    pub item: String,
    pub reason: String,
}

/// The input as a whole could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InputError + '_ {
    move |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn lower_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Read every report under `path`, calling `f` for each one (or its error).
pub fn read_reports(
    path: &Path,
    mut f: impl FnMut(Result<Report, ItemError>),
) -> Result<(), InputError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files).map_err(io(path))?;
        files.sort();
        let items = files.into_iter().map(|p| {
            let (item, name) = (p.display().to_string(), lower_name(&p));
            (item, name, move || std::fs::read(&p))
        });
        return feed(path, "directory", items, &mut f);
    }
    let name = lower_name(path);
    let file = File::open(path).map_err(io(path))?;
    if name.ends_with(".tgz") || name.ends_with(".tar.gz") || name.ends_with(".tar") {
        let reader: Box<dyn Read> = if name.ends_with(".tar") {
            Box::new(BufReader::new(file))
        } else {
            Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
        };
        let mut ar = tar::Archive::new(reader);
        let entries = ar.entries().map_err(io(path))?;
        let mut bad_archive = None;
        let items = entries
            .map_while(|e| match e {
                Ok(e) => Some(e),
                Err(err) => {
                    bad_archive = Some(err);
                    None
                }
            })
            .filter(|e| e.header().entry_type().is_file())
            .map(|mut e| {
                let inner = e.path().map(|p| p.to_path_buf()).unwrap_or_default();
                let item = format!("{}:{}", path.display(), inner.display());
                let mut buf = Vec::new();
                let read = e.read_to_end(&mut buf).map(|_| buf);
                (item, lower_name(&inner), move || read)
            });
        let fed = feed(path, "archive", items, &mut f);
        if let Some(err) = bad_archive {
            return Err(InputError::Io {
                path: path.to_path_buf(),
                source: err,
            });
        }
        fed
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
        read_jsonl(path, BufReader::new(file), f)
    } else if name.ends_with(".csv") {
        read_csv(path, file, f)
    } else if name.ends_with(".xml") || name.ends_with(".txt") {
        let mut bytes = Vec::new();
        BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(io(path))?;
        f(parse_file(&path.display().to_string(), &name, &bytes));
        Ok(())
    } else {
        Err(InputError::Format {
            path: path.to_path_buf(),
            reason: "unsupported input: expected a directory, .tgz/.tar.gz/.tar, .jsonl, .csv, .xml or .txt".into(),
        })
    }
}

/// Parse every `.xml`/`.txt` item of a directory or archive, passing each
/// result (or its read error) to `f`; an input with no such item is an error.
fn feed<R: FnOnce() -> std::io::Result<Vec<u8>>>(
    path: &Path,
    what: &str,
    items: impl Iterator<Item = (String, String, R)>,
    f: &mut impl FnMut(Result<Report, ItemError>),
) -> Result<(), InputError> {
    let mut n = 0;
    for (item, name, read) in items {
        if !(name.ends_with(".xml") || name.ends_with(".txt")) || name.starts_with("._") {
            continue;
        }
        n += 1;
        f(match read() {
            Ok(bytes) => parse_file(&item, &name, &bytes),
            Err(e) => Err(ItemError {
                item,
                reason: e.to_string(),
            }),
        });
    }
    if n == 0 {
        return Err(InputError::Format {
            path: path.to_path_buf(),
            reason: format!("no .xml or .txt reports in this {what}"),
        });
    }
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn stem(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rsplit_once('.').map_or(base, |(s, _)| s).to_string()
}

fn parse_file(item: &str, lname: &str, bytes: &[u8]) -> Result<Report, ItemError> {
    let err = |reason: String| ItemError {
        item: item.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| err(format!("not UTF-8 text ({e})")))?;
    // the id keeps the file's own case
    let id = stem(item.rsplit(['/', ':']).next().unwrap_or(item));
    if lname.ends_with(".xml") {
        parse_iu_xml(id, text).map_err(err)
    } else {
        Ok(Report::from_text(id, text.trim_start_matches('\u{feff}')))
    }
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(j) = rest.find(';').filter(|&j| j <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..j];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[j + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Contents of every `<tag ...>...</tag>` (or empty `<tag .../>`), with the opening tag's attributes.
fn elements<'a>(xml: &'a str, tag: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // must be the whole tag name
        if !after.starts_with([' ', '>', '/', '\t', '\n', '\r']) {
            rest = after;
            continue;
        }
        let gt = after
            .find('>')
            .ok_or_else(|| format!("unterminated <{tag}> tag"))?;
        let attrs = &after[..gt];
        if let Some(a) = attrs.strip_suffix('/') {
            out.push((a, ""));
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let end = body
            .find(&close)
            .ok_or_else(|| format!("<{tag}> without {close}"))?;
        out.push((attrs, &body[..end]));
        rest = &body[end + close.len()..];
    }
    Ok(out)
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let i = attrs.find(&key)? + key.len();
    let j = attrs[i..].find('"')?;
    Some(&attrs[i..i + j])
}

/// Parse an Open-i/IU report XML.
pub fn parse_iu_xml(id: String, xml: &str) -> Result<Report, String> {
    let parts = elements(xml, "AbstractText")?;
    if parts.is_empty() {
        return Err("no <AbstractText> sections: not an Open-i/IU report".into());
    }
    let mut text = String::new();
    let mut secs = Vec::new();
    for (attrs, body) in parts {
        let label = attr(attrs, "Label")
            .unwrap_or("FINDINGS")
            .trim()
            .to_string();
        let body = unescape(body.trim());
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&label);
        text.push_str(": ");
        let start = text.len();
        text.push_str(&body);
        let end = text.len();
        let name = sections::split(&format!("{label}:"))
            .first()
            .map_or("indication", |s| s.name);
        secs.push(Section {
            name,
            heading: label,
            start,
            end,
            text: body,
        });
    }
    let mesh_major = elements(xml, "major")?
        .into_iter()
        .map(|(_, b)| unescape(b.trim()))
        .collect();
    Ok(Report {
        id,
        text,
        sections: secs,
        mesh_major,
        accession_number: None,
        study_instance_uid: None,
    })
}

/// A string or number field as text.
fn json_str(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_id(v: &serde_json::Value) -> Option<String> {
    ["id", "accession_number", "study_instance_uid"]
        .iter()
        .find(|k| v.get(**k).is_some())
        .and_then(|k| json_str(v, k))
}

/// Read JSONL reports (`{"id", "text"}` per line) from `r`; `path` names
/// them in errors.
pub fn read_jsonl(
    path: &Path,
    r: impl BufRead,
    mut f: impl FnMut(Result<Report, ItemError>),
) -> Result<(), InputError> {
    for (n, line) in r.lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = format!("{}:{}", path.display(), n + 1);
        let err = |reason: &str| ItemError {
            item: item.clone(),
            reason: reason.to_string(),
        };
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                f(Err(err(&format!("not JSON ({e})"))));
                continue;
            }
        };
        let id = json_id(&v);
        let text = v.get("text").and_then(|t| t.as_str());
        f(match (id, text) {
            (Some(id), Some(text)) => Ok(Report::from_text(id, text).with_keys(
                json_str(&v, "accession_number").as_deref(),
                json_str(&v, "study_instance_uid").as_deref(),
            )),
            (None, _) => Err(err("no \"id\" (string or number)")),
            (_, None) => Err(err("no \"text\" string")),
        });
    }
    Ok(())
}

/// Read CSV reports (a header with an id column and a text column) from
/// `r`; `path` names them in errors.
pub fn read_csv(
    path: &Path,
    r: impl Read,
    mut f: impl FnMut(Result<Report, ItemError>),
) -> Result<(), InputError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::new(r));
    let fmt = |reason: String| InputError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let headers = rdr.headers().map_err(|e| fmt(e.to_string()))?.clone();
    let col = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let id_col = col(&["id", "accession_number", "report_id", "study_instance_uid"])
        .ok_or_else(|| fmt("no \"id\" column".into()))?;
    let text_col = col(&["text", "report"]).ok_or_else(|| fmt("no \"text\" column".into()))?;
    let (acc_col, uid_col) = (col(&["accession_number"]), col(&["study_instance_uid"]));
    for (n, rec) in rdr.records().enumerate() {
        let item = format!("{}:{}", path.display(), n + 2);
        f(match rec {
            Ok(r) => {
                let field =
                    |c: Option<usize>| c.and_then(|c| r.get(c)).filter(|v| !v.trim().is_empty());
                // the id column, else whichever study key the row has
                let id = field(Some(id_col)).or(field(acc_col)).or(field(uid_col));
                match (id, r.get(text_col)) {
                    (Some(id), Some(text)) => Ok(Report::from_text(id.trim(), text)
                        .with_keys(field(acc_col), field(uid_col))),
                    _ => Err(ItemError {
                        item,
                        reason: "missing id or text".into(),
                    }),
                }
            }
            Err(e) => Err(ItemError {
                item,
                reason: e.to_string(),
            }),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iu_xml_sections_and_mesh() {
        let xml = r#"<eCitation><Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">XXXX-year-old &amp; cough</AbstractText>
            <AbstractText Label="FINDINGS">Heart size normal. No effusion.</AbstractText>
            <AbstractText Label="IMPRESSION"/>
            </Abstract><MeSH><major>Pleural Effusion/left</major><major>normal</major></MeSH></eCitation>"#;
        let r = parse_iu_xml("42".into(), xml).unwrap();
        let names: Vec<_> = r.sections.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["comparison", "indication", "findings", "impression"]
        );
        assert_eq!(r.sections[1].text, "XXXX-year-old & cough");
        for s in &r.sections {
            assert_eq!(&r.text[s.start..s.end], s.text);
        }
        assert_eq!(
            r.select(&["findings", "impression"]),
            "Heart size normal. No effusion."
        );
        assert_eq!(r.mesh_major, ["Pleural Effusion/left", "normal"]);
        assert!(parse_iu_xml("x".into(), "<html>hello</html>").is_err());
        assert!(parse_iu_xml("x".into(), "<AbstractText Label=\"FINDINGS\">open").is_err());
    }

    #[test]
    fn unescape_table() {
        for (a, b) in [
            ("a &lt; b", "a < b"),
            ("&#65;&#x42;", "AB"),
            ("R&D", "R&D"),
            ("&bogus; x", "&bogus; x"),
        ] {
            assert_eq!(unescape(a), b);
        }
    }

    #[test]
    fn jsonl_and_csv_with_bad_items() {
        let dir = std::env::temp_dir().join(format!("radfm-report-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = dir.join("r.jsonl");
        std::fs::write(&j, "{\"id\": 7, \"text\": \"No effusion.\"}\nnot json\n{\"id\": \"b\"}\n\n{\"accession_number\": \"A1\", \"text\": \"x\"}\n").unwrap();
        let mut got = Vec::new();
        read_reports(&j, |r| got.push(r.map(|r| r.id).map_err(|e| e.to_string()))).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok("7".to_string()));
        assert!(got[1].as_ref().unwrap_err().contains("r.jsonl:2: not JSON"));
        assert!(got[2].as_ref().unwrap_err().contains("no \"text\""));
        assert_eq!(got[3], Ok("A1".to_string()));

        let c = dir.join("r.csv");
        std::fs::write(&c, "ID,Text\n1,\"FINDINGS: clear, no effusion\"\n,orphan\n").unwrap();
        let mut got = Vec::new();
        read_reports(&c, |r| got.push(r)).unwrap();
        assert_eq!(
            got[0].as_ref().unwrap().select(&["findings"]),
            "clear, no effusion"
        );
        assert!(got[1].is_err());

        let t = dir.join("txt");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("b.txt"), "IMPRESSION: normal").unwrap();
        std::fs::write(t.join("a.txt"), "Lungs clear.").unwrap();
        std::fs::write(t.join("skip.bin"), [0u8, 159, 146]).unwrap();
        let mut ids = Vec::new();
        read_reports(&t, |r| ids.push(r.unwrap().id)).unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert!(read_reports(&dir.join("r.parquet"), |_| {}).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
