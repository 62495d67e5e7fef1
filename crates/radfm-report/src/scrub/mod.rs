//! PHI scrubbing of free-text reports, built for recall without cue words.
//!
//! Three sources of evidence, merged ([`find`]):
//! - the study's own identities from its DICOM header ([`Known`]): every
//!   occurrence of a name part or an identifier, whatever its context;
//! - shapes ([`patterns`]): dates, times, phone numbers, identifiers (labelled
//!   or long digit runs), e-mail and web addresses, street addresses, city with
//!   state, ZIP codes, ages over 89, names after a cue or before a credential;
//! - words ([`names`]): capitalised words judged with the shipped word lists
//!   (1990 US Census names, names that are mostly ordinary words, an English
//!   vocabulary, US places) and their neighbours, for bare names ("Bob Lee
//!   called"), places and institutions.
//!
//! Clinical text is protected by an allow-list kept as data
//! (`data/clinical_terms.txt`: eponyms, signs, devices, named structures): the
//! word rules never take it. Measurements, vertebral levels and ordinary ages
//! have no PHI shape.
//!
//! Found spans become typed placeholders (`[NAME]`, `[DATE]`, ...) or, with
//! [`Replacement::Surrogates`], realistic surrogates that are consistent within
//! a patient ([`surrogate`]).

mod lexicon;
mod names;
mod patterns;
pub mod surrogate;

pub use surrogate::{Patient, Surrogates};

/// What a span was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PhiKind {
    Name,
    Date,
    Time,
    Phone,
    Id,
    Email,
    Url,
    Address,
    Age,
    Institution,
}

impl PhiKind {
    pub const ALL: [PhiKind; 10] = [
        PhiKind::Name,
        PhiKind::Date,
        PhiKind::Time,
        PhiKind::Phone,
        PhiKind::Id,
        PhiKind::Email,
        PhiKind::Url,
        PhiKind::Address,
        PhiKind::Age,
        PhiKind::Institution,
    ];

    /// The type's name: NAME, DATE, ...
    pub fn as_str(self) -> &'static str {
        match self {
            PhiKind::Name => "NAME",
            PhiKind::Date => "DATE",
            PhiKind::Time => "TIME",
            PhiKind::Phone => "PHONE",
            PhiKind::Id => "ID",
            PhiKind::Email => "EMAIL",
            PhiKind::Url => "URL",
            PhiKind::Address => "ADDRESS",
            PhiKind::Age => "AGE",
            PhiKind::Institution => "INSTITUTION",
        }
    }

    pub fn placeholder(self) -> &'static str {
        match self {
            PhiKind::Name => "[NAME]",
            PhiKind::Date => "[DATE]",
            PhiKind::Time => "[TIME]",
            PhiKind::Phone => "[PHONE]",
            PhiKind::Id => "[ID]",
            PhiKind::Email => "[EMAIL]",
            PhiKind::Url => "[URL]",
            PhiKind::Address => "[ADDRESS]",
            PhiKind::Age => "[AGE]",
            PhiKind::Institution => "[INSTITUTION]",
        }
    }
}

/// A found span of PHI: byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: PhiKind,
}

/// Known identifying strings of the report's patient and study.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// DICOM person names (FAMILY^GIVEN^MIDDLE) or plain names
    pub names: Vec<String>,
    /// identifiers: patient ID, accession number, ...
    pub ids: Vec<String>,
}

/// How found spans are replaced.
#[derive(Debug, Clone, Copy)]
pub enum Replacement<'a> {
    /// typed placeholders: `[NAME]`, `[DATE]`, ...
    Placeholders,
    /// realistic surrogates, consistent for one patient
    Surrogates(&'a Surrogates, Patient<'a>),
}

/// The PHI spans of `text`, sorted and merged (overlapping spans become one,
/// typed as the one that starts first, the longer on a tie).
pub fn find(text: &str, known: &Known) -> Vec<Span> {
    let mut spans = Vec::new();
    known_spans(text, known, &mut spans);
    patterns::find(text, &mut spans);
    names::find(text, &mut spans);
    merge(spans)
}

fn known_spans(text: &str, known: &Known, out: &mut Vec<Span>) {
    for v in known.ids.iter().map(|s| s.trim()).filter(|s| s.len() >= 3) {
        for (i, _) in text.match_indices(v) {
            out.push(Span {
                start: i,
                end: i + v.len(),
                kind: PhiKind::Id,
            });
        }
    }
    // every whole word equal to a part (two letters or more) of a known name
    let parts: Vec<String> = known
        .names
        .iter()
        .flat_map(|n| n.split(['^', ' ', ',', '=']))
        .map(|p| p.trim().to_lowercase())
        .filter(|p| p.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .collect();
    if parts.is_empty() {
        return;
    }
    let mut i = 0;
    for w in text.split_inclusive(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-')) {
        let word = w.trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'));
        if !word.is_empty() {
            let lw = word.to_lowercase();
            let bare = lw.strip_suffix("'s").unwrap_or(&lw);
            if parts.iter().any(|p| p == bare || p == &lw) {
                out.push(Span {
                    start: i,
                    end: i + word.len(),
                    kind: PhiKind::Name,
                });
            }
        }
        i += w.len();
    }
}

fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if let Some(last) = merged.last_mut() {
            if s.start < last.end {
                last.end = last.end.max(s.end);
                continue;
            }
        }
        merged.push(s);
    }
    merged
}

/// Replace `spans` (from [`find`]) in `text`.
pub fn replace(text: &str, spans: &[Span], how: Replacement<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for s in spans {
        out.push_str(&text[pos..s.start]);
        match how {
            Replacement::Placeholders => out.push_str(s.kind.placeholder()),
            Replacement::Surrogates(sur, patient) => {
                out.push_str(&sur.surrogate(patient, s.kind, &text[s.start..s.end]))
            }
        }
        pos = s.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Scrub `text` with placeholders, returning the scrubbed text and the kinds replaced.
pub fn scrub(text: &str, known: &Known) -> (String, Vec<PhiKind>) {
    let spans = find(text, known);
    (
        replace(text, &spans, Replacement::Placeholders),
        spans.iter().map(|s| s.kind).collect(),
    )
}

#[cfg(test)]
mod tests;
