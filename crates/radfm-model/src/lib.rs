//! radfm-model: the models of radfm on burn.
//!
//! - [`vit`]: the Vision Transformer behind radfm's presets and the imported
//!   HF `Dinov2Model`, `ViTModel` and `CLIPModel` vision towers.
//! - [`bert`]: the BERT text encoder (HF `BertModel`), with mean pooling.
//! - [`clip`]: the CLIP dual encoder and its symmetric InfoNCE loss.
//! - [`dual`]: image-text dual encoders (HF `CLIPModel`, radfm CLIP runs,
//!   open_clip directories) for zero-shot and retrieval; [`zeroshot`]: prompt
//!   sets and CheXzero's scoring rule.
//! - [`tokenizer`]: HF `tokenizers` reading `tokenizer.json`.
//! - [`lora`]: LoRA adapters (burn's) on the encoders, and PEFT's adapter format.
//! - [`hf`]: loading a checkpoint directory by its `config.json`.
//! - [`weights`]: safetensors reading with a strict account of every tensor.
//!
//! Everything runs on burn's pure-Rust Flex backend by default; the `cuda`
//! feature adds the CubeCL CUDA backend.

pub mod augment;
pub mod bert;
pub mod clip;
pub mod dual;
pub mod finetune;
pub mod head;
pub mod hf;
pub mod interp;
pub mod layers;
pub mod lora;
pub mod mae;
pub mod open_clip;
pub mod pretrain;
pub mod text;
pub mod tokenizer;
pub mod torch_pickle;
pub mod train;
pub mod vit;
pub mod weights;
pub mod zeroshot;

use std::path::Path;

/// Why a model could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Shape(String),
    #[error("{0}: tensor {1} is missing from the checkpoint")]
    Missing(String, String),
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The compute device by name: `cpu` (burn Flex) or `cuda` (with the `cuda` feature).
pub fn device(name: &str) -> Result<burn::tensor::Device, ModelError> {
    match name {
        "cpu" => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(burn::tensor::Device::cuda(0)),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(ModelError::Config(
            "this radfm was built without CUDA: rebuild with `--features cuda`".into(),
        )),
        other => Err(ModelError::Config(format!(
            "unknown device {other:?} (cpu or cuda)"
        ))),
    }
}
