//! The Vision Transformer: one implementation behind radfm's own presets, HF
//! `Dinov2Model`, HF `ViTModel` and the vision tower of HF `CLIPModel`.
//!
//! It covers 1 or 3 input channels, any patch size, register tokens,
//! learned or fixed 2-D sin-cos position embeddings (learned ones are resampled
//! bicubically, as Hugging Face does, when the input grid differs from the
//! trained one), LayerScale, and the three ways of finishing: a LayerNorm over
//! every token (DINOv2, ViT), a LayerNorm over the class token only (CLIP), and
//! an optional dense + tanh pooler (ViT).

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{activation, Device, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::interp::bicubic;
use crate::layers::{
    load_layer_norm, load_linear, new_layer_norm, new_linear, Act, Block, BlockNames, BlockShape,
};
use crate::weights::Weights;
use crate::ModelError;

/// Where a ViT's weights came from, which fixes their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// HF `Dinov2Model` names; radfm's own checkpoints use them too
    Dinov2,
    /// HF `ViTModel`
    Vit,
    /// the `vision_model.` tower of HF `CLIPModel`
    ClipVision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosEmbed {
    Learned,
    SinCos,
}

/// Everything that fixes a ViT's shape. Field names follow Hugging Face's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    pub flavour: Flavour,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Act,
    pub layer_norm_eps: f64,
    pub qkv_bias: bool,
    /// LayerScale initial value; None for no LayerScale
    pub layerscale_value: Option<f64>,
    pub num_register_tokens: usize,
    pub position_embedding: PosEmbed,
    /// CLIP's LayerNorm on the embeddings before the encoder
    pub pre_layernorm: bool,
    /// ViT's dense + tanh pooler over the class token
    pub pooler: bool,
    pub drop_path_rate: f64,
}

impl VitConfig {
    /// A radfm preset: `vit-tiny` (192, 12 layers, 3 heads), `vit-small` (384, 12, 6) or
    /// `vit-base` (768, 12, 12), with MLP ratio 4.
    pub fn preset(
        name: &str,
        image_size: usize,
        patch_size: usize,
        channels: usize,
    ) -> Option<VitConfig> {
        let (d, heads) = match name {
            "vit-tiny" => (192, 3),
            "vit-small" => (384, 6),
            "vit-base" => (768, 12),
            _ => return None,
        };
        Some(VitConfig {
            flavour: Flavour::Dinov2,
            image_size,
            patch_size,
            num_channels: channels,
            hidden_size: d,
            num_hidden_layers: 12,
            num_attention_heads: heads,
            intermediate_size: 4 * d,
            hidden_act: Act::Gelu,
            layer_norm_eps: 1e-6,
            qkv_bias: true,
            layerscale_value: None,
            num_register_tokens: 0,
            position_embedding: PosEmbed::SinCos,
            pre_layernorm: false,
            pooler: false,
            drop_path_rate: 0.0,
        })
    }

    /// From a Hugging Face `config.json` (Dinov2Model, ViTModel, or CLIPModel's `vision_config`).
    pub fn from_hf(cfg: &serde_json::Value) -> Result<VitConfig, ModelError> {
        let model_type = cfg["model_type"].as_str().unwrap_or("");
        let (flavour, c) = match model_type {
            "dinov2" | "dinov2_with_registers" => (Flavour::Dinov2, cfg),
            "vit" => (Flavour::Vit, cfg),
            "clip" => (Flavour::ClipVision, &cfg["vision_config"]),
            "clip_vision_model" => (Flavour::ClipVision, cfg),
            other => {
                return Err(ModelError::Config(format!(
                    "model_type {other:?} is not a supported image encoder (dinov2, vit, clip)"
                )))
            }
        };
        let section = if flavour == Flavour::ClipVision && model_type == "clip" {
            "vision_config."
        } else {
            ""
        };
        let us = |k: &str, default: Option<usize>| crate::hf::cfg_usize(c, section, k, default);
        let hidden = us("hidden_size", None)?;
        if c["use_swiglu_ffn"].as_bool() == Some(true) {
            return Err(ModelError::Config(
                "DINOv2 with a SwiGLU MLP (the giant models) is not supported".into(),
            ));
        }
        let intermediate = match flavour {
            Flavour::Dinov2 => (hidden as f64 * c["mlp_ratio"].as_f64().unwrap_or(4.0)) as usize,
            _ => us("intermediate_size", None)?,
        };
        let act = match c["hidden_act"].as_str() {
            Some(a) => Act::from_hf(a)?,
            None if flavour == Flavour::ClipVision => Act::QuickGelu,
            None => Act::Gelu,
        };
        Ok(VitConfig {
            flavour,
            image_size: us("image_size", Some(224))?,
            patch_size: us("patch_size", Some(16))?,
            num_channels: us("num_channels", Some(3))?,
            hidden_size: hidden,
            num_hidden_layers: us("num_hidden_layers", None)?,
            num_attention_heads: us("num_attention_heads", None)?,
            intermediate_size: intermediate,
            hidden_act: act,
            layer_norm_eps: c["layer_norm_eps"].as_f64().unwrap_or(match flavour {
                Flavour::Dinov2 => 1e-6,
                _ => 1e-12,
            }),
            qkv_bias: c["qkv_bias"].as_bool().unwrap_or(true),
            layerscale_value: (flavour == Flavour::Dinov2)
                .then(|| c["layerscale_value"].as_f64().unwrap_or(1.0)),
            num_register_tokens: c["num_register_tokens"].as_u64().unwrap_or(0) as usize,
            position_embedding: PosEmbed::Learned,
            pre_layernorm: flavour == Flavour::ClipVision,
            pooler: flavour == Flavour::Vit,
            drop_path_rate: c["drop_path_rate"].as_f64().unwrap_or(0.0),
        })
    }

    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    fn block_shape(&self) -> BlockShape {
        BlockShape {
            dim: self.hidden_size,
            heads: self.num_attention_heads,
            mlp: self.intermediate_size,
            act: self.hidden_act,
            eps: self.layer_norm_eps,
            qkv_bias: self.qkv_bias,
            layerscale: self.layerscale_value,
        }
    }
}

/// Checkpoint names per flavour.
struct Names {
    prefix: &'static str,
    cls: &'static str,
    registers: &'static str,
    pos: &'static str,
    patch: &'static str,
    pre_norm: &'static str,
    final_norm: &'static str,
}

impl Flavour {
    /// The prefix of the encoder's tensors in its checkpoint (`vision_model.` for CLIP).
    pub(crate) fn prefix(self) -> &'static str {
        self.names().prefix
    }

    fn names(self) -> Names {
        match self {
            Flavour::Dinov2 => Names {
                prefix: "",
                cls: "embeddings.cls_token",
                registers: "embeddings.register_tokens",
                pos: "embeddings.position_embeddings",
                patch: "embeddings.patch_embeddings.projection",
                pre_norm: "",
                final_norm: "layernorm",
            },
            Flavour::Vit => Names {
                prefix: "",
                cls: "embeddings.cls_token",
                registers: "",
                pos: "embeddings.position_embeddings",
                patch: "embeddings.patch_embeddings.projection",
                pre_norm: "",
                final_norm: "layernorm",
            },
            Flavour::ClipVision => Names {
                prefix: "vision_model.",
                cls: "embeddings.class_embedding",
                registers: "",
                pos: "embeddings.position_embedding.weight",
                patch: "embeddings.patch_embedding",
                pre_norm: "pre_layrnorm",
                final_norm: "post_layernorm",
            },
        }
    }

    pub(crate) fn block(self, p: &str, i: usize) -> BlockNames {
        let s = |x: &str| format!("{p}{x}");
        match self {
            Flavour::Dinov2 => {
                let l = format!("encoder.layer.{i}.");
                BlockNames {
                    norm1: s(&format!("{l}norm1")),
                    query: s(&format!("{l}attention.attention.query")),
                    key: s(&format!("{l}attention.attention.key")),
                    value: s(&format!("{l}attention.attention.value")),
                    out: s(&format!("{l}attention.output.dense")),
                    ls1: Some(s(&format!("{l}layer_scale1.lambda1"))),
                    norm2: s(&format!("{l}norm2")),
                    fc1: s(&format!("{l}mlp.fc1")),
                    fc2: s(&format!("{l}mlp.fc2")),
                    ls2: Some(s(&format!("{l}layer_scale2.lambda1"))),
                }
            }
            Flavour::Vit => {
                let l = format!("encoder.layer.{i}.");
                BlockNames {
                    norm1: s(&format!("{l}layernorm_before")),
                    query: s(&format!("{l}attention.attention.query")),
                    key: s(&format!("{l}attention.attention.key")),
                    value: s(&format!("{l}attention.attention.value")),
                    out: s(&format!("{l}attention.output.dense")),
                    ls1: None,
                    norm2: s(&format!("{l}layernorm_after")),
                    fc1: s(&format!("{l}intermediate.dense")),
                    fc2: s(&format!("{l}output.dense")),
                    ls2: None,
                }
            }
            Flavour::ClipVision => clip_block_names(p, i),
        }
    }
}

/// Names of one CLIP encoder layer (vision or text tower) under prefix `p`.
pub(crate) fn clip_block_names(p: &str, i: usize) -> BlockNames {
    let l = format!("{p}encoder.layers.{i}.");
    BlockNames {
        norm1: format!("{l}layer_norm1"),
        query: format!("{l}self_attn.q_proj"),
        key: format!("{l}self_attn.k_proj"),
        value: format!("{l}self_attn.v_proj"),
        out: format!("{l}self_attn.out_proj"),
        ls1: None,
        norm2: format!("{l}layer_norm2"),
        fc1: format!("{l}mlp.fc1"),
        fc2: format!("{l}mlp.fc2"),
        ls2: None,
    }
}

/// The encoder's two outputs.
pub struct VitOutput {
    /// `[batch, tokens, dim]`: class token, registers, then patches in row-major order
    pub last_hidden_state: Tensor<3>,
    /// `[batch, dim]`: what the checkpoint's own `pooler_output` is
    pub pooled: Tensor<2>,
}

#[derive(Module, Debug)]
pub struct Vit {
    /// the patch projection as a linear map of flattened `C x p x p` patches
    pub patch: Linear,
    pub cls: Param<Tensor<3>>,
    pub registers: Option<Param<Tensor<3>>>,
    /// learned `[1, 1 + grid^2, dim]`; None with sin-cos embeddings
    pub pos: Option<Param<Tensor<3>>>,
    pub pre_norm: Option<LayerNorm>,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    pub pooler: Option<Linear>,
    #[module(skip)]
    pub config: VitConfig,
}

/// Fixed 2-D sin-cos position embeddings for a `gh` x `gw` grid (MAE's recipe):
/// half the channels encode the row, half the column; the class token gets zeros.
pub fn sincos_2d(dim: usize, gh: usize, gw: usize) -> Vec<f32> {
    assert!(
        dim % 4 == 0,
        "sin-cos position embeddings need a dimension divisible by 4"
    );
    let q = dim / 4;
    let omega: Vec<f64> = (0..q)
        .map(|i| 1.0 / 10000f64.powf(i as f64 / q as f64))
        .collect();
    let mut out = vec![0f32; (1 + gh * gw) * dim];
    for y in 0..gh {
        for x in 0..gw {
            let row = &mut out[(1 + y * gw + x) * dim..(2 + y * gw + x) * dim];
            // MAE puts the width coordinate first, then the height
            for (k, coord) in [x as f64, y as f64].into_iter().enumerate() {
                for (i, w) in omega.iter().enumerate() {
                    row[k * 2 * q + i] = (coord * w).sin() as f32;
                    row[k * 2 * q + q + i] = (coord * w).cos() as f32;
                }
            }
        }
    }
    out
}

impl Vit {
    /// A freshly initialised ViT.
    pub fn new(config: &VitConfig, device: &Device) -> Vit {
        let c = config;
        let d = c.hidden_size;
        let n = c.grid() * c.grid();
        let normal = |shape: [usize; 3]| {
            Param::from_tensor(Tensor::<3>::random(
                shape,
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        Vit {
            patch: new_linear(
                c.num_channels * c.patch_size * c.patch_size,
                d,
                true,
                device,
            ),
            cls: normal([1, 1, d]),
            registers: (c.num_register_tokens > 0).then(|| normal([1, c.num_register_tokens, d])),
            pos: (c.position_embedding == PosEmbed::Learned).then(|| normal([1, 1 + n, d])),
            pre_norm: c
                .pre_layernorm
                .then(|| new_layer_norm(d, c.layer_norm_eps, device)),
            blocks: (0..c.num_hidden_layers)
                .map(|_| Block::new(c.block_shape(), device))
                .collect(),
            norm: new_layer_norm(d, c.layer_norm_eps, device),
            pooler: c.pooler.then(|| new_linear(d, d, true, device)),
            config: c.clone(),
        }
    }

    /// Load from checkpoint tensors named as `config.flavour` names them.
    pub fn load(config: &VitConfig, w: &mut Weights, device: &Device) -> Result<Vit, ModelError> {
        let c = config;
        let d = c.hidden_size;
        let n = c.grid() * c.grid();
        let names = c.flavour.names();
        let p = names.prefix;
        let k = |s: &str| format!("{p}{s}");
        let cp = c.num_channels * c.patch_size * c.patch_size;
        // a convolution weight [d, C, p, p] is a linear map of flattened patches
        let patch_w = w
            .tensor(&k(&format!("{}.weight", names.patch)), [d, cp], device)?
            .transpose();
        let patch_b = if c.flavour == Flavour::ClipVision {
            None
        } else {
            Some(Param::from_tensor(w.tensor(
                &k(&format!("{}.bias", names.patch)),
                [d],
                device,
            )?))
        };
        let registers = if c.num_register_tokens > 0 {
            Some(Param::from_tensor(w.tensor(
                &k(names.registers),
                [1, c.num_register_tokens, d],
                device,
            )?))
        } else {
            None
        };
        let pos = if c.position_embedding == PosEmbed::Learned {
            Some(Param::from_tensor(w.tensor(
                &k(names.pos),
                [1, 1 + n, d],
                device,
            )?))
        } else {
            None
        };
        Ok(Vit {
            patch: Linear {
                weight: Param::from_tensor(patch_w),
                bias: patch_b,
            },
            cls: Param::from_tensor(w.tensor(&k(names.cls), [1, 1, d], device)?),
            registers,
            pos,
            pre_norm: if c.pre_layernorm {
                Some(load_layer_norm(
                    w,
                    &k(names.pre_norm),
                    d,
                    c.layer_norm_eps,
                    device,
                )?)
            } else {
                None
            },
            blocks: (0..c.num_hidden_layers)
                .map(|i| Block::load(w, &c.flavour.block(p, i), c.block_shape(), device))
                .collect::<Result<_, _>>()?,
            norm: load_layer_norm(w, &k(names.final_norm), d, c.layer_norm_eps, device)?,
            pooler: if c.pooler {
                Some(load_linear(w, &k("pooler.dense"), d, d, true, device)?)
            } else {
                None
            },
            config: c.clone(),
        })
    }

    /// Position embeddings for a `gh` x `gw` grid: the learned ones as they
    /// are at the trained size (so they train), resampled bicubically otherwise.
    pub fn position(&self, gh: usize, gw: usize, device: &Device) -> Tensor<3> {
        let d = self.config.hidden_size;
        let g = self.config.grid();
        match &self.pos {
            Some(p) if gh == g && gw == g => p.val(),
            Some(p) => {
                let all: Vec<f32> = p
                    .val()
                    .into_data()
                    .try_to_vec()
                    .expect("f32 position embeddings");
                let (cls, patches) = all.split_at(d);
                // [g*g, d] -> channel-major [d, g, g]
                let mut planes = vec![0f32; d * g * g];
                for (t, row) in patches.chunks_exact(d).enumerate() {
                    for (ch, v) in row.iter().enumerate() {
                        planes[ch * g * g + t] = *v;
                    }
                }
                let r = bicubic(&planes, d, (g, g), (gh, gw));
                let mut out = cls.to_vec();
                out.resize(d * (1 + gh * gw), 0.0);
                for t in 0..gh * gw {
                    for ch in 0..d {
                        out[d + t * d + ch] = r[ch * gh * gw + t];
                    }
                }
                Tensor::from_data(TensorData::new(out, [1, 1 + gh * gw, d]), device)
            }
            None => Tensor::from_data(
                TensorData::new(sincos_2d(d, gh, gw), [1, 1 + gh * gw, d]),
                device,
            ),
        }
    }

    /// Patch tokens of `x` (`[batch, channels, height, width]`), with the
    /// grid size.
    pub fn patchify(&self, x: Tensor<4>) -> Result<(Tensor<3>, usize, usize), ModelError> {
        let [b, c, h, w] = x.dims();
        let p = self.config.patch_size;
        if c != self.config.num_channels {
            return Err(ModelError::Shape(format!(
                "input has {c} channels, the model expects {}",
                self.config.num_channels
            )));
        }
        if h % p != 0 || w % p != 0 {
            return Err(ModelError::Shape(format!(
                "input is {h}x{w}, not a multiple of the patch size {p}"
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let t = x
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, gh * gw, c * p * p]);
        Ok((t, gh, gw))
    }

    /// Embeddings of `x`: class token, registers and patch tokens, with
    /// position embeddings added (registers get none).
    pub fn embed(&self, x: Tensor<4>) -> Result<Tensor<3>, ModelError> {
        let device = x.device();
        let b = x.dims()[0];
        let d = self.config.hidden_size;
        let (patches, gh, gw) = self.patchify(x)?;
        let t = self.patch.forward(patches);
        let t = Tensor::cat(vec![self.cls.val().expand([b, 1, d]), t], 1);
        let t = t + self.position(gh, gw, &device);
        let t = match &self.registers {
            Some(r) => {
                let n = t.dims()[1];
                let nr = r.val().dims()[1];
                Tensor::cat(
                    vec![
                        t.clone().narrow(1, 0, 1),
                        r.val().expand([b, nr, d]),
                        t.narrow(1, 1, n - 1),
                    ],
                    1,
                )
            }
            None => t,
        };
        Ok(match &self.pre_norm {
            Some(ln) => ln.forward(t),
            None => t,
        })
    }

    /// Run the encoder on tokens (from [`Vit::embed`], or a masked subset of them).
    pub fn encode(&self, mut t: Tensor<3>) -> Tensor<3> {
        for (i, blk) in self.blocks.iter().enumerate() {
            crate::lora::dropout_block(i);
            t = blk.forward(t, None, false);
        }
        t
    }

    /// [`Vit::encode`] for training: with `drop_path_rate` > 0, each block's
    /// two branches are dropped per sample with probability rising linearly
    /// from 0 at the first block to the rate at the last (stochastic depth).
    /// The draws come from `rng`, so a run stays a function of its seed.
    pub fn encode_train(&self, mut t: Tensor<3>, rng: &mut ChaCha8Rng) -> Tensor<3> {
        if self.config.drop_path_rate <= 0.0 {
            return self.encode(t);
        }
        let masks = self.drop_masks(t.dims()[0], &t.device(), rng);
        for (i, (blk, drop)) in self.blocks.iter().zip(masks).enumerate() {
            crate::lora::dropout_block(i);
            t = blk.forward_dropped(t, None, false, drop);
        }
        t
    }

    /// The drop-path masks of [`Vit::encode_train`] for a batch of `b`, block
    /// by block (attention branch, MLP branch), drawn from `rng` in that
    /// order; none at all when the rate is 0.
    pub fn drop_masks(
        &self,
        b: usize,
        device: &Device,
        rng: &mut ChaCha8Rng,
    ) -> Vec<[Option<Tensor<3>>; 2]> {
        let rate = self.config.drop_path_rate;
        let layers = self.blocks.len();
        (0..layers)
            .map(|i| {
                let p = match rate {
                    r if r <= 0.0 => 0.0,
                    r if layers > 1 => r * i as f64 / (layers - 1) as f64,
                    r => r,
                };
                let mut mask = || -> Option<Tensor<3>> {
                    (p > 0.0).then(|| {
                        let keep = 1.0 - p;
                        let v: Vec<f32> = (0..b)
                            .map(|_| {
                                if rng.gen_bool(keep) {
                                    (1.0 / keep) as f32
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        Tensor::<3>::from_data(TensorData::new(v, [b, 1, 1]), device)
                    })
                };
                [mask(), mask()]
            })
            .collect()
    }

    pub fn forward(&self, x: Tensor<4>) -> Result<VitOutput, ModelError> {
        let t = self.encode(self.embed(x)?);
        Ok(self.finish(t))
    }

    /// [`Vit::forward`] with the batch cut into `parts` (see
    /// [`crate::train::split_rows`]) encoded at once on their own threads, then
    /// joined in order. Each sample's output does not depend on the cut.
    pub fn forward_parts(&self, x: Tensor<4>, parts: usize) -> Result<VitOutput, ModelError> {
        let ranges = crate::train::split_rows(x.dims()[0], parts);
        if ranges.len() < 2 {
            return self.forward(x);
        }
        let work: Vec<(Vit, Tensor<4>)> = ranges
            .into_iter()
            .map(|r| (self.clone(), x.clone().slice(r)))
            .collect();
        let outs = crate::train::on_threads(work, |(vit, x)| vit.forward(x));
        let (mut hidden, mut pooled) = (Vec::new(), Vec::new());
        for o in outs {
            let o = o?;
            hidden.push(o.last_hidden_state);
            pooled.push(o.pooled);
        }
        Ok(VitOutput {
            last_hidden_state: Tensor::cat(hidden, 0),
            pooled: Tensor::cat(pooled, 0),
        })
    }

    /// [`Vit::forward`] for training, with drop-path drawn from `rng`.
    pub fn forward_train(
        &self,
        x: Tensor<4>,
        rng: &mut ChaCha8Rng,
    ) -> Result<VitOutput, ModelError> {
        let t = self.encode_train(self.embed(x)?, rng);
        Ok(self.finish(t))
    }

    /// The final norm and pooling of encoded tokens.
    pub(crate) fn finish(&self, t: Tensor<3>) -> VitOutput {
        crate::lora::dropout_block(self.blocks.len());
        let [b, _, d] = t.dims();
        let (last, cls) = if self.config.flavour == Flavour::ClipVision {
            // CLIP: last_hidden_state is the raw encoder output; only the class token is normed
            let cls = self.norm.forward(t.clone().narrow(1, 0, 1).reshape([b, d]));
            (t, cls)
        } else {
            let last = self.norm.forward(t);
            let cls = last.clone().narrow(1, 0, 1).reshape([b, d]);
            (last, cls)
        };
        let pooled = match &self.pooler {
            Some(p) => activation::tanh(crate::lora::linear(p, cls)),
            None => cls,
        };
        VitOutput {
            last_hidden_state: last,
            pooled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tiny(rate: f64, layers: usize) -> Vit {
        let mut c = VitConfig::preset("vit-tiny", 16, 8, 1).unwrap();
        c.hidden_size = 16;
        c.num_attention_heads = 2;
        c.intermediate_size = 32;
        c.num_hidden_layers = layers;
        c.drop_path_rate = rate;
        Vit::new(&c, &crate::device("cpu").unwrap())
    }

    fn rows(t: Tensor<3>) -> Vec<Vec<f32>> {
        let [b, ..] = t.dims();
        let v: Vec<f32> = t.into_data().try_to_vec::<f32>().unwrap();
        v.chunks_exact(v.len() / b).map(<[f32]>::to_vec).collect()
    }

    #[test]
    fn forward_in_parts_equals_one_forward() {
        let device = crate::device("cpu").unwrap();
        let vit = tiny(0.0, 2);
        let x = Tensor::<4>::random([5, 1, 16, 16], burn::tensor::Distribution::Default, &device);
        let whole = vit.forward(x.clone()).unwrap();
        let split = vit.forward_parts(x, 3).unwrap();
        assert_eq!(split.last_hidden_state.dims(), [5, 5, 16]);
        let flat = |t: Tensor<3>| rows(t).concat();
        let (a, b) = (flat(whole.last_hidden_state), flat(split.last_hidden_state));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(worst < 1e-5, "parts differ from one pass by {worst}");
        let (p, q) = (
            whole.pooled.into_data().try_to_vec::<f32>().unwrap(),
            split.pooled.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(p.len(), 5 * 16);
        assert!(p.iter().zip(&q).all(|(p, q)| (p - q).abs() < 1e-5));
    }

    #[test]
    fn drop_path_off_is_plain_encoding_and_on_drops_whole_samples() {
        let device = crate::device("cpu").unwrap();
        let t = Tensor::<3>::random([64, 5, 16], burn::tensor::Distribution::Default, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let off = tiny(0.0, 2);
        assert_eq!(
            rows(off.encode_train(t.clone(), &mut rng)),
            rows(off.encode(t.clone()))
        );
        // one block at rate 0.5: both branches dropped (output = input) for about 1/4 of samples
        let on = tiny(0.5, 1);
        let (x, y) = (rows(t.clone()), rows(on.encode_train(t.clone(), &mut rng)));
        let same = x.iter().zip(&y).filter(|(a, b)| a == b).count();
        assert!((8..=26).contains(&same), "{same} of 64 untouched");
        // and the draws are the generator's: the same seed drops the same samples
        let again = rows(on.encode_train(t.clone(), &mut ChaCha8Rng::seed_from_u64(9)));
        let twice = rows(on.encode_train(t, &mut ChaCha8Rng::seed_from_u64(9)));
        assert_eq!(again, twice);
    }
}
