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

/// The CLIP objective for pretraining an image encoder against a frozen text
/// tower: the text tower's (pooled, normalised) report embeddings are computed
/// once, and the image encoder, both projections and the logit scale train.
/// With a pretrained text tower this is the "locked text" variant of CLIP,
/// the one that fits a CPU budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTrainConfig {
    pub encoder: VitConfig,
    /// width of the frozen text features
    pub text_dim: usize,
    pub projection_dim: usize,
    /// the logit scale starts at ln(1 / this) and is capped at ln(100)
    pub init_temperature: f64,
    /// the text tower the features came from (recorded, not loaded again)
    pub text_model: String,
}

#[derive(Module, Debug)]
pub struct ClipTrain {
    pub vision: Vit,
    pub visual_projection: Linear,
    pub text_projection: Linear,
    pub logit_scale: Param<Tensor<1>>,
    #[module(skip)]
    pub config: ClipTrainConfig,
}

/// The most the logit scale may grow to, ln(100), as in CLIP.
pub const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_092;

impl ClipTrain {
    pub fn new(config: &ClipTrainConfig, device: &Device) -> ClipTrain {
        let d = config.encoder.hidden_size;
        let p = config.projection_dim;
        ClipTrain {
            vision: Vit::new(&config.encoder, device),
            visual_projection: crate::layers::new_linear(d, p, false, device),
            text_projection: crate::layers::new_linear(config.text_dim, p, false, device),
            logit_scale: Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(vec![(1.0 / config.init_temperature).ln() as f32], [1]),
                device,
            )),
            config: config.clone(),
        }
    }

    /// Normalised image embeddings `[batch, projection_dim]`.
    pub fn embed_images(&self, x: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        let out = self.vision.forward(x)?;
        Ok(l2_normalize(self.visual_projection.forward(out.pooled)))
    }

    /// Normalised text embeddings from the frozen text features.
    pub fn embed_texts(&self, features: Tensor<2>) -> Tensor<2> {
        l2_normalize(self.text_projection.forward(features))
    }

    /// `[images, texts]` training logits: cosine similarity times the
    /// (capped) scale, with the encoder's drop-path drawn from `rng`.
    pub fn logits(
        &self,
        x: Tensor<4>,
        features: Tensor<2>,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Tensor<2>, ModelError> {
        let images = self.embed_images_train(x, rng)?;
        Ok(self.logits_of(images, features))
    }

    /// [`ClipTrain::embed_images`] for training, with the encoder's drop-path
    /// drawn from `rng`.
    pub fn embed_images_train(
        &self,
        x: Tensor<4>,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Tensor<2>, ModelError> {
        let out = self.vision.forward_train(x, rng)?;
        Ok(l2_normalize(self.visual_projection.forward(out.pooled)))
    }

    /// `[images, texts]` logits from normalised image embeddings and text
    /// features: cosine similarity times the (capped) scale.
    pub fn logits_of(&self, images: Tensor<2>, features: Tensor<2>) -> Tensor<2> {
        let t = self.embed_texts(features);
        let scale = self
            .logit_scale
            .val()
            .clamp_max(MAX_LOGIT_SCALE)
            .exp()
            .unsqueeze::<2>();
        images.matmul(t.transpose()) * scale
    }
}

/// Image-to-text retrieval quality: for each query image, where its own
/// report ranks among all candidate reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    pub queries: usize,
    pub candidates: usize,
    /// (k, recall@k, chance k / candidates)
    pub recall: Vec<(usize, f64, f64)>,
    /// median rank of the true report (1 = first)
    pub median_rank: f64,
}

/// Recall@k of image-to-text retrieval. `sim[q][c]` scores query `q` against
/// candidate `c`, and `truth[q]` is the candidate that belongs to `q`.
/// Ties are broken at random in expectation: a true candidate tied with `t`
/// others right at the cut-off counts as the fraction of orderings that keep it
/// inside the top k, so identical reports earn no credit they did not earn.
pub fn retrieval(sim: &[Vec<f32>], truth: &[usize], ks: &[usize]) -> Retrieval {
    assert_eq!(sim.len(), truth.len());
    let candidates = sim.first().map_or(0, Vec::len);
    let mut recall = vec![0f64; ks.len()];
    let mut ranks = Vec::with_capacity(sim.len());
    for (row, &t) in sim.iter().zip(truth) {
        let s = row[t];
        let greater = row.iter().filter(|&&v| v > s).count();
        let tied = row.iter().filter(|&&v| v == s).count() - 1;
        for (r, &k) in recall.iter_mut().zip(ks) {
            if greater < k {
                *r += ((k - greater) as f64 / (tied + 1) as f64).min(1.0);
            }
        }
        ranks.push(greater as f64 + 1.0 + tied as f64 / 2.0);
    }
    let q = sim.len().max(1) as f64;
    ranks.sort_by(|a, b| a.total_cmp(b));
    let median_rank = match ranks.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => ranks[n / 2],
        n => (ranks[n / 2 - 1] + ranks[n / 2]) / 2.0,
    };
    Retrieval {
        queries: sim.len(),
        candidates,
        recall: ks
            .iter()
            .zip(recall)
            .map(|(&k, r)| (k, r / q, (k as f64 / candidates.max(1) as f64).min(1.0)))
            .collect(),
        median_rank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retrieval_counts_ranks_and_splits_ties() {
        let sim = vec![
            vec![0.9, 0.1, 0.2, 0.3], // truth 0 ranks 1
            vec![0.9, 0.1, 0.2, 0.3], // truth 1 ranks 4
            vec![0.5, 0.5, 0.5, 0.1], // truth 2 tied with two others: rank 2 in expectation
        ];
        let r = retrieval(&sim, &[0, 1, 2], &[1, 2, 4]);
        assert_eq!((r.queries, r.candidates), (3, 4));
        let at = |k: usize| r.recall.iter().find(|x| x.0 == k).unwrap().1;
        // k=1: query 0 hits; query 2 is first in 1 of 3 orderings
        assert!((at(1) - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        // k=2: query 0, and query 2 in 2 of 3 orderings
        assert!((at(2) - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((at(4) - 1.0).abs() < 1e-12);
        assert_eq!(r.recall[0].2, 0.25);
        assert_eq!(r.median_rank, 2.0);
    }

    #[test]
    fn logit_scale_is_capped_and_logits_are_scaled_cosines() {
        let device = crate::device("cpu").unwrap();
        let mut enc = VitConfig::preset("vit-tiny", 16, 8, 1).unwrap();
        enc.num_hidden_layers = 1;
        let cfg = ClipTrainConfig {
            encoder: enc,
            text_dim: 6,
            projection_dim: 4,
            init_temperature: 0.001, // ln(1000) > the cap
            text_model: String::new(),
        };
        let m = ClipTrain::new(&cfg, &device);
        let x = Tensor::<4>::random([3, 1, 16, 16], burn::tensor::Distribution::Default, &device);
        let f = Tensor::<2>::random([3, 6], burn::tensor::Distribution::Default, &device);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let l: Vec<f32> = m
            .logits(x, f, &mut rng)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(l.len(), 9);
        assert!(l.iter().all(|v| v.abs() <= 100.0 + 1e-3), "{l:?}");
        assert!(l.iter().any(|v| v.abs() > 1.0));
    }
}

#[cfg(test)]
mod gradient_tests {
    use super::*;

    /// The loss of `a` (images) against fixed `b` (texts): normalise, scale by 10, InfoNCE.
    fn loss_of(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
        clip_loss(l2_normalize(a).matmul(l2_normalize(b).transpose()) * 10.0)
    }

    #[test]
    fn clip_loss_gradient_matches_finite_differences() {
        let device = crate::device("cpu").unwrap();
        let ad = device.clone().autodiff();
        let (n, d) = (5, 4);
        let av: Vec<f32> = (0..n * d)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let bv: Vec<f32> = (0..n * d)
            .map(|i| ((i * 23 % 7) as f32 - 3.0) / 2.0)
            .collect();
        let t = |v: &[f32], dev: &Device| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [n, d]), dev)
        };
        let a = t(&av, &ad).require_grad();
        let loss = loss_of(a.clone(), t(&bv, &ad));
        let grads = loss.backward();
        let g: Vec<f32> = a
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let f = |v: &[f32]| -> f64 {
            loss_of(t(v, &device), t(&bv, &device)).into_scalar::<f32>() as f64
        };
        let h = 1e-2f32;
        for k in 0..n * d {
            let (mut p, mut m) = (av.clone(), av.clone());
            p[k] += h;
            m[k] -= h;
            let fd = (f(&p) - f(&m)) / (2.0 * h as f64);
            assert!(
                (fd - g[k] as f64).abs() < 2e-3 + 0.02 * fd.abs(),
                "d loss / d a[{k}]: autodiff {} vs finite difference {fd}",
                g[k]
            );
        }
    }

    /// The data-parallel CLIP step (features of each part on its own replica,
    /// loss on the joined batch, gradients pushed back per part) gives the
    /// gradient of one whole-batch pass, and the same loss.
    #[test]
    fn coupled_parts_give_the_whole_batch_gradient() {
        use crate::train::{parallel_grads_coupled, split_rows};
        use burn::optim::GradientsParams;
        use rand::SeedableRng;
        let device = crate::device("cpu").unwrap();
        let ad = device.clone().autodiff();
        let mut enc = crate::vit::VitConfig::preset("vit-tiny", 16, 8, 1).unwrap();
        enc.hidden_size = 16;
        enc.num_attention_heads = 2;
        enc.intermediate_size = 32;
        enc.num_hidden_layers = 2;
        let cfg = ClipTrainConfig {
            encoder: enc,
            text_dim: 6,
            projection_dim: 8,
            init_temperature: 0.07,
            text_model: "test".into(),
        };
        ad.seed(5);
        let model = ClipTrain::new(&cfg, &ad);
        let b = 7;
        let xv: Vec<f32> = (0..b * 256)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 9.0)
            .collect();
        let tv: Vec<f32> = (0..b * 6)
            .map(|i| ((i * 7 % 5) as f32 - 2.0) / 2.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(xv, [b, 1, 16, 16]), &ad);
        let texts = Tensor::<2>::from_data(TensorData::new(tv, [b, 6]), &ad);
        let grads_of = |g: &GradientsParams| crate::train::param_grads(&model, g).concat();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let whole = clip_loss(model.logits(x.clone(), texts.clone(), &mut rng).unwrap());
        let whole_value = whole.clone().into_scalar::<f32>() as f64;
        let whole = grads_of(&GradientsParams::from_grads(whole.backward(), &model));
        let parts: Vec<Tensor<4>> = split_rows(b, 3)
            .into_iter()
            .map(|r| x.clone().slice(r))
            .collect();
        let (g, value) = parallel_grads_coupled(
            &model,
            parts,
            |m, x| m.embed_images_train(x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)),
            |m, f| Ok(clip_loss(m.logits_of(f, texts.clone()))),
        )
        .unwrap();
        let split = grads_of(&g);
        assert!(
            (value - whole_value).abs() < 1e-6,
            "{value} vs {whole_value}"
        );
        assert_eq!(whole.len(), split.len());
        let top = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = whole
            .iter()
            .zip(&split)
            .fold(0f32, |m, (a, c)| m.max((a - c).abs()));
        assert!(top > 1e-3, "the test needs a gradient to compare");
        assert!(
            worst < 1e-5 * top.max(1.0),
            "parts differ by {worst} (largest gradient {top})"
        );
    }
}
