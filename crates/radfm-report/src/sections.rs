//! Splitting a free-text report into sections.
//!
//! A heading is one of the known names below, in any case, that
//! - starts a line (after optional list numbering) or follows the end of a
//!   sentence, and
//! - is followed by `:` or ` -`, or ends its line, or is written in capitals
//!   at the start of a line ("FINDINGS The lungs are clear").
//!
//! "Findings are consistent with ..." in running text is not a heading.
//! Headings map to canonical names: `findings`, `impression` (also
//! CONCLUSION, OPINION, SUMMARY), `indication` (also HISTORY, CLINICAL
//! HISTORY, REASON FOR EXAM), `comparison` and `technique` (also EXAM,
//! EXAMINATION, PROCEDURE). Text before the first heading is `preamble`; a
//! report with no headings at all is one `findings` section.

use std::sync::OnceLock;

use regex::Regex;

/// Canonical section names, in the order reports usually have them.
pub const NAMES: [&str; 6] = [
    "preamble",
    "indication",
    "technique",
    "comparison",
    "findings",
    "impression",
];

/// One section of a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    /// canonical name (see [`NAMES`])
    pub name: &'static str,
    /// the heading as written ("" for preamble or an unheaded report)
    pub heading: String,
    /// byte range of the section text in the report
    pub start: usize,
    pub end: usize,
    pub text: String,
}

fn canonical(heading: &str) -> &'static str {
    let h = heading.to_ascii_lowercase();
    let h = h.split_whitespace().collect::<Vec<_>>().join(" ");
    match h.as_str() {
        "findings" | "finding" | "findings and impression" | "report" | "body" => "findings",
        "impression" | "impressions" | "conclusion" | "conclusions" | "opinion" | "summary"
        | "diagnosis" => "impression",
        "comparison" | "comparisons" | "prior" | "priors" => "comparison",
        "technique" | "exam" | "examination" | "procedure" | "views" => "technique",
        _ => "indication",
    }
}

fn heading_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"(?i)\b(findings and impression|findings|finding|impressions|impression|conclusions|conclusion|opinion|summary|clinical indications?|indications?|clinical history|history|reason for (?:exam|examination|study)|clinical information|comparisons?|technique|examination|exam|procedure)\b[ \t]*(:|-[ \t]|\r?\n|$)?",
        )
        .expect("valid heading regex")
    })
}

/// Split `text` into sections.
pub fn split(text: &str) -> Vec<Section> {
    let b = text.as_bytes();
    let mut heads: Vec<(usize, usize, &str)> = Vec::new(); // (heading start, body start, heading)
    for c in heading_re().captures_iter(text) {
        let m = c.get(1).expect("group 1");
        let (s, e) = (m.start(), m.end());
        // what precedes: only whitespace and list numbering since the line start or a sentence end
        let mut k = s;
        while k > 0 && matches!(b[k - 1], b' ' | b'\t' | b'0'..=b'9' | b')') {
            k -= 1;
        }
        if k > 0 && b[k - 1] == b'.' && k >= 2 && b[k - 2].is_ascii_digit() {
            // "1. Findings": skip the list number
            k -= 1;
            while k > 0 && b[k - 1].is_ascii_digit() {
                k -= 1;
            }
            while k > 0 && matches!(b[k - 1], b' ' | b'\t') {
                k -= 1;
            }
        }
        let line_start = k == 0 || b[k - 1] == b'\n';
        let after_sentence = k > 0 && matches!(b[k - 1], b'.' | b'!' | b'?') && k < s;
        if !(line_start || after_sentence) {
            continue;
        }
        let word = m.as_str();
        let delim = c.get(2);
        let capital_lead = line_start && word.bytes().all(|ch| !ch.is_ascii_lowercase());
        let body_start = match delim {
            Some(d) => d.end(),
            None if capital_lead => e,
            None => continue,
        };
        heads.push((k, body_start, word));
    }
    let mut out = Vec::new();
    let mut push = |name: &'static str, heading: &str, start: usize, end: usize| {
        let raw = &text[start..end];
        let lead = raw.len() - raw.trim_start().len();
        let trimmed = raw.trim();
        if trimmed.is_empty() && heading.is_empty() {
            return;
        }
        out.push(Section {
            name,
            heading: heading.to_string(),
            start: start + lead,
            end: start + lead + trimmed.len(),
            text: trimmed.to_string(),
        });
    };
    if heads.is_empty() {
        push("findings", "", 0, text.len());
        return out;
    }
    push("preamble", "", 0, heads[0].0);
    for (k, &(_, body, heading)) in heads.iter().enumerate() {
        let end = heads.get(k + 1).map_or(text.len(), |h| h.0);
        push(canonical(heading), heading.trim(), body, end);
    }
    out
}

/// The text of the named sections, in report order, joined by blank lines.
pub fn select(sections: &[Section], names: &[&str]) -> String {
    let mut s = String::new();
    for sec in sections
        .iter()
        .filter(|x| names.contains(&x.name) && !x.text.is_empty())
    {
        if !s.is_empty() {
            s.push_str("\n\n");
        }
        s.push_str(&sec.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(String, String)> {
        split(text)
            .into_iter()
            .map(|s| (s.name.to_string(), s.text))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn heading_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "FINDINGS: Lungs clear.\nIMPRESSION: Normal.",
                &[("findings", "Lungs clear."), ("impression", "Normal.")],
            ),
            ("findings: clear\nimpression: normal", &[("findings", "clear"), ("impression", "normal")]),
            (
                "Findings\nThe lungs are clear.\n\nImpression\nNo acute disease.",
                &[("findings", "The lungs are clear."), ("impression", "No acute disease.")],
            ),
            ("FINDINGS The lungs are clear.", &[("findings", "The lungs are clear.")]),
            (
                "HISTORY: cough. COMPARISON: none. TECHNIQUE: PA and lateral. FINDINGS: Clear. CONCLUSION: Normal.",
                &[
                    ("indication", "cough."),
                    ("comparison", "none."),
                    ("technique", "PA and lateral."),
                    ("findings", "Clear."),
                    ("impression", "Normal."),
                ],
            ),
            ("Opinion - no change", &[("impression", "no change")]),
            (
                "Clinical indication: fever\nFindings: patchy opacity",
                &[("indication", "fever"), ("findings", "patchy opacity")],
            ),
            ("The lungs are clear. No effusion.", &[("findings", "The lungs are clear. No effusion.")]),
            (
                "Findings are consistent with edema. The impression is CHF.",
                &[("findings", "Findings are consistent with edema. The impression is CHF.")],
            ),
            (
                "Chest PA and lateral\nIMPRESSION: 1. No acute process.",
                &[("preamble", "Chest PA and lateral"), ("impression", "1. No acute process.")],
            ),
            ("1. Impression: clear", &[("impression", "clear")]),
        ];
        for (inp, want) in cases {
            assert_eq!(names(inp), pairs(want), "{inp:?}");
        }
    }

    #[test]
    fn offsets_and_select() {
        let t = "INDICATION: cough\nFINDINGS: Small left effusion.\nIMPRESSION: Effusion.";
        let s = split(t);
        for sec in &s {
            assert_eq!(&t[sec.start..sec.end], sec.text);
        }
        assert_eq!(
            select(&s, &["findings", "impression"]),
            "Small left effusion.\n\nEffusion."
        );
        assert_eq!(select(&s, &["technique"]), "");
    }
}
