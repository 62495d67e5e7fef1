//! The BERT WordPiece tokenizer, read from a Hugging Face `tokenizer.json`
//! (or `vocab.txt`), with the steps of HF `BertNormalizer`,
//! `BertPreTokenizer`, `WordPiece` and the `[CLS] A [SEP]` template:
//!
//! 1. clean: drop NUL, U+FFFD and control characters; every whitespace
//!    character becomes a space;
//! 2. put spaces around CJK ideographs;
//! 3. lowercase and strip accents (NFD, then drop combining marks), when the
//!    tokenizer is uncased;
//! 4. split on whitespace, and split every punctuation character off on its own;
//! 5. greedy longest-match WordPiece with the `##` continuation prefix; a
//!    word with no segmentation, or longer than 100 characters, is `[UNK]`.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::ModelError;

pub struct WordPiece {
    vocab: HashMap<String, i64>,
    lowercase: bool,
    strip_accents: bool,
    unk: i64,
    cls: i64,
    sep: i64,
    pub pad: i64,
    max_chars_per_word: usize,
    prefix: String,
}

/// Token ids of a batch, padded to the longest, with the attention mask.
pub struct Batch {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub batch: usize,
    pub len: usize,
}

fn is_punctuation(c: char) -> bool {
    // BERT treats all non-alphanumeric ASCII as punctuation, plus Unicode P*
    // categories; the Unicode blocks below hold the punctuation met in text.
    c.is_ascii_punctuation()
        || matches!(c as u32,
            0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF
            | 0x2010..=0x2027 | 0x2030..=0x205E | 0x3001..=0x3003 | 0x3008..=0x3011
            | 0x3014..=0x301F | 0xFF01..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40
            | 0xFF5B..=0xFF65)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c.is_control()
        || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0xFEFF)
}

impl WordPiece {
    /// From `DIR/tokenizer.json` (a BERT WordPiece model), else `DIR/vocab.txt`.
    pub fn open(dir: &Path) -> Result<WordPiece, ModelError> {
        let tj = dir.join("tokenizer.json");
        if tj.exists() {
            let text = std::fs::read_to_string(&tj).map_err(|e| ModelError::io(&tj, e))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ModelError::Format(format!("{}: {e}", tj.display())))?;
            if v["model"]["type"] != "WordPiece" {
                return Err(ModelError::Format(format!(
                    "{}: tokenizer model {} is not WordPiece",
                    tj.display(),
                    v["model"]["type"]
                )));
            }
            let vocab: HashMap<String, i64> = v["model"]["vocab"]
                .as_object()
                .ok_or_else(|| ModelError::Format(format!("{}: no vocab", tj.display())))?
                .iter()
                .filter_map(|(k, id)| Some((k.clone(), id.as_i64()?)))
                .collect();
            let norm = &v["normalizer"];
            let lowercase = norm["lowercase"].as_bool().unwrap_or(true);
            let strip_accents = norm["strip_accents"].as_bool().unwrap_or(lowercase);
            let prefix = v["model"]["continuing_subword_prefix"]
                .as_str()
                .unwrap_or("##")
                .to_string();
            let max = v["model"]["max_input_chars_per_word"]
                .as_u64()
                .unwrap_or(100) as usize;
            return WordPiece::from_vocab(vocab, lowercase, strip_accents, prefix, max, &tj);
        }
        let vt = dir.join("vocab.txt");
        let text = std::fs::read_to_string(&vt).map_err(|e| ModelError::io(&vt, e))?;
        let vocab = text
            .lines()
            .enumerate()
            .map(|(i, l)| (l.to_string(), i as i64))
            .collect();
        WordPiece::from_vocab(vocab, true, true, "##".into(), 100, &vt)
    }

    pub fn from_vocab(
        vocab: HashMap<String, i64>,
        lowercase: bool,
        strip_accents: bool,
        prefix: String,
        max_chars_per_word: usize,
        source: &Path,
    ) -> Result<WordPiece, ModelError> {
        let id = |t: &str| {
            vocab.get(t).copied().ok_or_else(|| {
                ModelError::Format(format!("{}: vocabulary has no {t}", source.display()))
            })
        };
        Ok(WordPiece {
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
            vocab,
            lowercase,
            strip_accents,
            max_chars_per_word,
            prefix,
        })
    }

    /// The normalised words of `text` (steps 1-4).
    pub fn words(&self, text: &str) -> Vec<String> {
        let mut s = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if c.is_whitespace() {
                s.push(' ');
            } else if is_cjk(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        let s: String = if self.lowercase { s.to_lowercase() } else { s };
        let s: String = if self.strip_accents {
            s.nfd().filter(|c| !is_combining_mark(*c)).collect()
        } else {
            s
        };
        let mut words = Vec::new();
        for w in s.split_whitespace() {
            let mut cur = String::new();
            for c in w.chars() {
                if is_punctuation(c) {
                    if !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                    words.push(c.to_string());
                } else {
                    cur.push(c);
                }
            }
            if !cur.is_empty() {
                words.push(cur);
            }
        }
        words
    }

    fn word_ids(&self, word: &str, out: &mut Vec<i64>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > self.max_chars_per_word {
            out.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let mut sub: String = chars[start..end].iter().collect();
                if start > 0 {
                    sub.insert_str(0, &self.prefix);
                }
                if let Some(&id) = self.vocab.get(&sub) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    pieces.push(id);
                    start = end;
                }
                None => {
                    out.push(self.unk);
                    return;
                }
            }
        }
        out.extend(pieces);
    }

    /// `[CLS] tokens [SEP]`, truncated to `max_len` tokens in all.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<i64> {
        let mut ids = vec![self.cls];
        for w in self.words(text) {
            self.word_ids(&w, &mut ids);
        }
        ids.truncate(max_len.max(2) - 1);
        ids.push(self.sep);
        ids
    }

    /// Encode and pad a batch to its longest sequence.
    pub fn batch(&self, texts: &[&str], max_len: usize) -> Batch {
        let enc: Vec<Vec<i64>> = texts.iter().map(|t| self.encode(t, max_len)).collect();
        let len = enc.iter().map(Vec::len).max().unwrap_or(2);
        let mut ids = Vec::with_capacity(len * enc.len());
        let mut mask = Vec::with_capacity(len * enc.len());
        for e in &enc {
            ids.extend_from_slice(e);
            mask.extend(std::iter::repeat_n(1, e.len()));
            ids.extend(std::iter::repeat_n(self.pad, len - e.len()));
            mask.extend(std::iter::repeat_n(0, len - e.len()));
        }
        Batch {
            ids,
            mask,
            batch: enc.len(),
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let words = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "no", "pleural", "effusion", "eff", "##usion",
            "##s", "t", "##12", "-", "l", "##1", ".", "cafe", ",", "肺",
        ];
        let vocab = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as i64))
            .collect();
        WordPiece::from_vocab(vocab, true, true, "##".into(), 100, Path::new("tiny")).unwrap()
    }

    #[test]
    fn normalisation_and_pre_tokenisation() {
        let t = tiny();
        let cases: &[(&str, &[&str])] = &[
            // case, whitespace, control characters
            (
                "No  Pleural\tEffusion\u{0007}.",
                &["no", "pleural", "effusion", "."],
            ),
            // punctuation splits inside words, each character on its own
            ("T12-L1,", &["t12", "-", "l1", ","]),
            // accents are stripped when uncased
            ("Café", &["cafe"]),
            // CJK ideographs become words of their own
            ("no肺", &["no", "肺"]),
        ];
        for (text, want) in cases {
            assert_eq!(t.words(text), *want, "{text:?}");
        }
    }

    #[test]
    fn wordpiece_longest_match_and_unknowns() {
        let t = tiny();
        let cases: &[(&str, &[i64])] = &[
            // [CLS] no pleural effusion . [SEP]
            ("no pleural effusion.", &[2, 4, 5, 6, 15, 3]),
            // longest first: "effusions" = effusion + ##s
            ("effusions", &[2, 6, 9, 3]),
            // t ##12 - l ##1
            ("T12-L1", &[2, 10, 11, 12, 13, 14, 3]),
            // a word with no segmentation is one [UNK]
            ("pneumothorax", &[2, 1, 3]),
        ];
        for (text, want) in cases {
            assert_eq!(t.encode(text, 512), *want, "{text:?}");
        }
        // truncation keeps [SEP]
        assert_eq!(t.encode("no no no no", 4), vec![2, 4, 4, 3]);
        let b = t.batch(&["no", "no pleural effusion"], 512);
        assert_eq!((b.batch, b.len), (2, 5));
        assert_eq!(b.mask, vec![1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(&b.ids[..5], &[2, 4, 3, 0, 0]);
    }
}
