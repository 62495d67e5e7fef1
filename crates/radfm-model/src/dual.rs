//! Image-text dual encoders for zero-shot classification and retrieval: one
//! interface over
//! - a HF `CLIPModel` directory (both towers, `tokenizer.json`);
//! - a radfm CLIP run's `model/` (the pretrained image encoder and
//!   projections, and the frozen BERT-family text tower it trained against,
//!   kept in `model/text/`);
//! - an open_clip directory ([`crate::open_clip`]).
//!
//! Both towers end in a projection to the shared space and an L2
//! normalisation, so the dot product of an image and a text embedding is
//! their cosine.

use std::path::{Path, PathBuf};

use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor};

use crate::bert::{l2_normalize, mean_pool, Bert};
use crate::clip::{ClipText, ClipTrain, ClipTrainConfig, MAX_LOGIT_SCALE};
use crate::open_clip::{BertPool, OpenClipText};
use crate::text::Pooling;
use crate::tokenizer::Tokenizer;
use crate::train::Arrays;
use crate::vit::{Vit, VitConfig};
use crate::weights::Weights;
use crate::ModelError;

/// The text tower and its projection.
#[derive(Clone)]
enum Text {
    /// CLIP's causal transformer, pooled at the end-of-text token
    Clip { tower: ClipText, proj: Linear },
    /// a BERT, pooled, optionally normalised (as a radfm CLIP run's frozen
    /// features are), then one linear map or a two-layer GELU MLP
    Bert {
        bert: Bert,
        pool: BertPool,
        normalize_features: bool,
        proj: Vec<Linear>,
    },
}

pub struct DualEncoder {
    /// what the directory holds, in words
    pub kind: String,
    pub vision: Vit,
    pub visual_projection: Linear,
    text: Text,
    pub tokenizer: Tokenizer,
    /// tokens per text, special tokens included
    pub context_length: usize,
    /// ln of the inverse temperature, as the model applies it
    pub logit_scale: f64,
    /// the image preprocessing as an HF image-processor config, when the
    /// directory has no `preprocessor_config.json` of its own (open_clip)
    pub processor: Option<serde_json::Value>,
    /// the files whose bytes are the model (for checksums)
    pub files: Vec<PathBuf>,
    device: Device,
}

fn no_text_tower(dir: &Path, what: &str) -> ModelError {
    ModelError::Config(format!(
        "{}: {what} has no text tower; zero-shot and text retrieval need a CLIP model (a radfm \
         run from `radfm pretrain --objective clip`, a HF CLIPModel or an open_clip directory)",
        dir.display()
    ))
}

fn safetensors_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    v.sort();
    v
}

/// Where a radfm CLIP run keeps its text tower: `model/text/` (copied there
/// by pretraining), else the `--text-model` directory it recorded.
pub fn run_text_dir(dir: &Path, cfg: &serde_json::Value) -> Option<PathBuf> {
    let inside = dir.join("text");
    if inside.join("config.json").is_file() {
        return Some(inside);
    }
    let recorded = PathBuf::from(cfg["clip"]["text_model"].as_str()?);
    recorded.join("config.json").is_file().then_some(recorded)
}

impl DualEncoder {
    /// Open any supported directory (see the module docs).
    pub fn open(dir: &Path, device: &Device) -> Result<DualEncoder, ModelError> {
        if crate::open_clip::is_open_clip(dir) {
            return Self::open_clip(dir, device);
        }
        let cfg = crate::hf::read_config(dir)?;
        match cfg["model_type"].as_str().unwrap_or("") {
            "clip" => Self::hf_clip(dir, device),
            "radfm_vit" => Self::radfm_run(dir, &cfg, device),
            "clip_vision_model" => Err(no_text_tower(dir, "a CLIPVisionModel")),
            "dinov2" | "dinov2_with_registers" | "vit" => Err(no_text_tower(
                dir,
                &format!("an image encoder ({})", cfg["model_type"]),
            )),
            other => Err(ModelError::Config(format!(
                "{}: model_type {other:?} is not a CLIP model radfm can load",
                dir.display()
            ))),
        }
    }

    fn hf_clip(dir: &Path, device: &Device) -> Result<DualEncoder, ModelError> {
        let clip = crate::hf::load_clip(dir, device)?;
        let tokenizer = Tokenizer::open(dir)?;
        let context_length = clip.text.config.max_position_embeddings;
        let logit_scale = clip.logit_scale.val().into_scalar::<f32>() as f64;
        Ok(DualEncoder {
            kind: "Hugging Face CLIPModel".into(),
            vision: clip.vision,
            visual_projection: clip.visual_projection,
            text: Text::Clip {
                tower: clip.text,
                proj: clip.text_projection,
            },
            tokenizer,
            context_length,
            logit_scale,
            processor: None,
            files: safetensors_in(dir),
            device: device.clone(),
        })
    }

    fn radfm_run(
        dir: &Path,
        cfg: &serde_json::Value,
        device: &Device,
    ) -> Result<DualEncoder, ModelError> {
        let objective = cfg["objective"].as_str().unwrap_or("mae");
        let c = &cfg["clip"];
        if !c.is_object() {
            return Err(no_text_tower(
                dir,
                &format!("a radfm {objective} run's encoder"),
            ));
        }
        let encoder: VitConfig = serde_json::from_value(cfg["vit"].clone())
            .map_err(|e| ModelError::Config(format!("{}/config.json: {e}", dir.display())))?;
        let us = |k: &str| crate::hf::cfg_usize(c, "clip.", k, None);
        let config = ClipTrainConfig {
            encoder,
            text_dim: us("text_dim")?,
            projection_dim: us("projection_dim")?,
            init_temperature: 0.07,
            text_model: c["text_model"].as_str().unwrap_or("").to_string(),
        };
        let head = dir.join(cfg["extra"].as_str().unwrap_or("clip_head.safetensors"));
        let mut all = Arrays::new();
        let mut enc = Weights::open(&dir.join("model.safetensors"))?;
        let names: Vec<String> = enc.names().map(str::to_string).collect();
        for n in names {
            all.insert(format!("vision.{n}"), enc.raw(&n)?);
        }
        let mut hw = Weights::open(&head)?;
        let names: Vec<String> = hw.names().map(str::to_string).collect();
        for n in names {
            all.insert(n.clone(), hw.raw(&n)?);
        }
        let mut w = Weights::from_map(all, &dir.display().to_string());
        let m = crate::train::load_params(ClipTrain::new(&config, device), &mut w, device)?;
        let text_dir = run_text_dir(dir, cfg).ok_or_else(|| {
            ModelError::Config(format!(
                "{}: the run's text tower is neither in text/ nor at the recorded --text-model {:?}",
                dir.display(),
                config.text_model
            ))
        })?;
        let te = crate::text::TextEncoder::open(&text_dir, device)?;
        if te.bert.config.hidden_size != config.text_dim {
            return Err(ModelError::Config(format!(
                "{}: the text tower is {} wide, but the run trained on {}-wide features",
                text_dir.display(),
                te.bert.config.hidden_size,
                config.text_dim
            )));
        }
        let logit_scale = (m.logit_scale.val().into_scalar::<f32>() as f64).min(MAX_LOGIT_SCALE);
        let mut files = vec![dir.join("model.safetensors"), head];
        files.extend(safetensors_in(&text_dir));
        Ok(DualEncoder {
            kind: "radfm CLIP run".into(),
            vision: m.vision,
            visual_projection: m.visual_projection,
            text: Text::Bert {
                bert: te.bert,
                pool: BertPool::Token(Pooling::Mean),
                normalize_features: true,
                proj: vec![m.text_projection],
            },
            tokenizer: te.tokenizer,
            context_length: te.max_len,
            logit_scale,
            processor: None,
            files,
            device: device.clone(),
        })
    }

    fn open_clip(dir: &Path, device: &Device) -> Result<DualEncoder, ModelError> {
        let p = crate::open_clip::load(dir, device)?;
        let tokenizer = Tokenizer::open(dir)?;
        let text = match p.text {
            OpenClipText::Clip(clip) => Text::Clip {
                tower: clip.text,
                proj: clip.text_projection,
            },
            OpenClipText::Bert {
                bert,
                pooling,
                proj,
            } => Text::Bert {
                bert: *bert,
                pool: pooling,
                normalize_features: false,
                proj,
            },
        };
        let files = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .take(1)
            .collect();
        Ok(DualEncoder {
            kind: format!("open_clip ({})", p.layout),
            vision: p.vision,
            visual_projection: p.visual_projection,
            text,
            tokenizer,
            context_length: p.context_length,
            logit_scale: p.logit_scale,
            processor: Some(p.processor),
            files,
            device: device.clone(),
        })
    }

    /// Width of the shared embedding space.
    pub fn dim(&self) -> usize {
        self.visual_projection.weight.val().dims()[1]
    }

    /// Normalised image embeddings `[batch, dim]` of preprocessed images,
    /// the batch cut into `parts` run side by side.
    pub fn embed_images(&self, x: Tensor<4>, parts: usize) -> Result<Tensor<2>, ModelError> {
        let out = self.vision.forward_parts(x, parts)?;
        Ok(l2_normalize(self.visual_projection.forward(out.pooled)))
    }

    /// Normalised text embeddings of `texts` in order, `batch` at a time
    /// (batches run one per core), and how many texts were cut at the
    /// context length.
    pub fn embed_texts(
        &self,
        texts: &[&str],
        batch: usize,
    ) -> Result<(Vec<Vec<f32>>, usize), ModelError> {
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
        let chunks: Vec<&[&str]> = texts.chunks(batch.max(1)).collect();
        let mut out = Vec::with_capacity(texts.len());
        let mut truncated = 0;
        let d = self.dim();
        for group in chunks.chunks(threads) {
            let mut work = Vec::with_capacity(group.len());
            for chunk in group {
                let b = self.tokenizer.batch(chunk, self.context_length)?;
                truncated += b.truncated;
                let (ids, mask) = b.tensors(&self.device);
                work.push((self.text.clone(), ids, mask));
            }
            let results =
                crate::train::on_threads(work, |(text, ids, mask)| encode_text(&text, ids, mask));
            for r in results {
                let v: Vec<f32> = r?
                    .into_data()
                    .try_to_vec()
                    .map_err(|e| ModelError::Format(format!("{e:?}")))?;
                out.extend(v.chunks_exact(d).map(<[f32]>::to_vec));
            }
        }
        Ok((out, truncated))
    }
}

fn encode_text(
    text: &Text,
    ids: Tensor<2, Int>,
    mask: Tensor<2, Int>,
) -> Result<Tensor<2>, ModelError> {
    match text {
        Text::Clip { tower, proj } => {
            let (_, pooled) = tower.forward(ids, mask)?;
            Ok(l2_normalize(proj.forward(pooled)))
        }
        Text::Bert {
            bert,
            pool,
            normalize_features,
            proj,
        } => {
            let [b, _] = ids.dims();
            let d = bert.config.hidden_size;
            let o = bert.forward(ids, mask.clone(), None)?;
            let mut f = match pool {
                BertPool::Token(Pooling::Mean) => mean_pool(o.last_hidden_state, mask),
                BertPool::Token(Pooling::Cls) => {
                    o.last_hidden_state.narrow(1, 0, 1).reshape([b, d])
                }
                BertPool::Pooler => o
                    .pooled
                    .ok_or_else(|| ModelError::Config("the text tower has no pooler".into()))?,
            };
            if *normalize_features {
                f = l2_normalize(f);
            }
            for (i, l) in proj.iter().enumerate() {
                f = l.forward(f);
                if i + 1 < proj.len() {
                    f = burn::tensor::activation::gelu(f);
                }
            }
            Ok(l2_normalize(f))
        }
    }
}
