//! PHI scrubbing of free-text reports: names, dates, phone numbers, IDs
//! (MRNs, accession numbers), e-mail addresses, street addresses and ages over
//! 89 are replaced with typed placeholders such as `[NAME]` and `[DATE]`.
//! Clinical content is left alone: the patterns need identifying context
//! (a title before a name, a label before an ID) or a distinctive shape.
//!
//! Callers that know the identities of a study (from its DICOM header) pass
//! them as `known`, and every occurrence is replaced regardless of context.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};

/// What a span was replaced as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PhiKind {
    Name,
    Date,
    Phone,
    Id,
    Email,
    Address,
    Age,
}

impl PhiKind {
    pub fn placeholder(self) -> &'static str {
        match self {
            PhiKind::Name => "[NAME]",
            PhiKind::Date => "[DATE]",
            PhiKind::Phone => "[PHONE]",
            PhiKind::Id => "[ID]",
            PhiKind::Email => "[EMAIL]",
            PhiKind::Address => "[ADDRESS]",
            PhiKind::Age => "[AGE]",
        }
    }
}

/// Known identifying strings of the report's patient and study.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub names: Vec<String>,
    pub ids: Vec<String>,
}

struct Pattern {
    kind: PhiKind,
    re: Regex,
    /// capture group holding the PHI (0 = whole match)
    group: usize,
}

fn patterns() -> &'static [Pattern] {
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        let mk = |kind, re: &str, group| Pattern {
            kind,
            re: RegexBuilder::new(re).case_insensitive(true).build().expect("valid PHI regex"),
            group,
        };
        // a capitalised name: one to three words, optionally with a middle initial
        let person = r"(?-i:[A-Z][a-zA-Z'-]+(?:[ \t]+(?:[A-Z]\.?[ \t]+)?[A-Z][a-zA-Z'-]+){0,2})";
        let month = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";
        vec![
            mk(PhiKind::Email, r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", 0),
            // labelled identifiers: MRN 12345, Accession #: A123, ID: ...
            mk(
                PhiKind::Id,
                r"\b(?:mrn|medical record(?: number| no\.?)?|accession(?: number| no\.?)?|acc\.?|patient id|pt id|id|ssn|record(?: number| no\.?)?)\s*(?:#|:|no\.?|number)?\s*[:#]?\s*([A-Z]*\d[\w-]{3,})",
                1,
            ),
            mk(PhiKind::Phone, r"(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b", 0),
            mk(PhiKind::Phone, r"\b(?:ext|extension|pager|phone|tel)\.?\s*:?\s*(\d{3,6})\b", 1),
            mk(PhiKind::Date, r"\b\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})\b", 0),
            mk(PhiKind::Date, r"\b(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b", 0),
            mk(
                PhiKind::Date,
                &format!(r"\b{month}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}}\b"),
                0,
            ),
            mk(PhiKind::Date, &format!(r"\b\d{{1,2}}\s+{month}\.?,?\s+(?:19|20)\d{{2}}\b"), 0),
            mk(
                PhiKind::Address,
                r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl)\b\.?",
                0,
            ),
            // titles and roles followed by a name: "Dr. Smith", "Dr. John A. Smith", "discussed with Smith"
            mk(PhiKind::Name, &format!(r"\b(?:dr|doctor|mr|mrs|ms|miss|prof)\.?\s+({person})"), 1),
            mk(
                PhiKind::Name,
                &format!(r"\b(?:discussed with|called to|communicated to|notified|paged|telephoned|reported to|signed by|dictated by|transcribed by|read by|reviewed by|attending|resident|technologist|radiologist|physician|referring(?: physician)?|ordering(?: physician)?|patient(?: name)?|pt|name)\s*:?\s+(?:dr\.?\s+)?({person})"),
                1,
            ),
            mk(PhiKind::Age, r"\b(9\d|1[0-4]\d)[\s-]*(?:years?|yrs?|y/?o|-year-old)\b", 0),
        ]
    })
}

/// Scrub `text`, returning the scrubbed text and the kinds replaced.
pub fn scrub(text: &str, known: &Known) -> (String, Vec<PhiKind>) {
    // Collect spans, then replace from the end so offsets stay valid.
    let mut spans: Vec<(usize, usize, PhiKind)> = Vec::new();
    for v in known.ids.iter().filter(|s| s.trim().len() >= 3) {
        for (i, _) in text.match_indices(v.trim()) {
            spans.push((i, i + v.trim().len(), PhiKind::Id));
        }
    }
    for n in &known.names {
        // DICOM PN: family^given^middle; match each component of 2+ letters, whole word
        for part in n
            .split(['^', ' ', ','])
            .map(str::trim)
            .filter(|p| p.chars().count() >= 2)
        {
            if let Ok(re) = RegexBuilder::new(&format!(r"\b{}\b", regex::escape(part)))
                .case_insensitive(true)
                .build()
            {
                for m in re.find_iter(text) {
                    spans.push((m.start(), m.end(), PhiKind::Name));
                }
            }
        }
    }
    for p in patterns() {
        for c in p.re.captures_iter(text) {
            if let Some(m) = c.get(p.group) {
                let s = m.as_str();
                let trimmed = s.trim_end();
                // a name group must not swallow a clinical word after the name
                spans.push((m.start(), m.start() + trimmed.len(), p.kind));
            }
        }
    }
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut merged: Vec<(usize, usize, PhiKind)> = Vec::new();
    for s in spans {
        if let Some(last) = merged.last_mut() {
            if s.0 < last.1 {
                last.1 = last.1.max(s.1);
                continue;
            }
        }
        merged.push(s);
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut kinds = Vec::new();
    for (a, b, k) in merged {
        out.push_str(&text[pos..a]);
        out.push_str(k.placeholder());
        kinds.push(k);
        pos = b;
    }
    out.push_str(&text[pos..]);
    (out, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, expected output) with no known identities.
    #[test]
    fn pattern_table() {
        let cases = [
            ("Compared with 03/14/2019.", "Compared with [DATE]."),
            ("Exam date 2019-03-14, stable.", "Exam date [DATE], stable."),
            ("Prior from March 3, 2018 shows", "Prior from [DATE] shows"),
            (
                "Call 555-123-4567 with results",
                "Call [PHONE] with results",
            ),
            ("MRN: 00123456. No effusion.", "MRN: [ID]. No effusion."),
            ("Accession # A998877 reviewed", "Accession # [ID] reviewed"),
            (
                "Discussed with Dr. Smith at 3pm.",
                "Discussed with Dr. [NAME] at 3pm.",
            ),
            (
                "Findings discussed with Jones by phone.",
                "Findings discussed with [NAME] by phone.",
            ),
            ("Sent to john.doe@example.org", "Sent to [EMAIL]"),
            ("Lives at 12 Elm Street now", "Lives at [ADDRESS] now"),
            ("A 93 year old woman.", "A [AGE] old woman."),
            ("A 45 year old woman.", "A 45 year old woman."),
            (
                "Dictated by: Marisol Abernathy, MD.",
                "Dictated by: [NAME], MD.",
            ),
            (
                "Patient: Beatrix O'Rourke\nMRN: 1234567",
                "Patient: [NAME]\nMRN: [ID]",
            ),
            (
                "Read by Dr. John Q. Public today",
                "Read by Dr. [NAME] today",
            ),
            (
                "Discussed with Dr. Smith at 3pm.",
                "Discussed with Dr. [NAME] at 3pm.",
            ),
            (
                "No pneumothorax. Heart size normal.",
                "No pneumothorax. Heart size normal.",
            ),
            ("XXXX XXXX pleural effusion", "XXXX XXXX pleural effusion"),
        ];
        for (inp, want) in cases {
            assert_eq!(scrub(inp, &Known::default()).0, want, "{inp}");
        }
    }

    #[test]
    fn known_identities_are_removed_everywhere() {
        let k = Known {
            names: vec!["QUIXOTE^ALONSO".into()],
            ids: vec!["ZX-4411".into()],
        };
        let (s, kinds) = scrub("Patient Alonso quixote, id ZX-4411; clear lungs.", &k);
        assert!(
            !s.to_lowercase().contains("quixote")
                && !s.contains("Alonso")
                && !s.contains("ZX-4411"),
            "{s}"
        );
        assert!(s.contains("clear lungs"));
        assert!(kinds.contains(&PhiKind::Name) && kinds.contains(&PhiKind::Id));
    }
}
