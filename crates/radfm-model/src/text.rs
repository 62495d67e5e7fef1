//! Sentence embeddings from a BERT-family checkpoint directory: tokenise,
//! encode, pool (mean over tokens, or the `[CLS]` state) and optionally
//! L2-normalise, as sentence-transformers does.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor};

use crate::bert::{l2_normalize, mean_pool, Bert};
use crate::tokenizer::Tokenizer;
use crate::{hf, ModelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            _ => Err(format!("pooling {s:?}: expected mean or cls")),
        }
    }
}

pub struct TextEncoder {
    pub bert: Bert,
    pub tokenizer: Tokenizer,
    /// tokens per sentence, `[CLS]` and `[SEP]` included
    pub max_len: usize,
    device: Device,
}

impl TextEncoder {
    /// A `BertModel` directory with `tokenizer.json` (or `vocab.txt`). The
    /// sequence limit is sentence-transformers' `max_seq_length` when the
    /// directory has `sentence_bert_config.json`, else the position table size.
    pub fn open(dir: &Path, device: &Device) -> Result<TextEncoder, ModelError> {
        let bert = hf::load_bert(dir, device)?;
        let tokenizer = Tokenizer::open(dir)?;
        let st = dir.join("sentence_bert_config.json");
        let max_len = std::fs::read_to_string(&st)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|v| v as usize)
            .unwrap_or(bert.config.max_position_embeddings)
            .min(bert.config.max_position_embeddings);
        Ok(TextEncoder {
            bert,
            tokenizer,
            max_len,
            device: device.clone(),
        })
    }

    /// Embeddings of `texts` in order, `batch` sentences at a time.
    pub fn embed(
        &self,
        texts: &[&str],
        pooling: Pooling,
        normalize: bool,
        batch: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        Ok(self.embed_counted(texts, pooling, normalize, batch)?.0)
    }

    /// [`TextEncoder::embed`], with how many texts were cut at `max_len`.
    pub fn embed_counted(
        &self,
        texts: &[&str],
        pooling: Pooling,
        normalize: bool,
        batch: usize,
    ) -> Result<(Vec<Vec<f32>>, usize), ModelError> {
        // batches run on their own threads, one per core at a time
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
        let chunks: Vec<&[&str]> = texts.chunks(batch.max(1)).collect();
        let d = self.bert.config.hidden_size;
        let mut out = Vec::with_capacity(texts.len());
        let mut truncated = 0;
        for group in chunks.chunks(threads) {
            let mut work = Vec::with_capacity(group.len());
            for chunk in group {
                let b = self.tokenizer.batch(chunk, self.max_len)?;
                truncated += b.truncated;
                let (ids, mask) = b.tensors(&self.device);
                work.push((self.bert.clone(), ids, mask));
            }
            let results = crate::train::on_threads(work, |(bert, ids, mask)| {
                encode(&bert, ids, mask, pooling, normalize)
            });
            for r in results {
                out.extend(r?.chunks_exact(d).map(<[f32]>::to_vec));
            }
        }
        Ok((out, truncated))
    }
}

/// One tokenised batch through `bert`, pooled and optionally normalised, as
/// `[batch * hidden]` floats.
fn encode(
    bert: &Bert,
    ids: Tensor<2, Int>,
    mask: Tensor<2, Int>,
    pooling: Pooling,
    normalize: bool,
) -> Result<Vec<f32>, ModelError> {
    let [b, _] = ids.dims();
    let o = bert.forward(ids, mask.clone(), None)?;
    let d = bert.config.hidden_size;
    let pooled = match pooling {
        Pooling::Mean => mean_pool(o.last_hidden_state, mask),
        Pooling::Cls => o.last_hidden_state.narrow(1, 0, 1).reshape([b, d]),
    };
    let pooled = if normalize {
        l2_normalize(pooled)
    } else {
        pooled
    };
    pooled
        .into_data()
        .try_to_vec()
        .map_err(|e| ModelError::Format(format!("{e:?}")))
}
