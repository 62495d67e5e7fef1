//! Weak labels: the report labeler's CheXpert labels of each study's stored
//! report, kept in the catalog ("reports as free supervision").
//!
//! - `labels` holds one row per mentioned observation of a study: its status
//!   (1 positive, 0 negative, -1 uncertain, as CheXpert's CSVs) and the span
//!   of the mention that set it, as byte offsets into the stored report text.
//!   An observation a report does not mention has no row.
//! - `reports.labeled_by` names the labeler (its version and a digest of its
//!   rules) that labelled the report; `NULL` means not labelled yet.
//! - The catalog's meta records the labeler and the hedge policy
//!   (`labeler`, `label_hedges`).
//!
//! Labels are made from the stored text (scrubbed at ingest), so that
//! `radfm reports label` on an older dataset gives what ingest gives now.

use std::collections::HashMap;

use radfm_core::observation::Observation;
use radfm_report::labeler::{Finding, LabelOptions, Labeler, Status};
use rusqlite::{params, Transaction};

use crate::catalog::Catalog;
use crate::DataError;

/// One weak label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakLabel {
    pub observation: Observation,
    /// 1, 0 or -1
    pub status: i8,
    /// the deciding mention's byte span in the report text
    pub evidence: Option<(usize, usize)>,
}

/// The labeling policy in force: the built-in rules with the default options.
pub fn options() -> LabelOptions {
    LabelOptions::default()
}

/// The sections labelled, as `radfm reports label` does by default: the
/// findings and the impression (an indication's "rule out pneumonia" is a
/// question, not a finding). A report without headings is all findings.
pub const SECTIONS: [&str; 2] = ["findings", "impression"];

/// The weak labels of one report text.
pub fn label_text(text: &str) -> Vec<WeakLabel> {
    // the labelled text: the chosen sections joined by blank lines, with
    // where each piece starts in the report, to map evidence back
    let mut joined = String::new();
    let mut pieces: Vec<(usize, usize, usize)> = Vec::new(); // (joined start, text start, len)
    for sec in radfm_report::sections::split(text)
        .iter()
        .filter(|s| SECTIONS.contains(&s.name) && !s.text.is_empty())
    {
        if !joined.is_empty() {
            joined.push_str("\n\n");
        }
        let at = text
            .get(sec.start..sec.end)
            .and_then(|t| t.find(sec.text.as_str()))
            .map(|o| sec.start + o);
        if let Some(at) = at {
            pieces.push((joined.len(), at, sec.text.len()));
        }
        joined.push_str(&sec.text);
    }
    let to_text = |start: usize, end: usize| {
        pieces
            .iter()
            .find(|&&(j, _, n)| start >= j && end <= j + n)
            .map(|&(j, t, _)| (start - j + t, end - j + t))
    };
    let labels = Labeler::builtin().label_with(&joined, options());
    labels
        .iter()
        .map(|(o, s)| {
            let evidence = labels
                .evidence
                .iter()
                .find(|e| e.observation == Finding::Chexpert(o) && e.status == s)
                .and_then(|e| to_text(e.start, e.end));
            WeakLabel {
                observation: o,
                status: match s {
                    Status::Positive => 1,
                    Status::Negative => 0,
                    Status::Uncertain => -1,
                },
                evidence,
            }
        })
        .collect()
}

/// The labeler's name as stored beside its labels.
pub fn labeler_version() -> String {
    Labeler::builtin().version()
}

/// Replace a study's labels with those of `text`, and mark its report
/// labelled; inside the caller's transaction.
pub(crate) fn store(tx: &Transaction, study: &str, text: &str, by: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM labels WHERE study_uid = ?1", params![study])?;
    for l in label_text(text) {
        tx.execute(
            "INSERT INTO labels(study_uid, observation, status, evidence_start, evidence_end)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                study,
                l.observation.as_str(),
                l.status,
                l.evidence.map(|e| e.0 as i64),
                l.evidence.map(|e| e.1 as i64)
            ],
        )?;
    }
    tx.execute(
        "UPDATE reports SET labeled_by = ?2 WHERE study_uid = ?1",
        params![study, by],
    )?;
    Ok(())
}

/// Record the policy in the catalog's meta.
pub(crate) fn record_policy(catalog: &Catalog) -> rusqlite::Result<()> {
    catalog.set_meta("labeler", &labeler_version())?;
    catalog.set_meta("label_hedges", options().hedges.as_str())?;
    catalog.set_meta("label_sections", &SECTIONS.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_findings_and_impression_with_spans_into_the_text() {
        let text = "INDICATION: rule out pneumonia.\nFINDINGS: There is a small right pleural \
                    effusion. No pneumothorax.\nIMPRESSION: Cardiomegaly.";
        let labels = label_text(text);
        let get = |o: Observation| labels.iter().find(|l| l.observation == o);
        assert!(
            get(Observation::Pneumonia).is_none(),
            "the indication is not labelled"
        );
        let eff = get(Observation::PleuralEffusion).expect("effusion");
        assert_eq!(eff.status, 1);
        let (a, b) = eff.evidence.unwrap();
        assert!(
            text[a..b].to_lowercase().contains("effusion"),
            "{:?}",
            &text[a..b]
        );
        assert_eq!(get(Observation::Pneumothorax).unwrap().status, 0);
        let (a, b) = get(Observation::Cardiomegaly).unwrap().evidence.unwrap();
        assert_eq!(&text[a..b], "Cardiomegaly");
    }
}

/// What [`label_dataset`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabelSummary {
    /// reports labelled now
    pub labeled: usize,
    /// reports already labelled by this labeler
    pub current: usize,
    /// of those labelled now, how many had labels from another labeler
    pub relabeled: usize,
}

/// Label every stored report that this labeler has not labelled: those
/// ingested before weak labels existed, or labelled by other rules. With
/// `all`, every report. Commits in batches, so a killed run keeps what it did
/// and the next run goes on from there.
pub fn label_dataset(
    catalog: &Catalog,
    all: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<LabelSummary, DataError> {
    let by = labeler_version();
    let db = |e: rusqlite::Error| DataError::Catalog {
        path: catalog
            .conn
            .path()
            .map_or_else(|| crate::catalog::FILE_NAME.into(), Into::into),
        reason: e.to_string(),
    };
    let todo: Vec<(String, String, Option<String>)> = {
        let mut st = catalog
            .conn
            .prepare("SELECT study_uid, text, labeled_by FROM reports ORDER BY study_uid")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)?
    };
    let mut summary = LabelSummary::default();
    let pending: Vec<&(String, String, Option<String>)> = todo
        .iter()
        .filter(|(_, _, b)| all || b.as_deref() != Some(by.as_str()))
        .collect();
    summary.current = todo.len() - pending.len();
    record_policy(catalog).map_err(db)?;
    for chunk in pending.chunks(500) {
        let tx = catalog.conn.unchecked_transaction().map_err(db)?;
        for (study, text, before) in chunk {
            store(&tx, study, text, &by).map_err(db)?;
            summary.labeled += 1;
            summary.relabeled += usize::from(before.is_some());
        }
        tx.commit().map_err(db)?;
        progress(summary.labeled, pending.len());
    }
    Ok(summary)
}

/// Every labelled study's weak labels: study UID to (observation, status).
/// Studies whose report is not labelled are absent; a labelled report that
/// mentions nothing maps to an empty list.
pub fn study_labels(
    catalog: &Catalog,
) -> rusqlite::Result<HashMap<String, Vec<(Observation, i8)>>> {
    let mut out: HashMap<String, Vec<(Observation, i8)>> = HashMap::new();
    let mut st = catalog
        .conn
        .prepare("SELECT study_uid FROM reports WHERE labeled_by IS NOT NULL")?;
    for s in st.query_map([], |r| r.get::<_, String>(0))? {
        out.entry(s?).or_default();
    }
    let mut st = catalog
        .conn
        .prepare("SELECT study_uid, observation, status FROM labels ORDER BY study_uid")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (study, name, status) = row?;
        if let Ok(o) = name.parse::<Observation>() {
            out.entry(study).or_default().push((o, status as i8));
        }
    }
    Ok(out)
}
