//! The BERT text encoder (HF `BertModel` names and semantics): post-norm
//! blocks, word + position + token-type embeddings, an optional pooler, and
//! the mean pooling sentence-transformers uses.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{activation, Bool, Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::layers::{load_layer_norm, load_linear, Act, Mlp, SelfAttention};
use crate::weights::Weights;
use crate::ModelError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Act,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

impl BertConfig {
    pub fn from_hf(c: &serde_json::Value) -> Result<BertConfig, ModelError> {
        let mt = c["model_type"].as_str().unwrap_or("");
        if mt != "bert" {
            return Err(ModelError::Config(format!(
                "model_type {mt:?} is not a supported text encoder (bert)"
            )));
        }
        if c["position_embedding_type"]
            .as_str()
            .is_some_and(|p| p != "absolute")
        {
            return Err(ModelError::Config(
                "only absolute position embeddings are supported".into(),
            ));
        }
        let us = |k: &str| crate::hf::cfg_usize(c, "", k, None);
        Ok(BertConfig {
            vocab_size: us("vocab_size")?,
            hidden_size: us("hidden_size")?,
            num_hidden_layers: us("num_hidden_layers")?,
            num_attention_heads: us("num_attention_heads")?,
            intermediate_size: us("intermediate_size")?,
            hidden_act: Act::from_hf(c["hidden_act"].as_str().unwrap_or("gelu"))?,
            max_position_embeddings: us("max_position_embeddings")?,
            type_vocab_size: c["type_vocab_size"].as_u64().unwrap_or(2) as usize,
            layer_norm_eps: c["layer_norm_eps"].as_f64().unwrap_or(1e-12),
        })
    }
}

#[derive(Module, Debug)]
pub struct BertLayer {
    pub attn: SelfAttention,
    pub attn_norm: LayerNorm,
    pub mlp: Mlp,
    pub out_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Bert {
    pub word: Embedding,
    pub position: Embedding,
    pub token_type: Embedding,
    pub emb_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
    pub pooler: Option<Linear>,
    #[module(skip)]
    pub config: BertConfig,
}

fn load_embedding(
    w: &mut Weights,
    name: &str,
    n: usize,
    d: usize,
    device: &Device,
) -> Result<Embedding, ModelError> {
    Ok(Embedding {
        weight: Param::from_tensor(w.tensor(name, [n, d], device)?),
    })
}

pub struct BertOutput {
    pub last_hidden_state: Tensor<3>,
    /// dense + tanh over the first token, when the checkpoint has a pooler
    pub pooled: Option<Tensor<2>>,
}

impl Bert {
    /// Load from HF `BertModel` names; a `bert.` prefix (as in task heads) is accepted.
    pub fn load(config: &BertConfig, w: &mut Weights, device: &Device) -> Result<Bert, ModelError> {
        let c = config;
        let d = c.hidden_size;
        let p = if w.contains("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let eps = c.layer_norm_eps;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = format!("{p}encoder.layer.{i}.");
                Ok(BertLayer {
                    attn: SelfAttention {
                        query: load_linear(
                            w,
                            &format!("{l}attention.self.query"),
                            d,
                            d,
                            true,
                            device,
                        )?,
                        key: load_linear(w, &format!("{l}attention.self.key"), d, d, true, device)?,
                        value: load_linear(
                            w,
                            &format!("{l}attention.self.value"),
                            d,
                            d,
                            true,
                            device,
                        )?,
                        out: load_linear(
                            w,
                            &format!("{l}attention.output.dense"),
                            d,
                            d,
                            true,
                            device,
                        )?,
                        heads: c.num_attention_heads,
                    },
                    attn_norm: load_layer_norm(
                        w,
                        &format!("{l}attention.output.LayerNorm"),
                        d,
                        eps,
                        device,
                    )?,
                    mlp: Mlp {
                        fc1: load_linear(
                            w,
                            &format!("{l}intermediate.dense"),
                            d,
                            c.intermediate_size,
                            true,
                            device,
                        )?,
                        fc2: load_linear(
                            w,
                            &format!("{l}output.dense"),
                            c.intermediate_size,
                            d,
                            true,
                            device,
                        )?,
                        act: c.hidden_act,
                    },
                    out_norm: load_layer_norm(w, &format!("{l}output.LayerNorm"), d, eps, device)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Bert {
            word: load_embedding(
                w,
                &format!("{p}embeddings.word_embeddings.weight"),
                c.vocab_size,
                d,
                device,
            )?,
            position: load_embedding(
                w,
                &format!("{p}embeddings.position_embeddings.weight"),
                c.max_position_embeddings,
                d,
                device,
            )?,
            token_type: load_embedding(
                w,
                &format!("{p}embeddings.token_type_embeddings.weight"),
                c.type_vocab_size,
                d,
                device,
            )?,
            emb_norm: load_layer_norm(w, &format!("{p}embeddings.LayerNorm"), d, eps, device)?,
            layers,
            pooler: if w.contains(&format!("{p}pooler.dense.weight")) {
                Some(load_linear(
                    w,
                    &format!("{p}pooler.dense"),
                    d,
                    d,
                    true,
                    device,
                )?)
            } else {
                None
            },
            config: c.clone(),
        })
    }

    /// `ids`, `attention_mask` (1 = token, 0 = padding) and optional
    /// `token_type_ids`, all `[batch, seq]`.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Result<BertOutput, ModelError> {
        let device = ids.device();
        let [b, n] = ids.dims();
        if n > self.config.max_position_embeddings {
            return Err(ModelError::Shape(format!(
                "sequence of {n} tokens exceeds max_position_embeddings {}",
                self.config.max_position_embeddings
            )));
        }
        let positions = Tensor::<1, Int>::arange(0..n as i64, &device)
            .reshape([1, n])
            .expand([b, n]);
        let types = token_type_ids.unwrap_or_else(|| Tensor::<2, Int>::zeros([b, n], &device));
        let x = self.word.forward(ids)
            + self.position.forward(positions)
            + self.token_type.forward(types);
        let mut x = self.emb_norm.forward(x);
        let pad: Tensor<2, Bool> = attention_mask.equal_elem(0);
        for l in &self.layers {
            let a = l.attn.forward(x.clone(), Some(&pad), false);
            x = l.attn_norm.forward(x + a);
            let m = l.mlp.forward(x.clone());
            x = l.out_norm.forward(x + m);
        }
        let d = self.config.hidden_size;
        let pooled = self
            .pooler
            .as_ref()
            .map(|p| activation::tanh(p.forward(x.clone().narrow(1, 0, 1).reshape([b, d]))));
        Ok(BertOutput {
            last_hidden_state: x,
            pooled,
        })
    }
}

/// Mean of the token states over the non-padding tokens: `[batch, dim]`.
pub fn mean_pool(last: Tensor<3>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
    let [b, n, d] = last.dims();
    let m = attention_mask.float().reshape([b, n, 1]);
    let summed = (last * m.clone()).sum_dim(1).reshape([b, d]);
    let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
    summed / count
}

/// Rows scaled to unit L2 norm (with PyTorch's eps of 1e-12 on the norm).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}
