//! Fine-tuning an image encoder with a multi-label head, fully or with LoRA,
//! as an objective of the pretraining engine ([`crate::pretrain::Run`]): the
//! same AdamW with decay exclusions, warmup and cosine, clipping,
//! data-parallel parts, atomic checkpoints and exact resume.
//!
//! The head is one linear layer from the encoder's pooled output to one logit
//! per observation. The loss is binary cross-entropy over the observations
//! labelled 0 or 1 (others are masked out), with an optional weight on the
//! positives of each observation, summed and divided by batch x observations
//! so that parts of a batch add up to the batch's loss.
//!
//! With LoRA the encoder is frozen and adapters go on the chosen projections
//! ([`crate::lora`]); the head trains in both methods. Full fine-tuning can
//! decay the learning rate layer by layer.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{activation, Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::layers::new_linear;
use crate::lora::{self, LoraConfig};
use crate::pretrain::{Objective, PretrainConfig};
use crate::vit::{Vit, VitConfig};
use crate::ModelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Full,
    Lora,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub encoder: VitConfig,
    pub method: Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// the head's outputs, in order
    pub observations: Vec<String>,
    /// per observation, the weight of a positive in the loss (None: 1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_weight: Option<Vec<f64>>,
    /// layer-wise learning-rate decay: block i of L trains at lr * decay^(L - i),
    /// the embeddings at decay^(L + 1), the final norm, pooler and head at lr
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_decay: Option<f64>,
}

/// The encoder and its head.
#[derive(Module, Debug)]
pub struct FineTune {
    pub encoder: Vit,
    pub head: Linear,
    #[module(skip)]
    pub config: FinetuneConfig,
}

/// The run's fine-tuning section, or an error naming it.
fn section(config: &PretrainConfig) -> Result<&FinetuneConfig, ModelError> {
    config
        .finetune
        .as_ref()
        .ok_or_else(|| ModelError::Config("the run's config has no \"finetune\" section".into()))
}

impl FineTune {
    /// Logits `[batch, observations]`.
    pub fn logits(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        Ok(lora::linear(&self.head, self.encoder.forward(x)?.pooled))
    }

    /// Probabilities `[batch, observations]`, the batch cut into `parts` run at once.
    pub fn probabilities(&self, x: Tensor<4>, parts: usize) -> Result<Tensor<2>, ModelError> {
        let pooled = self.encoder.forward_parts(x, parts)?.pooled;
        Ok(activation::sigmoid(lora::linear(&self.head, pooled)))
    }

    /// The head as (weights `[observations][dim]`, biases): P = sigmoid(w . pooled + b).
    pub fn head_arrays(&self) -> (Vec<Vec<f32>>, Vec<f32>) {
        let w = self.head.weight.val(); // [dim, observations]
        let [d, k] = w.dims();
        let v: Vec<f32> = w.into_data().try_to_vec().expect("f32 head");
        let rows = (0..k)
            .map(|j| (0..d).map(|i| v[i * k + j]).collect())
            .collect();
        let b = match &self.head.bias {
            Some(b) => b.val().into_data().try_to_vec().expect("f32 bias"),
            None => vec![0.0; k],
        };
        (rows, b)
    }
}

/// Masked binary cross-entropy on logits `z` against targets `[batch, 2K]`
/// (labels in the first K columns, 1 where labelled in the last K), with
/// optional positive weights: the sum over labelled entries of
/// (1 - y) z + (1 + (w - 1) y) softplus(-z), divided by batch x K.
pub fn masked_bce(z: Tensor<2>, targets: Tensor<2>, pos_weight: Option<&[f64]>) -> Tensor<1> {
    let [b, k] = z.dims();
    let y = targets.clone().narrow(1, 0, k);
    let mask = targets.narrow(1, k, k);
    let softplus_neg =
        (z.clone().abs().neg().exp() + 1.0).log() + activation::relu(z.clone().neg());
    let weight = match pos_weight {
        Some(w) => {
            let dev = z.device();
            let w: Vec<f32> = w.iter().map(|v| *v as f32 - 1.0).collect();
            let w = Tensor::<1>::from_data(burn::tensor::TensorData::new(w, [k]), &dev)
                .unsqueeze::<2>();
            y.clone() * w + 1.0
        }
        None => y.ones_like(),
    };
    let loss = (y.neg() + 1.0) * z + weight * softplus_neg;
    (loss * mask).sum() / (b * k) as f64
}

/// The learning-rate factor of parameter `path` with layer decay `decay` over `layers` blocks.
pub fn layer_scale(path: &str, decay: f64, layers: usize) -> f64 {
    let depth = if let Some(rest) = path.strip_prefix("encoder.blocks.") {
        let i: usize = rest
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        layers - i
    } else if path.starts_with("encoder.norm") || path.starts_with("encoder.pooler") {
        0
    } else if path.starts_with("encoder.") {
        layers + 1
    } else {
        0
    };
    decay.powi(depth as i32)
}

impl Objective for FineTune {
    fn build(config: &PretrainConfig, device: &Device) -> Result<FineTune, ModelError> {
        let ft = section(config)?;
        let vit = Vit::new(&ft.encoder, device);
        let encoder = match (&ft.method, &ft.lora) {
            (Method::Lora, Some(l)) => lora::attach(vit, l)?,
            (Method::Lora, None) => {
                return Err(ModelError::Config(
                    "a LoRA fine-tuning config without its \"lora\" section".into(),
                ))
            }
            (Method::Full, _) => vit,
        };
        Ok(FineTune {
            encoder,
            head: new_linear(ft.encoder.hidden_size, ft.observations.len(), true, device),
            config: ft.clone(),
        })
    }

    fn loss(
        &self,
        images: Tensor<4>,
        targets: Option<Tensor<2>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<1>, ModelError> {
        let targets = targets.ok_or_else(|| {
            ModelError::Config("fine-tuning needs the labels of every item".into())
        })?;
        let pooled = self.encoder.forward_train(images, rng)?.pooled;
        let z = lora::linear(&self.head, pooled);
        Ok(masked_bce(z, targets, self.config.pos_weight.as_deref()))
    }

    fn encoder(&self) -> &Vit {
        &self.encoder
    }

    fn per_sample_loss() -> bool {
        true
    }

    fn with_encoder(mut self, vit: Vit) -> Result<FineTune, ModelError> {
        self.encoder = match (&self.config.method, &self.config.lora) {
            (Method::Lora, Some(l)) => lora::attach(vit, l)?,
            _ => vit,
        };
        Ok(self)
    }

    fn lr_scale(config: &PretrainConfig, path: &str) -> f64 {
        match config
            .finetune
            .as_ref()
            .and_then(|f| f.layer_decay.map(|d| (d, f)))
        {
            Some((d, f)) => layer_scale(path, d, f.encoder.num_hidden_layers),
            None => 1.0,
        }
    }

    fn exports_model() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn masked_bce_matches_the_formula_and_ignores_unlabelled_entries() {
        let dev = crate::device("cpu").unwrap();
        let z = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, -1.0, 0.5, 3.0], [2, 2]), &dev);
        // labels | mask: row 0 (1, 0) both labelled; row 1 (0, ?) only the first
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [2, 4]),
            &dev,
        );
        let sp = |x: f64| (1.0 + x.exp()).ln();
        // y = 1: w * softplus(-z); y = 0: softplus(z)
        let want = |w: f64| (w * sp(-2.0) + sp(-1.0) + sp(0.5)) / 4.0;
        let got = masked_bce(z.clone(), t.clone(), None).into_scalar::<f32>() as f64;
        assert!((got - want(1.0)).abs() < 1e-6, "{got} vs {}", want(1.0));
        let got = masked_bce(z, t, Some(&[3.0, 1.0])).into_scalar::<f32>() as f64;
        assert!((got - want(3.0)).abs() < 1e-6, "{got} vs {}", want(3.0));
    }

    #[test]
    fn layer_decay_scales_by_depth_from_the_top() {
        let l = 4;
        let s = |p: &str| layer_scale(p, 0.5, l);
        assert_eq!(s("head.weight"), 1.0);
        assert_eq!(s("encoder.norm.gamma"), 1.0);
        assert_eq!(s("encoder.blocks.3.mlp.fc1.weight"), 0.5);
        assert_eq!(s("encoder.blocks.0.attn.query.weight"), 0.0625);
        assert_eq!(s("encoder.patch.weight"), 0.03125);
        assert_eq!(s("encoder.cls"), 0.03125);
    }
}
