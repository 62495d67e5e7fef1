//! Text tokenisation with Hugging Face's own `tokenizers` crate, reading the
//! model directory's `tokenizer.json`: BERT WordPiece (MiniLM, PubMedBERT),
//! CLIP's byte-level BPE, and whatever else a `tokenizer.json` describes.
//!
//! Batches are padded to their longest text with the model's pad token and
//! truncated at the model's context length; the special tokens the
//! tokenizer's post-processor adds (`[CLS] .. [SEP]`,
//! `<|startoftext|> .. <|endoftext|>`) are kept on truncated text, as
//! `tokenizer(texts, padding=True, truncation=True, max_length=n)` does.
//!
//! A directory with only BERT's `vocab.txt` gets the BERT pipeline built
//! from it (normaliser, pre-tokeniser, WordPiece, `[CLS] A [SEP]`).

use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PaddingParams, PaddingStrategy, TruncationParams};

use crate::ModelError;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// `inner` set up to pad and truncate at a context length, per length
    /// asked for (a CLIP tokenizer is costly to copy)
    configured: std::sync::Mutex<std::collections::HashMap<usize, tokenizers::Tokenizer>>,
    /// the pad token's id
    pub pad: i64,
    source: String,
}

/// Token ids of a batch, padded to the longest, with the attention mask.
pub struct Batch {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub batch: usize,
    pub len: usize,
    /// how many of the texts were cut at the context length
    pub truncated: usize,
}

impl Batch {
    /// The ids and the attention mask as `[batch, len]` tensors.
    pub fn tensors(
        self,
        device: &burn::tensor::Device,
    ) -> (
        burn::tensor::Tensor<2, burn::tensor::Int>,
        burn::tensor::Tensor<2, burn::tensor::Int>,
    ) {
        use burn::tensor::{Int, Tensor, TensorData};
        let shape = [self.batch, self.len];
        (
            Tensor::<2, Int>::from_data(TensorData::new(self.ids, shape), device),
            Tensor::<2, Int>::from_data(TensorData::new(self.mask, shape), device),
        )
    }
}

/// `tokenizer_config.json`'s pad token (a string, or `{"content": ..}`), if any.
fn configured_pad(dir: &Path) -> Option<String> {
    for f in ["tokenizer_config.json", "special_tokens_map.json"] {
        let Ok(text) = std::fs::read_to_string(dir.join(f)) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        match &v["pad_token"] {
            serde_json::Value::String(s) => return Some(s.clone()),
            serde_json::Value::Object(o) => {
                if let Some(s) = o.get("content").and_then(|c| c.as_str()) {
                    return Some(s.to_string());
                }
            }
            _ => {}
        }
    }
    None
}

fn err(source: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Format(format!("{source}: {e}"))
}

impl Tokenizer {
    /// From `DIR/tokenizer.json`, else a BERT `DIR/vocab.txt`.
    pub fn open(dir: &Path) -> Result<Tokenizer, ModelError> {
        let tj = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let (inner, source) = if tj.is_file() {
            let source = tj.display().to_string();
            let t = tokenizers::Tokenizer::from_file(&tj).map_err(|e| err(&source, e))?;
            (t, source)
        } else if vocab.is_file() {
            let source = vocab.display().to_string();
            (
                bert_from_vocab(dir, &vocab).map_err(|e| err(&source, e))?,
                source,
            )
        } else {
            return Err(ModelError::Format(format!(
                "{}: no tokenizer.json (or BERT vocab.txt); save the model's tokenizer there with \
                 AutoTokenizer.from_pretrained(..).save_pretrained(DIR)",
                dir.display()
            )));
        };
        // the pad token: the tokenizer's own padding setting, the tokenizer
        // config's, or a conventional name
        let from_json = inner.get_padding().map(|p| p.pad_token.clone());
        let pad_token = from_json
            .into_iter()
            .chain(configured_pad(dir))
            .chain(["[PAD]", "<pad>", "<|endoftext|>"].map(str::to_string))
            .find(|t| inner.token_to_id(t).is_some());
        let pad = pad_token
            .as_deref()
            .and_then(|t| inner.token_to_id(t))
            .unwrap_or(0) as i64;
        Ok(Tokenizer {
            inner,
            configured: Default::default(),
            pad,
            source,
        })
    }

    /// The vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// One text's ids with the special tokens, cut at `max_len`.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<i64>, ModelError> {
        Ok(self.batch(&[text], max_len)?.ids)
    }

    /// A batch of texts: ids and attention mask, padded to the longest and
    /// truncated at `max_len` tokens (special tokens included).
    pub fn batch(&self, texts: &[&str], max_len: usize) -> Result<Batch, ModelError> {
        let mut cache = self.configured.lock().unwrap_or_else(|e| e.into_inner());
        let t = match cache.entry(max_len) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut t = self.inner.clone();
                t.with_truncation(Some(TruncationParams {
                    max_length: max_len,
                    ..Default::default()
                }))
                .map_err(|e| err(&self.source, e))?;
                let pad_token = t.id_to_token(self.pad as u32).unwrap_or_default();
                t.with_padding(Some(PaddingParams {
                    strategy: PaddingStrategy::BatchLongest,
                    pad_id: self.pad as u32,
                    pad_token,
                    ..Default::default()
                }));
                e.insert(t)
            }
        };
        let enc = t
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| err(&self.source, e))?;
        let len = enc.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(len * enc.len());
        let mut mask = Vec::with_capacity(len * enc.len());
        let mut truncated = 0;
        for e in &enc {
            ids.extend(e.get_ids().iter().map(|&v| v as i64));
            mask.extend(e.get_attention_mask().iter().map(|&v| v as i64));
            truncated += usize::from(!e.get_overflowing().is_empty());
        }
        Ok(Batch {
            ids,
            mask,
            batch: enc.len(),
            len,
            truncated,
        })
    }
}

/// BERT's pipeline over a `vocab.txt`, cased or not as `tokenizer_config.json` says.
fn bert_from_vocab(dir: &Path, vocab: &Path) -> tokenizers::Result<tokenizers::Tokenizer> {
    let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["do_lower_case"].as_bool())
        .unwrap_or(true);
    let wp = WordPiece::from_file(&vocab.display().to_string())
        .unk_token("[UNK]".into())
        .build()?;
    let id = |t: &str| -> tokenizers::Result<u32> {
        tokenizers::Model::token_to_id(&wp, t)
            .ok_or_else(|| format!("{t} is not in the vocabulary").into())
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let mut t = tokenizers::Tokenizer::new(wp);
    t.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab_dir(words: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("vocab.txt"), words.join("\n")).unwrap();
        d
    }

    #[test]
    fn bert_vocab_txt_pipeline_pads_and_truncates() {
        let d = vocab_dir(&[
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "no", "acute", "effusion", "##s", ".", "cafe",
        ]);
        let t = Tokenizer::open(d.path()).unwrap();
        assert_eq!(t.pad, 0);
        // lowercased, accents stripped, punctuation split, ## continuation
        assert_eq!(
            t.encode("No acute Effusions. Café", 32).unwrap(),
            vec![2, 4, 5, 6, 7, 8, 9, 3]
        );
        let b = t.batch(&["no effusion", "acute"], 32).unwrap();
        assert_eq!((b.batch, b.len, b.truncated), (2, 4, 0));
        assert_eq!(b.ids, vec![2, 4, 6, 3, 2, 5, 3, 0]);
        assert_eq!(b.mask, vec![1, 1, 1, 1, 1, 1, 1, 0]);
        // cut at 4 tokens, keeping [CLS] and [SEP], and counted
        let b = t.batch(&["no acute effusion", "no"], 4).unwrap();
        assert_eq!(b.ids, vec![2, 4, 5, 3, 2, 4, 3, 0]);
        assert_eq!(b.truncated, 1);
    }

    #[test]
    fn a_directory_without_a_tokenizer_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let e = Tokenizer::open(d.path()).err().unwrap().to_string();
        assert!(e.contains("no tokenizer.json"), "{e}");
        assert!(e.contains("save_pretrained"), "{e}");
    }
}
