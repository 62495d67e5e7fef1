//! Opening a checkpoint directory by its `config.json`: radfm's own run
//! directories, HF `Dinov2Model`, `ViTModel`, `CLIPModel` and `BertModel`.

use std::path::Path;

use burn::tensor::Device;

use crate::bert::{Bert, BertConfig};
use crate::clip::Clip;
use crate::vit::{Vit, VitConfig};
use crate::weights::Weights;
use crate::ModelError;

/// A non-negative integer field `key` of the `config.json` object `c` (whose
/// path in the file is `section`, "" for the top level), or `default`.
pub(crate) fn cfg_usize(
    c: &serde_json::Value,
    section: &str,
    key: &str,
    default: Option<usize>,
) -> Result<usize, ModelError> {
    c[key]
        .as_u64()
        .map(|v| v as usize)
        .or(default)
        .ok_or_else(|| {
            ModelError::Config(format!(
                "config.json: {section}{key} missing or not an integer"
            ))
        })
}

/// `DIR/config.json`, parsed.
pub fn read_config(dir: &Path) -> Result<serde_json::Value, ModelError> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Format(format!("{}: {e}", p.display())))
}

/// Fail when the checkpoint holds tensors the model did not read (a sign of a
/// wrong architecture guess), except those `ignore` names.
fn strict(w: &Weights, dir: &Path, ignore: impl Fn(&str) -> bool) -> Result<(), ModelError> {
    let left = w.unused(ignore);
    if left.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Format(format!(
            "{}: {} checkpoint tensors were not used, e.g. {}",
            dir.display(),
            left.len(),
            left.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// The image encoder's configuration of a supported directory, from its
/// `config.json` alone, and whether it is a radfm run's `model/`.
fn encoder_config(dir: &Path, cfg: &serde_json::Value) -> Result<(VitConfig, bool), ModelError> {
    if cfg["model_type"] == "radfm_vit" {
        let config = serde_json::from_value::<VitConfig>(cfg["vit"].clone())
            .map_err(|e| ModelError::Config(format!("{}/config.json: {e}", dir.display())))?;
        Ok((config, true))
    } else {
        Ok((VitConfig::from_hf(cfg)?, false))
    }
}

/// The image encoder's configuration of any supported directory, without
/// reading its weights.
pub fn image_encoder_config(dir: &Path) -> Result<VitConfig, ModelError> {
    Ok(encoder_config(dir, &read_config(dir)?)?.0)
}

/// The image encoder of any supported directory.
pub fn load_image_encoder(dir: &Path, device: &Device) -> Result<Vit, ModelError> {
    let (config, ours) = encoder_config(dir, &read_config(dir)?)?;
    if ours {
        // a radfm run's model/: the encoder's parameters by module path in
        // model.safetensors (a CLIP run keeps its projections beside it)
        let mut w = Weights::open(&dir.join("model.safetensors"))?;
        let vit = crate::train::load_params(Vit::new(&config, device), &mut w, device)?;
        strict(&w, dir, |_| false)?;
        return Ok(vit);
    }
    let mut w = Weights::open(dir)?;
    let vit = Vit::load(&config, &mut w, device)?;
    strict(&w, dir, |k| {
        // the unused parts of a checkpoint: DINOv2's mask token (for iBOT), CLIP's
        // text tower and projections, the heads of a pretraining run
        k.ends_with("mask_token")
            || k.starts_with("text_model.")
            || k.starts_with("text_projection")
            || k.starts_with("visual_projection")
            || k == "logit_scale"
            || k.starts_with("head.")
            || k.starts_with("decoder.")
            || (k.starts_with("pooler.") && !config.pooler)
    })?;
    Ok(vit)
}

pub fn load_bert(dir: &Path, device: &Device) -> Result<Bert, ModelError> {
    let cfg = read_config(dir)?;
    let config = BertConfig::from_hf(&cfg)?;
    let mut w = Weights::open(dir)?;
    let bert = Bert::load(&config, &mut w, device)?;
    strict(&w, dir, |k| {
        k.ends_with("position_ids") || k.starts_with("cls.") || k.contains("pooler.")
    })?;
    Ok(bert)
}

pub fn load_clip(dir: &Path, device: &Device) -> Result<Clip, ModelError> {
    let cfg = read_config(dir)?;
    if cfg["model_type"] != "clip" {
        return Err(ModelError::Config(format!(
            "{}: model_type {} is not clip",
            dir.display(),
            cfg["model_type"]
        )));
    }
    let mut w = Weights::open(dir)?;
    let clip = Clip::load(&cfg, &mut w, device)?;
    strict(&w, dir, |k| k.ends_with("position_ids"))?;
    Ok(clip)
}
