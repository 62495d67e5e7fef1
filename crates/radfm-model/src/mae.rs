//! Masked autoencoder pretraining (He et al., 2022): the encoder sees a random
//! 25% of the patches; a light decoder fills in mask tokens and predicts the
//! pixels of every patch; the loss is the mean squared error on the masked
//! patches, against per-patch normalised pixels.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::layers::{new_layer_norm, new_linear, Act, Block, BlockShape};
use crate::vit::{sincos_2d, Vit, VitConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaeConfig {
    pub encoder: VitConfig,
    pub decoder_dim: usize,
    pub decoder_depth: usize,
    pub decoder_heads: usize,
    pub mask_ratio: f64,
    /// normalise each target patch to zero mean and unit variance
    pub norm_pix_loss: bool,
}

impl MaeConfig {
    pub fn new(encoder: VitConfig) -> MaeConfig {
        MaeConfig {
            encoder,
            decoder_dim: 128,
            decoder_depth: 2,
            decoder_heads: 4,
            mask_ratio: 0.75,
            norm_pix_loss: true,
        }
    }
}

#[derive(Module, Debug)]
pub struct Mae {
    pub encoder: Vit,
    pub decoder_embed: Linear,
    pub mask_token: Param<Tensor<3>>,
    pub decoder_blocks: Vec<Block>,
    pub decoder_norm: LayerNorm,
    pub decoder_pred: Linear,
    #[module(skip)]
    pub config: MaeConfig,
}

pub struct MaeOutput {
    pub loss: Tensor<1>,
    /// predicted pixels per patch, `[batch, patches, C*p*p]` (in the normalised
    /// space when `norm_pix_loss`)
    pub pred: Tensor<3>,
    /// per sample and patch, true where masked
    pub mask: Vec<bool>,
}

impl Mae {
    pub fn new(config: &MaeConfig, device: &Device) -> Mae {
        let e = &config.encoder;
        let dd = config.decoder_dim;
        let p = e.patch_size;
        Mae {
            encoder: Vit::new(e, device),
            decoder_embed: new_linear(e.hidden_size, dd, true, device),
            mask_token: Param::from_tensor(Tensor::<3>::random(
                [1, 1, dd],
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            )),
            decoder_blocks: (0..config.decoder_depth)
                .map(|_| {
                    Block::new(
                        BlockShape {
                            dim: dd,
                            heads: config.decoder_heads,
                            mlp: 4 * dd,
                            act: Act::Gelu,
                            eps: 1e-6,
                            qkv_bias: true,
                            layerscale: None,
                        },
                        device,
                    )
                })
                .collect(),
            decoder_norm: new_layer_norm(dd, 1e-6, device),
            decoder_pred: new_linear(dd, p * p * e.num_channels, true, device),
            config: config.clone(),
        }
    }

    /// Loss on a batch `x` (`[batch, C, H, W]`), masking drawn from `rng`.
    pub fn forward(&self, x: Tensor<4>, rng: &mut ChaCha8Rng) -> MaeOutput {
        let device = x.device();
        let enc = &self.encoder;
        let d = enc.config.hidden_size;
        let dd = self.config.decoder_dim;
        let (patches, gh, gw) = enc.patchify(x).expect("input fits the encoder");
        let [b, n, pd] = patches.dims();
        let keep = ((n as f64) * (1.0 - self.config.mask_ratio))
            .round()
            .max(1.0) as usize;
        // per sample: a random order; the first `keep` patches are visible
        let mut keep_idx = Vec::with_capacity(b * keep);
        let mut restore = vec![0i64; b * n];
        let mut mask = vec![true; b * n];
        for s in 0..b {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            for (rank, &pi) in order.iter().enumerate() {
                restore[s * n + pi] = rank as i64;
                if rank < keep {
                    keep_idx.push(pi as i64);
                    mask[s * n + pi] = false;
                }
            }
        }
        let pos = enc.position(gh, gw, &device); // [1, 1+n, d]
        let tokens = enc.patch.forward(patches.clone()) + pos.clone().narrow(1, 1, n);
        let kidx = Tensor::<2, Int>::from_data(TensorData::new(keep_idx, [b, keep]), &device);
        let visible = tokens.gather(1, kidx.reshape([b, keep, 1]).expand([b, keep, d]));
        let cls = (enc.cls.val() + pos.narrow(1, 0, 1)).expand([b, 1, d]);
        let latent = enc
            .norm
            .forward(enc.encode_train(Tensor::cat(vec![cls, visible], 1), rng));
        // decoder
        let z = self.decoder_embed.forward(latent);
        let masked = self.mask_token.val().expand([b, n - keep, dd]);
        let shuffled = Tensor::cat(vec![z.clone().narrow(1, 1, keep), masked], 1);
        let ridx = Tensor::<2, Int>::from_data(TensorData::new(restore, [b, n]), &device);
        let full = shuffled.gather(1, ridx.reshape([b, n, 1]).expand([b, n, dd]));
        let dpos = Tensor::<3>::from_data(
            TensorData::new(sincos_2d(dd, gh, gw), [1, 1 + n, dd]),
            &device,
        );
        let mut y = Tensor::cat(vec![z.narrow(1, 0, 1), full], 1) + dpos;
        for blk in &self.decoder_blocks {
            y = blk.forward(y, None, false);
        }
        let pred = self
            .decoder_pred
            .forward(self.decoder_norm.forward(y))
            .narrow(1, 1, n);
        let target = if self.config.norm_pix_loss {
            let mean = patches.clone().mean_dim(2);
            let var =
                (patches.clone() - mean.clone()).powf_scalar(2.0).sum_dim(2) / (pd as f64 - 1.0);
            (patches - mean) / (var + 1e-6).sqrt()
        } else {
            patches
        };
        let per_patch = (pred.clone() - target)
            .powf_scalar(2.0)
            .mean_dim(2)
            .reshape([b, n]);
        let m = Tensor::<2>::from_data(
            TensorData::new(
                mask.iter()
                    .map(|&v| f32::from(u8::from(v)))
                    .collect::<Vec<_>>(),
                [b, n],
            ),
            &device,
        );
        let loss = (per_patch * m).sum() / ((b * (n - keep)) as f64);
        MaeOutput { loss, pred, mask }
    }
}
