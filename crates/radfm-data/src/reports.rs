//! Report input for ingest: CSV or JSONL with `accession_number`,
//! `study_instance_uid` and `text`.

use std::collections::HashMap;
use std::path::Path;

use crate::DataError;

#[derive(Debug, Clone, Default)]
pub struct ReportIndex {
    pub by_accession: HashMap<String, usize>,
    pub by_study_uid: HashMap<String, usize>,
    pub texts: Vec<String>,
    /// Rows that could not be used, with the reason.
    pub rejected: Vec<(usize, String)>,
}

impl ReportIndex {
    pub fn find(&self, accession: Option<&str>, study_uid: Option<&str>) -> Option<&str> {
        accession
            .and_then(|a| self.by_accession.get(a.trim()))
            .or_else(|| study_uid.and_then(|s| self.by_study_uid.get(s.trim())))
            .map(|&i| self.texts[i].as_str())
    }

    fn add(&mut self, line: usize, acc: Option<String>, uid: Option<String>, text: Option<String>) {
        let acc = acc.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let uid = uid.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            self.rejected.push((line, "empty or missing text".into()));
            return;
        };
        if acc.is_none() && uid.is_none() {
            self.rejected.push((
                line,
                "neither accession_number nor study_instance_uid".into(),
            ));
            return;
        }
        let i = self.texts.len();
        self.texts.push(text);
        if let Some(a) = acc {
            self.by_accession.insert(a, i);
        }
        if let Some(u) = uid {
            self.by_study_uid.insert(u, i);
        }
    }
}

pub fn load(path: &Path) -> Result<ReportIndex, DataError> {
    let bad = |reason: String| DataError::Reports {
        path: path.to_path_buf(),
        reason,
    };
    let mut idx = ReportIndex::default();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
        let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (a, u, t) = (
            col("accession_number"),
            col("study_instance_uid"),
            col("text"),
        );
        if t.is_none() {
            return Err(bad("CSV has no 'text' column".into()));
        }
        for (i, rec) in rdr.records().enumerate() {
            match rec {
                Ok(r) => {
                    let get = |c: Option<usize>| c.and_then(|c| r.get(c)).map(|s| s.to_string());
                    idx.add(i + 2, get(a), get(u), get(t));
                }
                Err(e) => idx.rejected.push((i + 2, e.to_string())),
            }
        }
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => {
                    let get = |k: &str| match v.get(k) {
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    };
                    idx.add(
                        i + 1,
                        get("accession_number"),
                        get("study_instance_uid"),
                        get("text"),
                    );
                }
                Err(e) => idx.rejected.push((i + 1, format!("not JSON: {e}"))),
            }
        }
    }
    Ok(idx)
}
