//! A linear multi-label head over an encoder's pooled output, trained with
//! binary cross-entropy on logits.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{activation, Device, Tensor};

use crate::layers::new_linear;
use crate::vit::Vit;

#[derive(Module, Debug)]
pub struct Classifier {
    pub encoder: Vit,
    pub head: Linear,
}

impl Classifier {
    pub fn new(encoder: Vit, labels: usize, device: &Device) -> Classifier {
        let d = encoder.config.hidden_size;
        Classifier {
            encoder,
            head: new_linear(d, labels, true, device),
        }
    }

    /// Logits `[batch, labels]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let out = self.encoder.forward(x).expect("input fits the encoder");
        self.head.forward(out.pooled)
    }
}

/// Mean binary cross-entropy of `logits` against 0/1 `targets`, in the
/// numerically stable form max(z, 0) - z y + log(1 + exp(-|z|)).
pub fn bce_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let z = logits;
    let loss =
        activation::relu(z.clone()) - z.clone() * targets + (z.abs().neg().exp() + 1.0).log();
    loss.mean()
}
