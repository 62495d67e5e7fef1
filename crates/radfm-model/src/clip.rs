//! CLIP: a ViT image tower, a causal text transformer, linear projections to
//! a shared space, a learnable logit scale and the symmetric InfoNCE loss.
//! Names and semantics follow HF `CLIPModel`.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{activation, Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::bert::l2_normalize;
use crate::layers::{load_layer_norm, load_linear, Act, Block, BlockShape};
use crate::vit::{clip_block_names, Vit, VitConfig};
use crate::weights::Weights;
use crate::ModelError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Act,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    /// the end-of-text token whose state is pooled; 2 means the legacy rule
    /// (the position of the largest id), as Hugging Face keeps it
    pub eos_token_id: i64,
}

#[derive(Module, Debug)]
pub struct ClipText {
    pub token: Embedding,
    pub position: Param<Tensor<2>>,
    pub blocks: Vec<Block>,
    pub final_norm: LayerNorm,
    #[module(skip)]
    pub config: ClipTextConfig,
}

impl ClipText {
    pub fn load(
        c: &ClipTextConfig,
        w: &mut Weights,
        device: &Device,
    ) -> Result<ClipText, ModelError> {
        let d = c.hidden_size;
        let shape = BlockShape {
            dim: d,
            heads: c.num_attention_heads,
            mlp: c.intermediate_size,
            act: c.hidden_act,
            eps: c.layer_norm_eps,
            qkv_bias: true,
            layerscale: None,
        };
        Ok(ClipText {
            token: Embedding {
                weight: Param::from_tensor(w.tensor(
                    "text_model.embeddings.token_embedding.weight",
                    [c.vocab_size, d],
                    device,
                )?),
            },
            position: Param::from_tensor(w.tensor(
                "text_model.embeddings.position_embedding.weight",
                [c.max_position_embeddings, d],
                device,
            )?),
            blocks: (0..c.num_hidden_layers)
                .map(|i| Block::load(w, &clip_block_names("text_model.", i), shape, device))
                .collect::<Result<_, _>>()?,
            final_norm: load_layer_norm(
                w,
                "text_model.final_layer_norm",
                d,
                c.layer_norm_eps,
                device,
            )?,
            config: c.clone(),
        })
    }

    /// Token states after the final LayerNorm, and the pooled (end-of-text) state.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
    ) -> Result<(Tensor<3>, Tensor<2>), ModelError> {
        let [b, n] = ids.dims();
        let d = self.config.hidden_size;
        if n > self.config.max_position_embeddings {
            return Err(ModelError::Shape(format!(
                "sequence of {n} tokens exceeds max_position_embeddings {}",
                self.config.max_position_embeddings
            )));
        }
        // the pooled position per row, found on the host
        let host: Vec<i64> = ids
            .to_data()
            .convert::<i64>()
            .try_to_vec()
            .expect("int ids");
        let eos: Vec<i64> = host
            .chunks_exact(n)
            .map(|row| {
                if self.config.eos_token_id == 2 {
                    // first maximum, as torch.argmax
                    let mut best = 0;
                    for (i, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = i;
                        }
                    }
                    best as i64
                } else {
                    row.iter()
                        .position(|&v| v == self.config.eos_token_id)
                        .unwrap_or(n - 1) as i64
                }
            })
            .collect();
        let device = ids.device();
        let pos = self.position.val().narrow(0, 0, n).unsqueeze::<3>();
        let mut x = self.token.forward(ids) + pos;
        let pad: Tensor<2, Bool> = attention_mask.equal_elem(0);
        for blk in &self.blocks {
            x = blk.forward(x, Some(&pad), true);
        }
        let x = self.final_norm.forward(x);
        let index = Tensor::<1, Int>::from_data(TensorData::new(eos, [b]), &device)
            .reshape([b, 1, 1])
            .expand([b, 1, d]);
        let pooled = x.clone().gather(1, index).reshape([b, d]);
        Ok((x, pooled))
    }
}

#[derive(Module, Debug)]
pub struct Clip {
    pub vision: Vit,
    pub text: ClipText,
    pub visual_projection: Linear,
    pub text_projection: Linear,
    /// log of the inverse temperature
    pub logit_scale: Param<Tensor<1>>,
}

pub struct ClipOutput {
    pub image_embeds: Tensor<2>,
    pub text_embeds: Tensor<2>,
    /// `[images, texts]`
    pub logits_per_image: Tensor<2>,
}

impl Clip {
    pub fn load(
        cfg: &serde_json::Value,
        w: &mut Weights,
        device: &Device,
    ) -> Result<Clip, ModelError> {
        let vc = VitConfig::from_hf(cfg)?;
        let t = &cfg["text_config"];
        let us = |k: &str| crate::hf::cfg_usize(t, "text_config.", k, None);
        let tc = ClipTextConfig {
            vocab_size: us("vocab_size")?,
            hidden_size: us("hidden_size")?,
            num_hidden_layers: us("num_hidden_layers")?,
            num_attention_heads: us("num_attention_heads")?,
            intermediate_size: us("intermediate_size")?,
            hidden_act: Act::from_hf(t["hidden_act"].as_str().unwrap_or("quick_gelu"))?,
            max_position_embeddings: us("max_position_embeddings")?,
            layer_norm_eps: t["layer_norm_eps"].as_f64().unwrap_or(1e-5),
            eos_token_id: t["eos_token_id"].as_i64().unwrap_or(2),
        };
        let proj = cfg["projection_dim"].as_u64().unwrap_or(512) as usize;
        Ok(Clip {
            vision: Vit::load(&vc, w, device)?,
            visual_projection: load_linear(
                w,
                "visual_projection",
                vc.hidden_size,
                proj,
                false,
                device,
            )?,
            text_projection: load_linear(
                w,
                "text_projection",
                tc.hidden_size,
                proj,
                false,
                device,
            )?,
            text: ClipText::load(&tc, w, device)?,
            logit_scale: Param::from_tensor(w.tensor("logit_scale", [1], device)?),
        })
    }

    pub fn embed_images(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        let out = self.vision.forward(x)?;
        Ok(l2_normalize(self.visual_projection.forward(out.pooled)))
    }

    pub fn embed_texts(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
    ) -> Result<Tensor<2>, ModelError> {
        let (_, pooled) = self.text.forward(ids, mask)?;
        Ok(l2_normalize(self.text_projection.forward(pooled)))
    }

    pub fn forward(
        &self,
        x: Tensor<4>,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
    ) -> Result<ClipOutput, ModelError> {
        let image_embeds = self.embed_images(x)?;
        let text_embeds = self.embed_texts(ids, mask)?;
        let scale = self.logit_scale.val().exp().unsqueeze::<2>();
        let logits_per_image = image_embeds.clone().matmul(text_embeds.clone().transpose()) * scale;
        Ok(ClipOutput {
            image_embeds,
            text_embeds,
            logits_per_image,
        })
    }
}

/// Symmetric InfoNCE over a batch of matched pairs: the mean of the image-to-text
/// and text-to-image cross-entropies, with the diagonal as the targets.
pub fn clip_loss(logits_per_image: Tensor<2>) -> Tensor<1> {
    let [n, _] = logits_per_image.dims();
    let device = logits_per_image.device();
    let eye = Tensor::<2>::eye(n, &device);
    let ce = |l: Tensor<2>| -> Tensor<1> {
        let lp = activation::log_softmax(l, 1);
        (lp * eye.clone()).sum().neg() / n as f64
    };
    (ce(logits_per_image.clone()) + ce(logits_per_image.transpose())) / 2.0
}
