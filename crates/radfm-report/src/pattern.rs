//! A small token-pattern language for the labeler's rule files.
//!
//! A pattern is a sequence of elements separated by spaces:
//!
//! | element     | matches                                                   |
//! |-------------|-----------------------------------------------------------|
//! | `effusion`  | the word "effusion" (whole word, case-insensitive)        |
//! | `opacit*`   | any word starting with "opacit"                           |
//! | `(a\|b*\|c d)` | any one of the alternatives (each one or more words)   |
//! | `x?`        | the element `x`, or nothing                               |
//! | `~3`        | a gap of 0 to 3 words (never punctuation, nor the words in [`GAP_STOPS`]) |
//! | `,` `;` `:` `/` | that punctuation token                                |
//!
//! A pattern must start with a word element (leading optional elements are
//! allowed, but not a gap or punctuation). Matching always
//! prefers the longest match from a start token.

use std::collections::HashMap;

use crate::text::{Kind, Token};

/// Words a gap never skips: a pattern such as `heart ~3 enlarged` must not
/// read "heart is not enlarged" as a mention.
pub const GAP_STOPS: [&str; 7] = ["no", "not", "without", "but", "however", "although", "nor"];

#[derive(Debug, Clone)]
enum Atom {
    Exact(Box<str>),
    Prefix(Box<str>),
    Punct(u8),
}

impl Atom {
    #[inline]
    fn matches(&self, t: &Token, lower: &str) -> bool {
        match (self, t.kind) {
            (Atom::Exact(w), Kind::Word) => t.text(lower) == &**w,
            (Atom::Prefix(p), Kind::Word) => t.text(lower).starts_with(&**p),
            (Atom::Punct(c), Kind::Punct(d)) => *c == d,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// alternatives, each a run of atoms matched on consecutive tokens
    Elem {
        alts: Vec<Vec<Atom>>,
        optional: bool,
    },
    Gap(u8),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    steps: Vec<Step>,
    source: String,
}

/// Why a pattern did not compile.
#[derive(Debug, thiserror::Error)]
#[error("pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

fn atom(s: &str, pattern: &str) -> Result<Atom, PatternError> {
    let err = |reason: &str| PatternError {
        pattern: pattern.to_string(),
        reason: reason.to_string(),
    };
    match s {
        "," | ";" | ":" | "/" => return Ok(Atom::Punct(s.as_bytes()[0])),
        _ => {}
    }
    let (word, prefix) = match s.strip_suffix('*') {
        Some(w) => (w, true),
        None => (s, false),
    };
    if word.is_empty() {
        return Err(err("empty word"));
    }
    if !word
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'\'' || c == b'.')
    {
        return Err(err(&format!(
            "{word:?} must be lowercase ASCII letters or digits"
        )));
    }
    Ok(if prefix {
        Atom::Prefix(word.into())
    } else {
        Atom::Exact(word.into())
    })
}

impl Pattern {
    pub fn parse(src: &str) -> Result<Pattern, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: src.to_string(),
            reason: reason.to_string(),
        };
        // split at spaces outside parentheses
        let mut parts = Vec::new();
        let mut depth = 0usize;
        let mut cur = String::new();
        for ch in src.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth = depth.checked_sub(1).ok_or_else(|| err("unbalanced )"))?,
                _ => {}
            }
            if ch.is_whitespace() && depth == 0 {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
            } else {
                cur.push(ch);
            }
        }
        if depth != 0 {
            return Err(err("unclosed ("));
        }
        if !cur.is_empty() {
            parts.push(cur);
        }
        let mut steps = Vec::new();
        for part in &parts {
            if let Some(n) = part.strip_prefix('~') {
                let n: u8 = n
                    .parse()
                    .map_err(|_| err("a gap is ~N with N a small number"))?;
                steps.push(Step::Gap(n));
                continue;
            }
            let (body, optional) = match part.strip_suffix('?') {
                Some(b) => (b, true),
                None => (part.as_str(), false),
            };
            let alts = if let Some(inner) = body.strip_prefix('(') {
                let inner = inner.strip_suffix(')').ok_or_else(|| err("text after )"))?;
                if inner.contains(['(', ')']) {
                    return Err(err("nested parentheses"));
                }
                inner
                    .split('|')
                    .map(|a| {
                        let words: Vec<Atom> = a
                            .split_whitespace()
                            .map(|w| atom(w, src))
                            .collect::<Result<_, _>>()?;
                        if words.is_empty() {
                            return Err(err("empty alternative"));
                        }
                        Ok(words)
                    })
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                vec![vec![atom(body, src)?]]
            };
            steps.push(Step::Elem { alts, optional });
        }
        // the leading optional elements and the first required one start matches
        let lead = steps
            .iter()
            .position(|s| !matches!(s, Step::Elem { optional: true, .. }));
        let starts_ok = lead.is_some_and(|k| {
            steps[..=k].iter().all(|s| match s {
                Step::Elem { alts, .. } => alts.iter().all(|a| !matches!(a[0], Atom::Punct(_))),
                Step::Gap(_) => false,
            })
        });
        if !starts_ok {
            return Err(err(
                "must start with a word (leading optional words are allowed)",
            ));
        }
        if matches!(steps.last(), Some(Step::Gap(_))) {
            return Err(err("must not end with a gap"));
        }
        Ok(Pattern {
            steps,
            source: src.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// End (exclusive token index) of the longest match starting at `i`.
    pub fn match_at(&self, toks: &[Token], lower: &str, i: usize) -> Option<usize> {
        fn go(steps: &[Step], toks: &[Token], lower: &str, i: usize) -> Option<usize> {
            let Some((step, rest)) = steps.split_first() else {
                return Some(i);
            };
            match step {
                Step::Elem { alts, optional } => {
                    let mut best = if *optional {
                        go(rest, toks, lower, i)
                    } else {
                        None
                    };
                    for alt in alts {
                        let fits = toks
                            .get(i..i + alt.len())
                            .is_some_and(|ts| ts.iter().zip(alt).all(|(t, a)| a.matches(t, lower)));
                        if fits {
                            best = best.max(go(rest, toks, lower, i + alt.len()));
                        }
                    }
                    best
                }
                Step::Gap(n) => {
                    let mut best = go(rest, toks, lower, i);
                    let mut j = i;
                    for _ in 0..*n {
                        match toks.get(j) {
                            Some(t)
                                if t.kind == Kind::Word && !GAP_STOPS.contains(&t.text(lower)) =>
                            {
                                j += 1
                            }
                            _ => break,
                        }
                        best = best.max(go(rest, toks, lower, j));
                    }
                    best
                }
            }
        }
        go(&self.steps, toks, lower, i)
    }

    /// Atoms a match can start with: those of the leading optional elements and the first required one.
    fn first_atoms(&self) -> impl Iterator<Item = &Atom> {
        let mut done = false;
        self.steps
            .iter()
            .take_while(move |s| {
                let take = !done;
                done = !matches!(s, Step::Elem { optional: true, .. });
                take
            })
            .flat_map(|s| match s {
                Step::Elem { alts, .. } => alts.iter().map(|a| &a[0]).collect::<Vec<_>>(),
                Step::Gap(_) => Vec::new(),
            })
    }
}

/// A set of patterns, indexed by their first word, each carrying a payload.
#[derive(Debug)]
pub struct PatternSet<T> {
    patterns: Vec<(Pattern, T)>,
    by_word: HashMap<Box<str>, Vec<usize>>,
    by_prefix: Vec<(Box<str>, usize)>,
}

/// One match: tokens `start..end` and the index of the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    pub pattern: usize,
}

impl<T> PatternSet<T> {
    pub fn new(patterns: Vec<(Pattern, T)>) -> Self {
        let mut by_word: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        let mut by_prefix = Vec::new();
        for (k, (p, _)) in patterns.iter().enumerate() {
            for a in p.first_atoms() {
                match a {
                    Atom::Exact(w) => by_word.entry(w.clone()).or_default().push(k),
                    Atom::Prefix(w) => by_prefix.push((w.clone(), k)),
                    Atom::Punct(_) => {}
                }
            }
        }
        PatternSet {
            patterns,
            by_word,
            by_prefix,
        }
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn get(&self, k: usize) -> (&Pattern, &T) {
        let (p, t) = &self.patterns[k];
        (p, t)
    }

    /// Calls `f` for every pattern that matches at token `i`, with its end.
    pub fn for_each_at(&self, toks: &[Token], lower: &str, i: usize, mut f: impl FnMut(Match)) {
        let t = &toks[i];
        if t.kind != Kind::Word {
            return;
        }
        let w = t.text(lower);
        let mut try_one = |k: usize| {
            if let Some(end) = self.patterns[k].0.match_at(toks, lower, i) {
                f(Match {
                    start: i,
                    end,
                    pattern: k,
                });
            }
        };
        if let Some(ks) = self.by_word.get(w) {
            for &k in ks {
                try_one(k);
            }
        }
        for (p, k) in &self.by_prefix {
            if w.starts_with(&**p) {
                try_one(*k);
            }
        }
    }

    /// The longest match starting at `i`, if any (ties: the first pattern).
    pub fn longest_at(&self, toks: &[Token], lower: &str, i: usize) -> Option<Match> {
        let mut best: Option<Match> = None;
        self.for_each_at(toks, lower, i, |m| {
            if best.is_none_or(|b| m.end > b.end || (m.end == b.end && m.pattern < b.pattern)) {
                best = Some(m);
            }
        });
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    fn m(pat: &str, text: &str) -> Option<String> {
        let p = Pattern::parse(pat).unwrap();
        let lower = text.to_ascii_lowercase();
        let mut toks = Vec::new();
        tokenize(&lower, &mut toks);
        (0..toks.len()).find_map(|i| {
            p.match_at(&toks, &lower, i)
                .map(|e| lower[toks[i].start as usize..toks[e - 1].end as usize].to_string())
        })
    }

    #[test]
    fn pattern_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("plate", "endplate sclerosis", None),
            (
                "plate like atelectasis",
                "Plate-like atelectasis",
                Some("plate-like atelectasis"),
            ),
            ("opacit*", "patchy opacities", Some("opacities")),
            (
                "(left|right)? effusion",
                "right effusion",
                Some("right effusion"),
            ),
            ("(left|right)? effusion", "an effusion", Some("effusion")),
            (
                "heart ~4 normal",
                "heart size and contours are normal",
                Some("heart size and contours are normal"),
            ),
            (
                "heart ~2 normal",
                "heart size and contours are normal",
                None,
            ),
            ("heart ~4 normal", "heart is big. normal lungs", None),
            ("heart ~4 normal", "heart is big; normal lungs", None),
            (
                "effusion , pneumothorax",
                "effusion, pneumothorax",
                Some("effusion, pneumothorax"),
            ),
            ("heart ~3 enlarged", "heart size, enlarged aorta", None),
            ("heart ~3 enlarged", "heart is not enlarged", None),
            (
                "(swan|pulmonary artery) catheter",
                "a pulmonary artery catheter",
                Some("pulmonary artery catheter"),
            ),
            (
                "(pulmonary artery|swan) catheter",
                "pulmonary catheter",
                None,
            ),
        ];
        for (pat, text, want) in cases {
            assert_eq!(m(pat, text).as_deref(), *want, "{pat} on {text}");
        }
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "",
            "~2 effusion",
            "effusion ~2",
            "(a|b",
            "a)",
            "((a))",
            "(a||b)",
            "Effusion",
            "x? ~2 y",
            "x?",
            ", a",
            "leads?s",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
