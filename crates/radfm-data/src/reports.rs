//! Report input for ingest: CSV or JSONL with `accession_number`,
//! `study_instance_uid` and `text`, read by radfm-report's readers and
//! indexed by study key.
//!
//! A row without text or without either key is rejected with its reason; so
//! is a second report for an accession number or study UID already seen
//! (the first one is kept: a duplicate never silently replaces it).

use std::collections::HashMap;
use std::path::Path;

use radfm_report::input::Report;

use crate::DataError;

#[derive(Debug, Clone, Default)]
pub struct ReportIndex {
    pub by_accession: HashMap<String, usize>,
    pub by_study_uid: HashMap<String, usize>,
    pub texts: Vec<String>,
    /// Rows that could not be used, with the reason (rows are named by
    /// their place in the file, never by a key: keys identify patients).
    pub rejected: Vec<String>,
    /// the report number (1-based, in file order) of each text
    numbers: Vec<usize>,
}

impl ReportIndex {
    pub fn find(&self, accession: Option<&str>, study_uid: Option<&str>) -> Option<&str> {
        accession
            .and_then(|a| self.by_accession.get(a.trim()))
            .or_else(|| study_uid.and_then(|s| self.by_study_uid.get(s.trim())))
            .map(|&i| self.texts[i].as_str())
    }

    /// Add the `n`th report of the file (1-based).
    fn add(&mut self, n: usize, r: Report) {
        if r.text.trim().is_empty() {
            self.rejected.push(format!("report {n}: empty text"));
            return;
        }
        let (acc, uid) = (r.accession_number, r.study_instance_uid);
        if acc.is_none() && uid.is_none() {
            self.rejected.push(format!(
                "report {n}: neither accession_number nor study_instance_uid"
            ));
            return;
        }
        let dup = |m: &HashMap<String, usize>, k: &Option<String>| {
            k.as_ref().and_then(|k| m.get(k)).copied()
        };
        if let Some(first) = dup(&self.by_accession, &acc).or_else(|| dup(&self.by_study_uid, &uid))
        {
            self.rejected.push(format!(
                "report {n}: the same accession_number or study_instance_uid as report {}; kept the first",
                self.numbers[first]
            ));
            return;
        }
        let i = self.texts.len();
        self.texts.push(r.text);
        self.numbers.push(n);
        if let Some(a) = acc {
            self.by_accession.insert(a, i);
        }
        if let Some(u) = uid {
            self.by_study_uid.insert(u, i);
        }
    }
}

pub fn load(path: &Path) -> Result<ReportIndex, DataError> {
    let mut idx = ReportIndex::default();
    let mut n = 0;
    radfm_report::input::read_reports(path, |r| {
        n += 1;
        match r {
            Ok(r) => idx.add(n, r),
            Err(e) => idx.rejected.push(format!("report {n} ({e})")),
        }
    })
    .map_err(|e| DataError::Reports {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(idx)
}
