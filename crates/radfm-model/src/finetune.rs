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
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{activation, Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::layers::new_linear;
use crate::lora::{self, LoraConfig};
use crate::pretrain::{Objective, PretrainConfig};
use crate::train::lift;
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
    /// how many encoder blocks, from the first, recompute their activations
    /// in the backward pass instead of keeping them from the forward
    /// (activation checkpointing at block level): each holds only its input
    /// until its turn comes, for one more forward pass of its compute
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recompute: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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

impl FineTune {
    /// The LoRA dropout of a training forward on this thread, its seed drawn
    /// from `rng` (nothing drawn without dropout, so runs without it keep
    /// their streams).
    fn lora_dropout(&self, rng: &mut ChaCha8Rng) -> Option<lora::DropoutScope> {
        use rand::Rng;
        let rate = self.config.lora.as_ref().map_or(0.0, |l| l.dropout);
        (self.config.method == Method::Lora && rate > 0.0)
            .then(|| lora::dropout_scope(rate, rng.gen()))
    }

    /// The gradients and value of `weight` x [`Objective::loss`], with the
    /// activations of the encoder's first `recompute` blocks recomputed. A
    /// forward pass off the autodiff graph keeps only those blocks' inputs;
    /// the rest of the encoder, the head and the loss are differentiated from
    /// the last recomputed block's output, and then each recomputed block in
    /// turn, from its kept input, gets the gradient of its output pushed back
    /// through it (the surrogate sum(out * d_out)), which gives its
    /// parameters' gradients and its input's. The embeddings go last, when
    /// they train. Drop-path masks are drawn once, as [`Vit::encode_train`]
    /// draws them. A part then holds the graphs of the blocks not recomputed,
    /// or of one block, whichever is more, and the kept inputs.
    fn recomputed_grads(
        &self,
        images: Tensor<4>,
        targets: Tensor<2>,
        rng: &mut ChaCha8Rng,
        weight: f64,
    ) -> Result<(GradientsParams, f64), ModelError> {
        let enc = &self.encoder;
        let n = self.config.recompute.min(enc.blocks.len());
        let _dropout = self.lora_dropout(rng);
        let mut masks = enc.drop_masks(images.dims()[0], &images.device(), rng);
        let plain = enc.valid();
        let inner = |m: &[Option<Tensor<3>>; 2]| m.clone().map(|t| t.map(|t| t.inner()));
        // the forward, off the graph: the input of each recomputed block and the last one's output
        let mut kept = vec![plain.embed(images.clone().inner())?];
        for (i, (blk, m)) in plain.blocks.iter().zip(&masks).take(n).enumerate() {
            lora::dropout_block(i);
            let x = kept.last().expect("the embeddings").clone();
            kept.push(blk.forward_dropped(x, None, false, inner(m)));
        }
        drop(plain);
        let mut acc = GradientsAccumulator::<FineTune>::new();
        let leaf = |t: Tensor<3>| lift(t, &images).require_grad();
        let missing = || ModelError::Config("the loss does not reach the encoder".into());
        // the blocks kept on the graph, the final norm and the head
        let top = leaf(kept.pop().expect("the last recomputed output"));
        let mut t = top.clone();
        for ((i, blk), m) in enc.blocks.iter().enumerate().skip(n).zip(masks.drain(n..)) {
            lora::dropout_block(i);
            t = blk.forward_dropped(t, None, false, m);
        }
        let z = lora::linear(&self.head, enc.finish(t).pooled);
        let loss = masked_bce(z, targets, self.config.pos_weight.as_deref()) * weight;
        let value = loss.clone().into_scalar::<f32>() as f64;
        let g = loss.backward();
        let mut d = top.grad(&g).ok_or_else(missing)?;
        acc.accumulate(self, GradientsParams::from_grads(g, self));
        // each recomputed block from its kept input, the last first
        for (i, m) in masks.into_iter().enumerate().rev() {
            let x = leaf(kept.pop().expect("a block's input"));
            lora::dropout_block(i);
            let out = enc.blocks[i].forward_dropped(x.clone(), None, false, m);
            let g = (out * lift(d, &images)).sum().backward();
            d = x.grad(&g).ok_or_else(missing)?;
            acc.accumulate(self, GradientsParams::from_grads(g, self));
        }
        if self.config.method == Method::Full {
            let out = enc.embed(images.clone())?;
            let g = (out * lift(d, &images)).sum().backward();
            acc.accumulate(self, GradientsParams::from_grads(g, self));
        }
        Ok((acc.grads(), value))
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
        let _dropout = self.lora_dropout(rng);
        let pooled = self.encoder.forward_train(images, rng)?.pooled;
        let z = lora::linear(&self.head, pooled);
        Ok(masked_bce(z, targets, self.config.pos_weight.as_deref()))
    }

    fn weighted_grads(
        &self,
        images: Tensor<4>,
        targets: Option<Tensor<2>>,
        rng: &mut ChaCha8Rng,
        weight: f64,
    ) -> Option<Result<(GradientsParams, f64), ModelError>> {
        (self.config.recompute > 0).then(|| {
            let targets = targets.ok_or_else(|| {
                ModelError::Config("fine-tuning needs the labels of every item".into())
            })?;
            self.recomputed_grads(images, targets, rng, weight)
        })
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

    /// Every parameter's gradient in `g`, in the module's visiting order (None: no gradient).
    fn grads_of(model: &FineTune, g: &GradientsParams) -> Vec<Option<Vec<f32>>> {
        struct V<'a>(&'a GradientsParams, Vec<Option<Vec<f32>>>);
        impl burn::module::ModuleVisitor for V<'_> {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                let t = self.0.get::<D>(p.id);
                self.1
                    .push(t.map(|t| t.into_data().convert::<f32>().try_to_vec().unwrap()));
            }
        }
        let mut v = V(g, Vec::new());
        model.visit(&mut v);
        v.1
    }

    #[test]
    fn recomputed_gradients_equal_autodiff_gradients() {
        use rand::SeedableRng;
        let device = crate::device("cpu").unwrap().autodiff();
        let mut enc = VitConfig::preset("vit-tiny", 16, 8, 1).unwrap();
        enc.hidden_size = 16;
        enc.num_attention_heads = 2;
        enc.intermediate_size = 32;
        enc.num_hidden_layers = 3;
        enc.drop_path_rate = 0.3;
        let images =
            Tensor::<4>::random([6, 1, 16, 16], burn::tensor::Distribution::Default, &device);
        let mut t = vec![0.0f32; 6 * 4];
        for (i, v) in t.iter_mut().enumerate() {
            let (r, c) = (i / 4, i % 4);
            *v = match c {
                0 | 1 => ((r + c) % 2) as f32,    // labels
                _ => f32::from(u8::from(r != 2)), // row 2's labels are masked out
            };
        }
        let targets = Tensor::<2>::from_data(TensorData::new(t, [6, 4]), &device);
        for method in [Method::Full, Method::Lora] {
            let lora = (method == Method::Lora).then(|| LoraConfig {
                rank: 2,
                alpha: 4.0,
                rslora: false,
                dropout: 0.2,
                targets: lora::resolve(&enc, "all-linear")
                    .unwrap()
                    .into_iter()
                    .map(|s| s.path)
                    .collect(),
            });
            let vit = Vit::new(&enc, &device);
            let mut ft = FineTune {
                encoder: match &lora {
                    Some(l) => lora::attach(vit, l).unwrap(),
                    None => vit,
                },
                head: new_linear(16, 2, true, &device),
                config: FinetuneConfig {
                    encoder: enc.clone(),
                    method,
                    lora,
                    observations: vec!["a".into(), "b".into()],
                    pos_weight: Some(vec![2.0, 0.5]),
                    layer_decay: None,
                    recompute: 0,
                },
            };
            let rng = || ChaCha8Rng::seed_from_u64(5);
            if method == Method::Lora {
                // non-zero factors, so that the dropout on the LoRA branch shows in the loss
                let mut w = crate::train::named_params(&ft);
                for (k, (_, v)) in w.iter_mut() {
                    if k.contains(".lora.") {
                        for (i, x) in v.iter_mut().enumerate() {
                            *x = ((i * 7919 % 13) as f32 - 6.0) / 20.0;
                        }
                    }
                }
                let mut w = crate::weights::Weights::from_map(w, "test factors");
                ft = crate::train::load_params(ft, &mut w, &device).unwrap();
                let loss_at = |rate: f64| {
                    let mut f = ft.clone();
                    f.config.lora.as_mut().unwrap().dropout = rate;
                    let l = f
                        .loss(images.clone(), Some(targets.clone()), &mut rng())
                        .unwrap();
                    l.into_scalar::<f32>()
                };
                assert_ne!(loss_at(0.2), loss_at(0.0), "LoRA dropout has no effect");
                assert_eq!(
                    loss_at(0.2),
                    loss_at(0.2),
                    "LoRA dropout is not a function of the seed"
                );
            }
            let l = ft
                .loss(images.clone(), Some(targets.clone()), &mut rng())
                .unwrap()
                * 0.5;
            let want_loss = l.clone().into_scalar::<f32>() as f64;
            let want = grads_of(&ft, &GradientsParams::from_grads(l.backward(), &ft));
            assert!(ft
                .weighted_grads(images.clone(), Some(targets.clone()), &mut rng(), 0.5)
                .is_none());
            for n in [1, 3] {
                let mut r = ft.clone();
                r.config.recompute = n;
                let (g, loss) = r
                    .weighted_grads(images.clone(), Some(targets.clone()), &mut rng(), 0.5)
                    .expect("recomputing")
                    .unwrap();
                assert!(
                    (loss - want_loss).abs() < 1e-6,
                    "{method:?} {n}: {loss} vs {want_loss}"
                );
                let got = grads_of(&r, &g);
                assert_eq!(got.len(), want.len());
                let mut compared = 0;
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    match (a, b) {
                        (Some(a), Some(b)) => {
                            let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                            let worst =
                                a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                            assert!(
                                worst <= 1e-5 * scale.max(1.0),
                                "{method:?} {n}: parameter {i} off by {worst}"
                            );
                            compared += 1;
                        }
                        (None, None) => {}
                        _ => panic!("{method:?} {n}: parameter {i} has a gradient one way only"),
                    }
                }
                // full: every parameter; LoRA: the factors of 6 projections x 3 blocks, the head
                let expected = match method {
                    Method::Full => want.len(),
                    Method::Lora => 2 * 6 * 3 + 2,
                };
                assert_eq!(compared, expected, "{method:?} {n}");
            }
        }
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
