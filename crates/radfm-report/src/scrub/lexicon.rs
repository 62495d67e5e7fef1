//! The word lists the scrubber ships as data (`data/`, see `data/README.md`):
//! Census first names and surnames, the names that are mostly ordinary words,
//! an English vocabulary without names, US places and the clinical allow-list.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

pub(crate) struct Lexicon {
    pub first: HashSet<&'static str>,
    pub last: HashSet<&'static str>,
    /// names that are more often ordinary words (rose, young, hunter)
    pub wordy: HashSet<&'static str>,
    /// frequent lowercase English words that are not names
    pub english: HashSet<&'static str>,
    /// US places, lowercase, words joined by one space
    pub places: HashSet<&'static str>,
    /// clinical phrases as lowercase word sequences, by first word
    pub clinical: HashMap<String, Vec<Vec<String>>>,
    /// the longest place, in words
    pub place_words: usize,
    /// the words of the labeler's rules (`rules/*.txt`) that are not first
    /// names: report vocabulary, never a name even where a surname list has it
    /// (patient, heart, mass, wall)
    pub report_words: HashSet<String>,
}

/// Word endings of medical terms that no name has (atelectasis, cardiomegaly).
pub(crate) const MEDICAL_ENDINGS: &[&str] = &[
    "itis", "osis", "oses", "emia", "ectomy", "otomy", "ostomy", "plasty", "pathy", "algia",
    "pnea", "megaly", "ectasis", "gram", "graphy", "scopy", "omas", "cele", "rrhea", "uria",
    "trophy", "plasia", "genic", "ology", "ologic", "ological", "ectomies", "itis", "ysis", "osus",
    "otic", "emic", "oid", "oids",
];

fn lines(s: &'static str) -> impl Iterator<Item = &'static str> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Lowercase words of a phrase: split at spaces and hyphens, as the scrubber's tokens are.
pub(crate) fn phrase_words(p: &str) -> Vec<String> {
    p.split([' ', '-', '\t'])
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

pub(crate) fn lexicon() -> &'static Lexicon {
    static L: OnceLock<Lexicon> = OnceLock::new();
    L.get_or_init(|| {
        let places: HashSet<&'static str> =
            lines(include_str!("../../data/us_places.txt")).collect();
        let place_words = places
            .iter()
            .map(|p| p.split(' ').count())
            .max()
            .unwrap_or(1);
        let mut clinical: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for p in lines(include_str!("../../data/clinical_terms.txt")) {
            let w = phrase_words(p);
            if let Some(first) = w.first() {
                clinical.entry(first.clone()).or_default().push(w);
            }
        }
        let first: HashSet<&'static str> =
            lines(include_str!("../../data/first_names.txt")).collect();
        let mut report_words = HashSet::new();
        for rules in [
            include_str!("../../rules/mentions.txt"),
            include_str!("../../rules/triggers.txt"),
        ] {
            for l in lines(rules).filter(|l| !l.starts_with('[')) {
                for w in l.split(|c: char| !c.is_ascii_alphabetic()) {
                    let w = w.to_ascii_lowercase();
                    if w.len() >= 3 && !first.contains(w.as_str()) && !clinical.contains_key(&w) {
                        report_words.insert(w);
                    }
                }
            }
        }
        Lexicon {
            first,
            last: lines(include_str!("../../data/surnames.txt")).collect(),
            wordy: lines(include_str!("../../data/name_words.txt")).collect(),
            english: lines(include_str!("../../data/english_words.txt")).collect(),
            places,
            clinical,
            place_words,
            report_words,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_loaded_and_classify_names() {
        let l = lexicon();
        assert!(
            l.first.len() > 5000 && l.last.len() > 80_000,
            "Census lists"
        );
        for n in ["john", "mary", "rose"] {
            assert!(l.first.contains(n), "{n}");
        }
        for n in ["smith", "young", "okafor"] {
            assert!(l.last.contains(n), "{n}");
        }
        for w in ["rose", "young", "hunter", "bell"] {
            assert!(l.wordy.contains(w), "{w} is mostly a word");
        }
        for n in ["john", "smith", "lee"] {
            assert!(!l.wordy.contains(n), "{n} is mostly a name");
        }
        for w in ["the", "lungs", "clear", "heart"] {
            assert!(l.english.contains(w) || l.wordy.contains(w), "{w}");
        }
        assert!(!l.english.contains("john"));
        assert!(l.places.contains("indianapolis") && l.places.contains("fort wayne"));
        for w in ["patient", "heart", "mass", "wall", "lobe"] {
            assert!(l.report_words.contains(w), "{w} is report vocabulary");
        }
        for n in ["will", "may", "mark"] {
            assert!(!l.report_words.contains(n), "{n} is a first name");
        }
        assert!(l.clinical["kerley"].contains(&vec!["kerley".to_string(), "b".to_string()]));
    }
}
