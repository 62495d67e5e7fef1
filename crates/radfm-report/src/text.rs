//! Tokenisation shared by the labeler: ASCII-lowercased words with byte
//! offsets into the original text, punctuation as separate tokens, and
//! sentence breaks as explicit tokens.
//!
//! - Words are runs of ASCII letters and digits; an apostrophe between two
//!   letters stays inside the word ("can't"); a period between two digits
//!   stays inside a number ("1.5").
//! - Hyphens and all other characters separate words without becoming
//!   tokens, so "plate-like" and "plate like" tokenise alike, and "endplate"
//!   stays one word (it never matches "plate").
//! - `. ? !` followed by whitespace, end of text or another period, and a
//!   blank line, end a sentence. `, ; : ( ) /` are punctuation tokens.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    /// one of `, ; : ( ) /`
    Punct(u8),
    /// end of a sentence
    Break,
}

/// A token: a byte range in the text and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub start: u32,
    pub end: u32,
    pub kind: Kind,
}

impl Token {
    /// The token's text in `lower` (the lowercased text it was made from).
    #[inline]
    pub fn text<'a>(&self, lower: &'a str) -> &'a str {
        &lower[self.start as usize..self.end as usize]
    }
}

/// Tokenise `lower` (already ASCII-lowercased; offsets are shared with the
/// original because ASCII lowercasing keeps byte positions).
pub fn tokenize(lower: &str, out: &mut Vec<Token>) {
    out.clear();
    let b = lower.as_bytes();
    let n = b.len();
    let mut i = 0;
    let push_break = |out: &mut Vec<Token>, at: usize| {
        if !matches!(
            out.last(),
            Some(Token {
                kind: Kind::Break,
                ..
            }) | None
        ) {
            out.push(Token {
                start: at as u32,
                end: at as u32 + 1,
                kind: Kind::Break,
            });
        }
    };
    while i < n {
        let c = b[i];
        if c.is_ascii_alphanumeric() {
            let s = i;
            i += 1;
            while i < n {
                let d = b[i];
                if d.is_ascii_alphanumeric()
                    || (d == b'\''
                        && i + 1 < n
                        && b[i + 1].is_ascii_alphabetic()
                        && b[i - 1].is_ascii_alphabetic())
                    || (d == b'.'
                        && i + 1 < n
                        && b[i + 1].is_ascii_digit()
                        && b[i - 1].is_ascii_digit())
                {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Token {
                start: s as u32,
                end: i as u32,
                kind: Kind::Word,
            });
            continue;
        }
        match c {
            b'.' | b'?' | b'!' => {
                let next = b.get(i + 1).copied();
                if next.is_none()
                    || next.is_some_and(|d| {
                        d.is_ascii_whitespace() || d == b'.' || d == b'"' || d == b')'
                    })
                {
                    push_break(out, i);
                }
            }
            b'\n' => {
                // a blank line ends a sentence (headings, list items)
                let mut j = i + 1;
                while j < n && (b[j] == b' ' || b[j] == b'\t' || b[j] == b'\r') {
                    j += 1;
                }
                if j < n && b[j] == b'\n' {
                    push_break(out, i);
                }
            }
            b',' | b';' | b':' | b'(' | b')' | b'/' => {
                out.push(Token {
                    start: i as u32,
                    end: i as u32 + 1,
                    kind: Kind::Punct(c),
                });
            }
            _ => {}
        }
        i += 1;
    }
    push_break(out, n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        let lower = s.to_ascii_lowercase();
        let mut t = Vec::new();
        tokenize(&lower, &mut t);
        t.iter()
            .map(|t| match t.kind {
                Kind::Word => t.text(&lower).to_string(),
                Kind::Punct(c) => (c as char).to_string(),
                Kind::Break => "|".to_string(),
            })
            .collect()
    }

    #[test]
    fn token_table() {
        let cases: &[(&str, &str)] = &[
            ("No effusion.", "no effusion |"),
            ("Plate-like atelectasis", "plate like atelectasis |"),
            ("endplate sclerosis", "endplate sclerosis |"),
            ("A 1.5 cm nodule.", "a 1.5 cm nodule |"),
            ("Can't exclude pneumonia", "can't exclude pneumonia |"),
            (
                "effusion, pneumothorax; or mass",
                "effusion , pneumothorax ; or mass |",
            ),
            ("clear.. No XXXX", "clear | no xxxx |"),
            ("FINDINGS:\n\nLungs clear", "findings : | lungs clear |"),
            ("T6.Vertebra", "t6 vertebra |"),
            ("Élan café", "lan caf |"),
        ];
        for (inp, want) in cases {
            assert_eq!(words(inp).join(" "), *want, "{inp}");
        }
    }

    #[test]
    fn offsets_point_into_the_original() {
        let s = "Mild CARDIOMEGALY, stable.";
        let lower = s.to_ascii_lowercase();
        let mut t = Vec::new();
        tokenize(&lower, &mut t);
        assert_eq!(&s[t[1].start as usize..t[1].end as usize], "CARDIOMEGALY");
    }
}
