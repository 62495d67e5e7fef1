//! Names, places and institutions without cue words: capitalised words,
//! classified with the shipped word lists and judged by their neighbours.
//!
//! - A run of two or more capitalised words with no ordinary English word in it
//!   is a name ("Rose Young", "Wiremu H. Sharp", "MARIE WOOD"), unless it is a
//!   place (then an address) or a clinical phrase.
//! - "Wood, Marie" (a surname, a comma and a first name) is a name.
//! - A single capitalised name word inside a sentence is a name; at the start of
//!   a sentence, or when it is mostly an ordinary word (Rose, Hunter), it needs
//!   context: a person verb after it ("presents", "is a", "notified"), a comma
//!   and an age, or a preposition before it ("with", "to", "by").
//! - Capitalised words around a head word (Hospital, Medical Center, Clinic,
//!   Health, ...) are an institution.
//! - Capitalised words that spell a US city or town inside a sentence are an address.
//! - Words of the clinical allow-list (Kerley B, Swan-Ganz, Hodgkin, Foley) are
//!   never taken by these rules.

use super::lexicon::{lexicon, Lexicon, MEDICAL_ENDINGS};
use super::{PhiKind, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// capitalised, with a lowercase letter: Smith, McDonald, O'Rourke
    Title,
    /// all capitals, two letters or more
    Upper,
    /// one capital letter
    Initial,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// a name that is mostly a name (john, smith, okafor)
    Name,
    /// a name that is mostly an ordinary word (rose, young, hunter)
    Wordy,
    /// an ordinary English word that is not a name
    English,
    /// in no list: a rare name, or jargon
    Unknown,
    /// the source's own de-identification mark (XXXX)
    Masked,
}

#[derive(Debug, Clone)]
struct Token {
    start: usize,
    end: usize,
    /// lowercase, without a possessive 's
    key: String,
    shape: Shape,
    class: Class,
    first_name: bool,
    /// the text before this token in the same sentence is empty
    sentence_start: bool,
    /// what separates this token from the previous one
    gap: Gap,
    /// covered by a clinical allow-list phrase
    clinical: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// one space or tab, or a hyphen (Vasquez-Lind), or ". " after an initial
    Join,
    /// ", " between two words
    Comma,
    /// anything else (two spaces, a newline, punctuation, digits)
    Break,
}

fn is_word_char(c: char) -> bool {
    c.is_alphabetic()
}

fn tokenize(text: &str, lex: &Lexicon) -> Vec<Token> {
    let mut toks: Vec<Token> = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    let mut prev_end = 0;
    while i < text.len() {
        let c = text[i..].chars().next().expect("in range");
        if !is_word_char(c) {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let mut end = i;
        let mut chars = text[i..].char_indices().peekable();
        while let Some((off, ch)) = chars.next() {
            if is_word_char(ch) {
                end = i + off + ch.len_utf8();
            } else if (ch == '\'' || ch == '’')
                && chars.peek().is_some_and(|&(_, n)| is_word_char(n))
            {
                continue;
            } else {
                break;
            }
        }
        let word = &text[start..end];
        let between = &text[prev_end..start];
        let prev = toks.last();
        let gap = match between {
            " " | "\t" | "-" => Gap::Join,
            ". " | "." if prev.is_some_and(|p| p.shape == Shape::Initial) => Gap::Join,
            ", " | "," => Gap::Comma,
            _ => Gap::Break,
        };
        // sentence start: the nearest non-blank character before is a sentence
        // mark, or there is none (an initial's full stop does not end a sentence)
        let before = text[..start].trim_end_matches([' ', '\t']);
        let sentence_start = match before.chars().last() {
            None => true,
            Some('.') => !prev.is_some_and(|p| {
                p.shape == Shape::Initial && before.len() == p.end + 1
                    || matches!(p.key.as_str(), "dr" | "mr" | "mrs" | "ms" | "st" | "prof")
                        && before.len() == p.end + 1
            }),
            Some(c) => matches!(
                c,
                '!' | '?' | ':' | ';' | '\n' | '\r' | '(' | '"' | '*' | '•' | '>' | '[' | '|'
            ),
        };
        let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
        let shape = if letters.len() == 1 && letters[0].is_uppercase() {
            Shape::Initial
        } else if letters[0].is_uppercase() && letters.iter().any(|c| c.is_lowercase()) {
            Shape::Title
        } else if letters.iter().all(|c| c.is_uppercase()) {
            Shape::Upper
        } else {
            Shape::Lower
        };
        let mut key = word.to_lowercase().replace('’', "'");
        for suffix in ["'s", "'"] {
            if key.len() > suffix.len() + 1 && key.ends_with(suffix) {
                key.truncate(key.len() - suffix.len());
                break;
            }
        }
        // a month before a number is a date, not a name (August 2000, June 3)
        let month_before_number = MONTH_NAMES.contains(&key.as_str())
            && text[end..]
                .trim_start_matches([' ', '.'])
                .starts_with(|c: char| c.is_ascii_digit());
        let first_name = lex.first.contains(key.as_str()) && !month_before_number;
        let is_name = first_name || lex.last.contains(key.as_str());
        let class = if key.len() >= 2 && key.chars().all(|c| c == 'x') {
            Class::Masked
        } else if lex.report_words.contains(&key)
            || month_before_number
            || FUNCTION_WORDS.contains(&key.as_str())
        {
            Class::English
        } else if is_name && lex.wordy.contains(key.as_str()) {
            Class::Wordy
        } else if is_name {
            Class::Name
        } else if lex.english.contains(key.as_str())
            || key.len() == 1
            || MEDICAL_ENDINGS
                .iter()
                .any(|e| key.len() > e.len() + 2 && key.ends_with(e))
        {
            Class::English
        } else {
            Class::Unknown
        };
        let _ = b;
        toks.push(Token {
            start,
            end,
            key,
            shape,
            class,
            first_name,
            sentence_start,
            gap,
            clinical: false,
        });
        prev_end = end;
        i = end;
    }
    mark_clinical(&mut toks, lex);
    toks
}

/// Mark the tokens covered by a clinical allow-list phrase (longest first).
fn mark_clinical(toks: &mut [Token], lex: &Lexicon) {
    for i in 0..toks.len() {
        let Some(phrases) = lex.clinical.get(&toks[i].key) else {
            continue;
        };
        let full = |j: usize| toks[j].key.clone();
        let best = phrases
            .iter()
            .filter(|p| {
                i + p.len() <= toks.len()
                    && p.iter().enumerate().all(|(k, w)| {
                        // the phrase's words, in order, with nothing but a gap between
                        let t = &toks[i + k];
                        (k == 0 || t.gap != Gap::Break || t.start - toks[i + k - 1].end <= 2)
                            && (t.key == *w || full(i + k) == *w)
                    })
            })
            .map(|p| p.len())
            .max();
        // a one-word eponym after an initial is a person (I. Ewing)
        let after_initial =
            i > 0 && toks[i - 1].shape == Shape::Initial && toks[i].gap == Gap::Join;
        if let Some(n) = best.filter(|&n| !(n == 1 && after_initial)) {
            for t in &mut toks[i..i + n] {
                t.clinical = true;
            }
        }
    }
}

const WEAK_AFTER: &[&str] = &["is", "was", "has", "had", "who", "seen"];
const STRONG_BEFORE: &[&str] = &[
    "dr",
    "patient",
    "pt",
    "mr",
    "mrs",
    "ms",
    "miss",
    "notified",
    "called",
    "paged",
    "informed",
    "contacted",
    "told",
    "attn",
    "cc",
    "son",
    "daughter",
    "wife",
    "husband",
    "mother",
    "father",
    "sister",
    "brother",
    "nurse",
    "caregiver",
    "friend",
];
const PERSON_AFTER: &[&str] = &[
    "presents",
    "presented",
    "presenting",
    "returns",
    "returned",
    "reports",
    "reported",
    "denies",
    "denied",
    "complains",
    "complained",
    "states",
    "stated",
    "underwent",
    "notified",
    "called",
    "paged",
    "informed",
    "aware",
    "agrees",
    "agreed",
    "comes",
    "came",
    "arrives",
    "arrived",
    "says",
    "said",
    "verbalized",
    "acknowledged",
    "requests",
    "requested",
    "declined",
    "refused",
    "consented",
    "feels",
    "felt",
    "fell",
];
const PERSON_BEFORE: &[&str] = &[
    "with",
    "to",
    "by",
    "and",
    "from",
    "for",
    "dr",
    "patient",
    "pt",
    "mr",
    "mrs",
    "ms",
    "miss",
    "notified",
    "called",
    "paged",
    "informed",
    "contacted",
    "told",
    "discussed",
    "attn",
    "cc",
    "of",
    "at",
    "via",
    "son",
    "daughter",
    "wife",
    "husband",
    "mother",
    "father",
    "sister",
    "brother",
    "nurse",
    "caregiver",
    "friend",
];
const INSTITUTION_HEADS: &[&str] = &[
    "hospital",
    "hospitals",
    "clinic",
    "clinics",
    "infirmary",
    "healthcare",
    "sanatorium",
    "hospice",
    "center",
    "centre",
    "health",
    "memorial",
    "imaging",
    "radiology",
    "medical",
    "regional",
    "university",
    "institute",
    "pavilion",
];

const MONTH_NAMES: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
];
const FUNCTION_WORDS: &[&str] = &[
    "the",
    "and",
    "not",
    "for",
    "with",
    "from",
    "was",
    "has",
    "had",
    "are",
    "this",
    "that",
    "there",
    "these",
    "those",
    "its",
    "per",
    "than",
    "then",
    "also",
    "both",
    "all",
    "any",
    "some",
    "each",
    "new",
    "old",
    "see",
    "seen",
    "please",
    "status",
    "history",
    "but",
    "into",
    "over",
    "under",
    "after",
    "before",
    "since",
    "during",
    "without",
    "within",
    "upon",
    "via",
    "our",
    "your",
    "his",
    "her",
    "their",
    "who",
    "which",
    "what",
    "when",
    "where",
    "why",
    "how",
    "can",
    "could",
    "would",
    "should",
    "did",
    "does",
    "done",
    "now",
    "here",
    "today",
    "yesterday",
    "none",
];
const INSTITUTION_STOPS: &[&str] = &[
    "department",
    "dept",
    "division",
    "section",
    "service",
    "services",
    "unit",
    "floor",
    "wing",
    "room",
    "emergency",
    "lab",
    "laboratory",
    "and",
];
/// Credentials after a name: never part of it.
const CREDENTIALS: &[&str] = &[
    "md", "do", "rn", "np", "phd", "mbbs", "frcr", "dnp", "crnp", "arnp", "aprn", "dds", "dmd",
    "pa",
];

fn capitalised(t: &Token) -> bool {
    matches!(t.shape, Shape::Title | Shape::Upper | Shape::Initial)
}

fn name_like(t: &Token) -> bool {
    matches!(t.class, Class::Name | Class::Wordy | Class::Unknown)
}

/// Spans of names, places and institutions found from capitalisation and the lists.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    let lex = lexicon();
    let toks = tokenize(text, lex);
    let mut taken = vec![false; toks.len()];
    institutions(text, &toks, &mut taken, out);
    places(&toks, lex, &mut taken, out);
    names(text, &toks, &mut taken, out);
}

fn push(out: &mut Vec<Span>, toks: &[Token], a: usize, b: usize, kind: PhiKind) {
    out.push(Span {
        start: toks[a].start,
        end: toks[b].end,
        kind,
    });
}

fn institutions(text: &str, toks: &[Token], taken: &mut [bool], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if !(t.shape == Shape::Title && INSTITUTION_HEADS.contains(&t.key.as_str())) || taken[i] {
            i += 1;
            continue;
        }
        // extend left over capitalised words (and "St.", "of")
        let mut a = i;
        while a > 0 {
            let p = &toks[a - 1];
            let joined = toks[a].gap == Gap::Join
                || (p.key == "st" && text[p.end..toks[a].start].trim() == ".")
                || (toks[a].gap == Gap::Break && text[p.end..toks[a].start] == *"'s ");
            if joined
                && capitalised(p)
                && !p.clinical
                && p.class != Class::Masked
                && !p.sentence_start_label(text)
            {
                a -= 1;
            } else {
                break;
            }
        }
        // and right over capitalised words, "of" and place words
        let mut b = i;
        while b + 1 < toks.len() {
            let n = &toks[b + 1];
            if n.gap == Gap::Join
                && (capitalised(n)
                    || n.key == "of" && b + 2 < toks.len() && capitalised(&toks[b + 2]))
                && n.class != Class::Masked
            {
                b += 1;
            } else {
                break;
            }
        }
        // the name ends at its last head word, unless "of Indiana" or a
        // place after "Health" follows it; never into "Department of Radiology"
        if let Some(stop) = (i..=b).find(|&k| INSTITUTION_STOPS.contains(&toks[k].key.as_str())) {
            b = stop.saturating_sub(1).max(i);
        }
        let last_head = (i..=b)
            .rev()
            .find(|&k| INSTITUTION_HEADS.contains(&toks[k].key.as_str()))
            .unwrap_or(i);
        if b > last_head && toks[last_head + 1].key != "of" && toks[last_head].key != "health" {
            b = last_head;
        }
        while b > i && toks[b].key == "of" {
            b -= 1;
        }
        let heads = (a..=b)
            .filter(|&k| INSTITUTION_HEADS.contains(&toks[k].key.as_str()))
            .count();
        // a head must end the name, or be "Health" (IU Health Arnett); and one
        // word at least must not be a head
        if b - a + 1 > heads {
            push(out, toks, a, b, PhiKind::Institution);
            for x in &mut taken[a..=b] {
                *x = true;
            }
        }
        i = b + 1;
    }
}

impl Token {
    /// A section label such as "FINDINGS" or "IMPRESSION" before a colon.
    fn sentence_start_label(&self, text: &str) -> bool {
        self.shape == Shape::Upper
            && text[self.end..].starts_with(':')
            && !matches!(self.class, Class::Name | Class::Wordy)
    }
}

fn places(toks: &[Token], lex: &Lexicon, taken: &mut [bool], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < toks.len() {
        if taken[i] || toks[i].shape != Shape::Title || toks[i].clinical {
            i += 1;
            continue;
        }
        let mut found = None;
        let mut key = String::new();
        for n in 0..lex.place_words.min(toks.len() - i) {
            let t = &toks[i + n];
            if n > 0 && (t.gap != Gap::Join || t.shape != Shape::Title) {
                break;
            }
            if n > 0 {
                key.push(' ');
            }
            key.push_str(&t.key);
            if lex.places.contains(key.as_str()) {
                found = Some(i + n);
            }
        }
        let Some(b) = found else {
            i += 1;
            continue;
        };
        // inside a sentence, not an ordinary word, and not part of a longer
        // run of capitalised words (Meghan Fairbanks is a name)
        let ordinary = b == i && toks[i].class == Class::English;
        let neighbour = |t: &Token| {
            capitalised(t)
                && (t.class != Class::English || t.shape == Shape::Initial)
                && !t.clinical
        };
        let near = |g: Gap| g != Gap::Break;
        let inside_run = (i > 0 && near(toks[i].gap) && neighbour(&toks[i - 1]))
            || toks
                .get(b + 1)
                .is_some_and(|n| near(n.gap) && neighbour(n) && n.shape != Shape::Upper);
        if !toks[i].sentence_start && !ordinary && !inside_run {
            push(out, toks, i, b, PhiKind::Address);
            for x in &mut taken[i..=b] {
                *x = true;
            }
        }
        i = b + 1;
    }
}

fn names(text: &str, toks: &[Token], taken: &mut [bool], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if taken[i] || !capitalised(t) || t.clinical || t.class == Class::Masked {
            i += 1;
            continue;
        }
        // the run of capitalised words joined by single spaces (or "Last, First")
        let mut b = i;
        while b + 1 < toks.len() {
            let n = &toks[b + 1];
            let cur = &toks[b];
            let same_case = n.shape == Shape::Initial
                || cur.shape == Shape::Initial
                || (n.shape == Shape::Upper) == (cur.shape == Shape::Upper);
            let credential = (n.shape == Shape::Upper && CREDENTIALS.contains(&n.key.as_str()))
                || (n.shape == Shape::Initial && text[n.end..].starts_with(".D."))
                || (cur.shape == Shape::Initial
                    && cur.key == "m"
                    && n.key == "d"
                    && text[cur.end..].starts_with(".D"));
            let ok = !taken[b + 1]
                && !credential
                && capitalised(n)
                && !n.clinical
                && n.class != Class::Masked
                && same_case
                && match n.gap {
                    Gap::Join => true,
                    // Wood, Marie: a surname-like word, a comma, a first name
                    Gap::Comma => {
                        b == i
                            && name_like(cur)
                            && (n.first_name
                                || cur.class != Class::Unknown && n.class == Class::Unknown)
                            && n.class != Class::English
                    }
                    Gap::Break => false,
                };
            if ok {
                b += 1;
            } else {
                break;
            }
        }
        // split the run at ordinary English words and section labels; an
        // English word after a first name (Angela Wall) or before a surname
        // (Temperance Sutton) is part of the name
        let lex = lexicon();
        let absorbed = |k: usize| {
            let t = &toks[k];
            // not a function word, nor a verb or adverb (Called Rose Young)
            let verbish = ["ed", "ing", "ly"].iter().any(|e| t.key.ends_with(e));
            if t.shape != Shape::Title
                || FUNCTION_WORDS.contains(&t.key.as_str())
                || t.key.len() < 3
                || verbish
            {
                return false;
            }
            let first_at = |j: usize| toks[j].class == Class::Name && toks[j].first_name;
            let after_first = t.gap == Gap::Join
                && k > i
                && (first_at(k - 1)
                    || toks[k - 1].shape == Shape::Initial && k > i + 1 && first_at(k - 2));
            let before_last = k < b
                && {
                    let n = &toks[k + 1];
                    let n = if n.shape == Shape::Initial && k + 2 <= b {
                        &toks[k + 2]
                    } else {
                        n
                    };
                    matches!(n.class, Class::Name | Class::Wordy)
                        && lex.last.contains(n.key.as_str())
                }
                && toks[k + 1].gap == Gap::Join
                && !lex.report_words.contains(&t.key);
            after_first || before_last
        };
        let mut a = i;
        for k in i..=b + 1 {
            let boundary = k > b
                || toks[k].class == Class::English
                    && toks[k].shape != Shape::Initial
                    && !absorbed(k)
                || toks[k].sentence_start_label(text);
            if boundary {
                if k > a {
                    judge(text, toks, a, k - 1, out);
                }
                a = k + 1;
            }
        }
        for x in &mut taken[i..=b] {
            *x = true;
        }
        i = b + 1;
    }
}

/// Decide whether toks[a..=b] (capitalised, no English word) is a name.
fn judge(text: &str, toks: &[Token], a: usize, b: usize, out: &mut Vec<Span>) {
    let words: Vec<&Token> = toks[a..=b]
        .iter()
        .filter(|t| t.shape != Shape::Initial)
        .collect();
    if words.is_empty() {
        return;
    }
    let upper = words.iter().all(|t| t.shape == Shape::Upper);
    let has_initial = b > a && toks[a..=b].iter().any(|t| t.shape == Shape::Initial);
    let prev = a.checked_sub(1).map(|p| &toks[p]);
    let next = toks.get(b + 1);
    let before_cue = !toks[a].sentence_start
        && prev.is_some_and(|p| {
            p.shape == Shape::Lower && PERSON_BEFORE.contains(&p.key.as_str())
                || matches!(p.key.as_str(), "dr" | "mr" | "mrs" | "ms")
        });
    let rest = &text[toks[b].end..];
    let verb =
        next.filter(|n| n.shape == Shape::Lower && text[toks[b].end..n.start].trim().is_empty());
    // "is", "was", "has" follow clinical words as often as names
    let weak_verb = verb.is_some_and(|n| WEAK_AFTER.contains(&n.key.as_str()));
    let strong_before =
        !toks[a].sentence_start && prev.is_some_and(|p| STRONG_BEFORE.contains(&p.key.as_str()));
    let after_cue = verb.is_some_and(|n| PERSON_AFTER.contains(&n.key.as_str())) || {
        // "Wood, 93 F", "Hunter, a 45-year-old"
        let r = rest.trim_start_matches([' ', '\t']);
        let is_a = ["is a ", "is an ", "was a ", "was an "]
            .iter()
            .find_map(|p| r.strip_prefix(p))
            .is_some_and(|r| {
                r.starts_with(|c: char| c.is_ascii_digit())
                    || [
                        "xxxx",
                        "age",
                        "man",
                        "woman",
                        "male",
                        "female",
                        "patient",
                        "boy",
                        "girl",
                        "gentleman",
                        "lady",
                        "pleasant",
                        "very pleasant",
                    ]
                    .iter()
                    .any(|w| r.to_lowercase().starts_with(w))
            });
        is_a || r.strip_prefix(',').is_some_and(|r| {
            let r = r.trim_start();
            r.starts_with(|c: char| c.is_ascii_digit())
                || r.starts_with("a ")
                || r.starts_with("an ")
        }) || r.starts_with("'s ")
    };
    if upper {
        // all capitals: acronyms are common, so ask for a real name word
        let real = words
            .iter()
            .filter(|t| {
                t.class == Class::Name && t.key.len() >= 3
                    || t.class == Class::Wordy && t.key.len() >= 4
            })
            .count();
        let all_namey = words.iter().all(|t| {
            matches!(t.class, Class::Name | Class::Wordy | Class::Unknown)
                && t.key.len() >= 2
                && !CREDENTIALS.contains(&t.key.as_str())
        });
        if words.len() >= 2 && real >= 1 && all_namey {
            push(out, toks, a, b, PhiKind::Name);
        }
        return;
    }
    let n = words.len();
    if n >= 2 || has_initial {
        // two or more capitalised words with no English word among them, one
        // of them a listed name (words in no list are as often jargon), or
        // an initial and a word
        let any_listed = words.iter().any(|t| t.class != Class::Unknown);
        let colon_after = rest.trim_start_matches([' ', '\t']).starts_with(':');
        let context = after_cue || before_cue || strong_before || weak_verb || colon_after;
        if any_listed || has_initial || context {
            push(out, toks, a, b, PhiKind::Name);
        }
        return;
    }
    let t = words[0];
    let mid = !t.sentence_start;
    let yes = match t.class {
        Class::Name => mid || after_cue || weak_verb,
        Class::Wordy => before_cue || after_cue,
        Class::Unknown => before_cue || after_cue || verb.is_some_and(|n| n.key == "has"),
        _ => false,
    };
    if yes {
        push(out, toks, a, b, PhiKind::Name);
    }
}
