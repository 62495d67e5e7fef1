//! The building blocks shared by every encoder: linear and LayerNorm layers
//! loaded from Hugging Face names, activations, multi-head self-attention and
//! the MLP.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::lora::linear;
use crate::weights::Weights;
use crate::ModelError;

/// Activation functions, named as Hugging Face's `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// exact GELU (erf)
    Gelu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`)
    GeluTanh,
    /// x * sigmoid(1.702 x), as in OpenAI CLIP
    QuickGelu,
    Relu,
    Silu,
}

impl Act {
    pub fn from_hf(name: &str) -> Result<Act, ModelError> {
        Ok(match name {
            "gelu" => Act::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "quick_gelu" => Act::QuickGelu,
            "relu" => Act::Relu,
            "silu" | "swish" => Act::Silu,
            other => {
                return Err(ModelError::Config(format!(
                    "hidden_act {other:?} is not supported (gelu, gelu_new, quick_gelu, relu, silu)"
                )))
            }
        })
    }

    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Gelu => activation::gelu(x),
            Act::GeluTanh => activation::gelu_approximate(x),
            Act::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
            Act::Relu => activation::relu(x),
            Act::Silu => activation::silu(x),
        }
    }
}

/// A fresh linear layer (training from scratch).
pub fn new_linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(bias).init(device)
}

/// A linear layer from `prefix.weight` (`[out, in]`, PyTorch layout) and, when
/// `bias`, `prefix.bias`.
pub fn load_linear(
    w: &mut Weights,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &Device,
) -> Result<Linear, ModelError> {
    let weight = w
        .tensor(&format!("{prefix}.weight"), [d_out, d_in], device)?
        .transpose();
    let bias = if bias {
        Some(Param::from_tensor(w.tensor(
            &format!("{prefix}.bias"),
            [d_out],
            device,
        )?))
    } else {
        None
    };
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias,
    })
}

pub fn new_layer_norm(d: usize, eps: f64, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(eps).init(device)
}

/// A LayerNorm from `prefix.weight` and `prefix.bias`.
pub fn load_layer_norm(
    w: &mut Weights,
    prefix: &str,
    d: usize,
    eps: f64,
    device: &Device,
) -> Result<LayerNorm, ModelError> {
    let mut ln = new_layer_norm(d, eps, device);
    ln.gamma = Param::from_tensor(w.tensor(&format!("{prefix}.weight"), [d], device)?);
    ln.beta = Some(Param::from_tensor(w.tensor(
        &format!("{prefix}.bias"),
        [d],
        device,
    )?));
    Ok(ln)
}

/// Multi-head self-attention with separate query, key, value and output
/// projections (the layout every supported checkpoint uses).
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub out: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl SelfAttention {
    pub fn new(d: usize, heads: usize, qkv_bias: bool, device: &Device) -> SelfAttention {
        SelfAttention {
            query: new_linear(d, d, qkv_bias, device),
            key: new_linear(d, d, qkv_bias, device),
            value: new_linear(d, d, qkv_bias, device),
            out: new_linear(d, d, true, device),
            heads,
        }
    }

    /// `x`: `[batch, tokens, dim]`. `mask`: `[batch, tokens]` with true for
    /// keys to ignore (padding). `causal`: each query sees only earlier keys.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2, Bool>>, causal: bool) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let hd = d / self.heads;
        let split = |t: Tensor<3>| t.reshape([b, n, self.heads, hd]).swap_dims(1, 2);
        let q = split(linear(&self.query, x.clone()));
        let k = split(linear(&self.key, x.clone()));
        let v = split(linear(&self.value, x));
        let mask4 = mask.map(|m| {
            m.clone()
                .reshape([b, 1, 1, n])
                .expand([b, self.heads, n, n])
        });
        let ctx = attention(
            q,
            k,
            v,
            mask4,
            None,
            AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: causal,
            },
        );
        linear(&self.out, ctx.swap_dims(1, 2).reshape([b, n, d]))
    }
}

/// The two-layer MLP of a transformer block.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub act: Act,
}

impl Mlp {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(&self.fc2, self.act.apply(linear(&self.fc1, x)))
    }
}

/// A pre-norm transformer block (ViT, DINOv2, CLIP): `x + ls1 * attn(norm1(x))`,
/// then `x + ls2 * mlp(norm2(x))`, with optional LayerScale vectors.
#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: SelfAttention,
    pub ls1: Option<Param<Tensor<1>>>,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub ls2: Option<Param<Tensor<1>>>,
}

/// The checkpoint names of one pre-norm block's tensors.
pub struct BlockNames {
    pub norm1: String,
    pub query: String,
    pub key: String,
    pub value: String,
    pub out: String,
    pub ls1: Option<String>,
    pub norm2: String,
    pub fc1: String,
    pub fc2: String,
    pub ls2: Option<String>,
}

/// The shape of one pre-norm block.
#[derive(Debug, Clone, Copy)]
pub struct BlockShape {
    pub dim: usize,
    pub heads: usize,
    pub mlp: usize,
    pub act: Act,
    pub eps: f64,
    pub qkv_bias: bool,
    /// LayerScale initial value, when the block has LayerScale
    pub layerscale: Option<f64>,
}

impl Block {
    pub fn new(s: BlockShape, device: &Device) -> Block {
        let ls = || {
            s.layerscale
                .map(|v| Param::from_tensor(Tensor::<1>::full([s.dim], v, device)))
        };
        Block {
            norm1: new_layer_norm(s.dim, s.eps, device),
            attn: SelfAttention::new(s.dim, s.heads, s.qkv_bias, device),
            ls1: ls(),
            norm2: new_layer_norm(s.dim, s.eps, device),
            mlp: Mlp {
                fc1: new_linear(s.dim, s.mlp, true, device),
                fc2: new_linear(s.mlp, s.dim, true, device),
                act: s.act,
            },
            ls2: ls(),
        }
    }

    pub fn load(
        w: &mut Weights,
        n: &BlockNames,
        s: BlockShape,
        device: &Device,
    ) -> Result<Block, ModelError> {
        let d = s.dim;
        let mut ls = |name: &Option<String>| -> Result<Option<Param<Tensor<1>>>, ModelError> {
            name.as_ref()
                .map(|k| Ok(Param::from_tensor(w.tensor(k, [d], device)?)))
                .transpose()
        };
        let (ls1, ls2) = (ls(&n.ls1)?, ls(&n.ls2)?);
        Ok(Block {
            norm1: load_layer_norm(w, &n.norm1, d, s.eps, device)?,
            attn: SelfAttention {
                query: load_linear(w, &n.query, d, d, s.qkv_bias, device)?,
                key: load_linear(w, &n.key, d, d, s.qkv_bias, device)?,
                value: load_linear(w, &n.value, d, d, s.qkv_bias, device)?,
                out: load_linear(w, &n.out, d, d, true, device)?,
                heads: s.heads,
            },
            ls1,
            norm2: load_layer_norm(w, &n.norm2, d, s.eps, device)?,
            mlp: Mlp {
                fc1: load_linear(w, &n.fc1, d, s.mlp, true, device)?,
                fc2: load_linear(w, &n.fc2, s.mlp, d, true, device)?,
                act: s.act,
            },
            ls2,
        })
    }

    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2, Bool>>, causal: bool) -> Tensor<3> {
        self.forward_dropped(x, mask, causal, [None, None])
    }

    /// The block with drop-path (stochastic depth): `drop[0]` and `drop[1]`
    /// scale the attention and MLP branches per sample, `[batch, 1, 1]` of
    /// 0 (dropped) or 1 / keep-probability.
    pub fn forward_dropped(
        &self,
        x: Tensor<3>,
        mask: Option<&Tensor<2, Bool>>,
        causal: bool,
        drop: [Option<Tensor<3>>; 2],
    ) -> Tensor<3> {
        let [d1, d2] = drop;
        let scale = |t: Tensor<3>, ls: &Option<Param<Tensor<1>>>, d: Option<Tensor<3>>| {
            let t = match ls {
                Some(g) => t * g.val().unsqueeze::<3>(),
                None => t,
            };
            match d {
                Some(d) => t * d,
                None => t,
            }
        };
        let a = self
            .attn
            .forward(self.norm1.forward(x.clone()), mask, causal);
        let x = x + scale(a, &self.ls1, d1);
        let m = self.mlp.forward(self.norm2.forward(x.clone()));
        x + scale(m, &self.ls2, d2)
    }
}
