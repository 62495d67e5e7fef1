//! open_clip checkpoint directories: `open_clip_config.json` beside
//! `open_clip_model.safetensors` or `open_clip_pytorch_model.bin` (read by
//! [`crate::torch_pickle`], which runs no pickled code), and the text
//! tokenizer's `tokenizer.json`.
//!
//! Two architectures are read, by renaming their tensors onto the towers
//! radfm already has:
//! - **OpenAI CLIP** (open_clip's native `CLIP`, the format of OpenAI's and
//!   CheXzero's checkpoints): a CLIP ViT and a causal text transformer, fused
//!   `in_proj` attention, `proj` matrices applied as `x @ proj`. They map onto
//!   HF `CLIPModel`.
//! - **timm image tower + HF text tower** (`CustomTextCLIP`, BiomedCLIP's
//!   layout): a timm `VisionTransformer` trunk with a linear head, and a HF
//!   BERT with a pooler (`cls_last_hidden_state_pooler`, `mean_pooler` or
//!   `cls_pooler`) and a `linear` or `mlp` projection.
//!
//! Head counts are not stored in the weights: open_clip's config gives them
//! for the native towers; for timm and HF towers the head width is the
//! standard 64, unless the directory has the text tower's HF `config.json`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::{json, Value};

use crate::bert::{Bert, BertConfig};
use crate::layers::{load_linear, Act};
use crate::text::Pooling;
use crate::train::Arrays;
use crate::vit::{Flavour, PosEmbed, Vit, VitConfig};
use crate::weights::Weights;
use crate::ModelError;

pub const CONFIG: &str = "open_clip_config.json";

/// OpenAI's image normalisation, open_clip's default.
const OPENAI_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const OPENAI_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

pub fn is_open_clip(dir: &Path) -> bool {
    dir.join(CONFIG).is_file()
}

/// What an open_clip directory turns into.
pub struct Parts {
    pub vision: Vit,
    pub visual_projection: burn::nn::Linear,
    pub text: OpenClipText,
    pub logit_scale: f64,
    pub context_length: usize,
    /// the image preprocessing as an HF image-processor config
    pub processor: Value,
    /// "OpenAI CLIP" or "timm + HF text"
    pub layout: &'static str,
}

pub enum OpenClipText {
    /// the native causal text tower, as HF `CLIPModel` (tower, projection)
    Clip(Box<crate::clip::Clip>),
    Bert {
        bert: Box<Bert>,
        pooling: BertPool,
        /// one linear map, or two with GELU between (`mlp`); empty: identity
        proj: Vec<burn::nn::Linear>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BertPool {
    Token(Pooling),
    /// BERT's dense + tanh pooler
    Pooler,
}

fn cfg_err(dir: &Path, what: impl std::fmt::Display) -> ModelError {
    ModelError::Config(format!("{}: {what}", dir.join(CONFIG).display()))
}

/// The weight file: safetensors first, else a PyTorch zip checkpoint.
fn weight_file(dir: &Path) -> Result<PathBuf, ModelError> {
    for f in [
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "open_clip_pytorch_model.pt",
    ] {
        if dir.join(f).is_file() {
            return Ok(dir.join(f));
        }
    }
    Err(ModelError::Format(format!(
        "{}: no open_clip_model.safetensors or open_clip_pytorch_model.bin",
        dir.display()
    )))
}

fn read_arrays(path: &Path) -> Result<Arrays, ModelError> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let mut w = Weights::open(path)?;
        let names: Vec<String> = w.names().map(str::to_string).collect();
        names
            .into_iter()
            .map(|n| Ok((n.clone(), w.raw(&n)?)))
            .collect()
    } else {
        crate::torch_pickle::read(path)
    }
}

fn shape(a: &Arrays, name: &str, dir: &Path) -> Result<Vec<usize>, ModelError> {
    a.get(name)
        .map(|t| t.0.clone())
        .ok_or_else(|| ModelError::Missing(dir.display().to_string(), name.to_string()))
}

/// How many `prefix{i}.` blocks there are.
fn count_blocks(a: &Arrays, prefix: &str) -> usize {
    (0..)
        .take_while(|i| a.keys().any(|k| k.starts_with(&format!("{prefix}{i}."))))
        .count()
}

/// Split a fused `[3d, d]` (or `[3d]`) projection into query, key, value.
fn split3(t: (Vec<usize>, Vec<f32>)) -> [(Vec<usize>, Vec<f32>); 3] {
    let (mut s, v) = t;
    s[0] /= 3;
    let n = v.len() / 3;
    [0, 1, 2].map(|i| (s.clone(), v[i * n..(i + 1) * n].to_vec()))
}

fn transpose(t: (Vec<usize>, Vec<f32>)) -> (Vec<usize>, Vec<f32>) {
    let (s, v) = t;
    let (r, c) = (s[0], s[1]);
    let mut out = vec![0f32; v.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    (vec![c, r], out)
}

/// The preprocessing open_clip applies (resize the shortest side, centre crop,
/// normalise), as an HF image-processor config.
fn processor(cfg: &Value, image_size: usize) -> Value {
    let p = &cfg["preprocess_cfg"];
    let triple = |v: &Value, d: [f64; 3]| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
            .filter(|a| a.len() == 3)
            .unwrap_or(d.to_vec())
    };
    let resample = match p["interpolation"].as_str() {
        Some("bilinear") => 2,
        _ => 3,
    };
    json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": true, "size": {"shortest_edge": image_size}, "resample": resample,
        "do_center_crop": true, "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": true, "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": triple(&p["mean"], OPENAI_MEAN), "image_std": triple(&p["std"], OPENAI_STD),
        "do_convert_rgb": true,
    })
}

fn image_size(v: &Value) -> Option<usize> {
    v.as_u64()
        .or_else(|| v.as_array().and_then(|a| a.first()?.as_u64()))
        .map(|s| s as usize)
}

/// Load an open_clip directory.
pub fn load(dir: &Path, device: &Device) -> Result<Parts, ModelError> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let cfg: Value = serde_json::from_str(&text).map_err(|e| cfg_err(dir, e))?;
    let model = if cfg["model_cfg"].is_object() {
        &cfg["model_cfg"]
    } else {
        &cfg
    };
    let file = weight_file(dir)?;
    let arrays = read_arrays(&file)?;
    if model["vision_cfg"]["timm_model_name"].is_string() {
        load_timm_hf(dir, &cfg, model, arrays, device)
    } else if model["text_cfg"]["hf_model_name"].is_string() {
        Err(cfg_err(
            dir,
            "a HF text tower with open_clip's own image tower is not supported (supported: \
             OpenAI CLIP, and a timm image tower with a HF text tower)",
        ))
    } else {
        load_native(dir, &cfg, model, arrays, device)
    }
}

fn load_native(
    dir: &Path,
    cfg: &Value,
    model: &Value,
    mut a: Arrays,
    device: &Device,
) -> Result<Parts, ModelError> {
    let (vc, tc) = (&model["vision_cfg"], &model["text_cfg"]);
    if !vc.is_object() || !tc.is_object() {
        return Err(cfg_err(dir, "model_cfg needs vision_cfg and text_cfg"));
    }
    if vc["layers"].is_array() {
        return Err(cfg_err(
            dir,
            "a ResNet image tower (vision_cfg.layers is a list) is not supported; only ViT",
        ));
    }
    let conv = shape(&a, "visual.conv1.weight", dir)?;
    let (width, patch) = (conv[0], conv[2]);
    let proj = shape(&a, "visual.proj", dir)?;
    let embed = proj[1];
    let head_width = vc["head_width"].as_u64().unwrap_or(64) as usize;
    let mlp = shape(&a, "visual.transformer.resblocks.0.mlp.c_fc.weight", dir)?[0];
    let tok = shape(&a, "token_embedding.weight", dir)?;
    let ctx = shape(&a, "positional_embedding", dir)?[0];
    let tmlp = shape(&a, "transformer.resblocks.0.mlp.c_fc.weight", dir)?[0];
    let act = if model["quick_gelu"].as_bool() == Some(true) {
        "quick_gelu"
    } else {
        "gelu"
    };
    let size = image_size(&vc["image_size"]).unwrap_or(224);
    let hf = json!({
        "model_type": "clip",
        "projection_dim": embed,
        "vision_config": {
            "hidden_size": width, "intermediate_size": mlp,
            "num_hidden_layers": count_blocks(&a, "visual.transformer.resblocks."),
            "num_attention_heads": width / head_width, "image_size": size, "patch_size": patch,
            "num_channels": conv[1], "hidden_act": act, "layer_norm_eps": 1e-5,
        },
        "text_config": {
            "vocab_size": tok[0], "hidden_size": tok[1], "intermediate_size": tmlp,
            "num_hidden_layers": count_blocks(&a, "transformer.resblocks."),
            "num_attention_heads": tc["heads"].as_u64().unwrap_or(8),
            "max_position_embeddings": ctx, "hidden_act": act, "layer_norm_eps": 1e-5,
            // the pooled token is the first largest id (the end-of-text token)
            "eos_token_id": 2,
        },
    });
    // rename onto HF CLIPModel
    let mut out = Arrays::new();
    let mut put = |k: String, v| {
        out.insert(k, v);
    };
    let names: Vec<String> = a.keys().cloned().collect();
    for n in names {
        let t = a.remove(&n).expect("listed");
        let (tower, rest) = if let Some(r) = n.strip_prefix("visual.") {
            ("vision_model.", r)
        } else {
            ("text_model.", n.as_str())
        };
        if n.ends_with("attn_mask") || rest == "input_resolution" {
            continue;
        }
        if let Some(r) = rest.strip_prefix("transformer.resblocks.") {
            let (i, leaf) = r.split_once('.').ok_or_else(|| cfg_err(dir, &n))?;
            let l = format!("{tower}encoder.layers.{i}.");
            match leaf {
                "attn.in_proj_weight" | "attn.in_proj_bias" => {
                    let kind = if leaf.ends_with("weight") {
                        "weight"
                    } else {
                        "bias"
                    };
                    for (p, v) in ["q_proj", "k_proj", "v_proj"].iter().zip(split3(t)) {
                        put(format!("{l}self_attn.{p}.{kind}"), v);
                    }
                }
                _ => {
                    let leaf = leaf
                        .replace("attn.out_proj", "self_attn.out_proj")
                        .replace("ln_1", "layer_norm1")
                        .replace("ln_2", "layer_norm2")
                        .replace("mlp.c_fc", "mlp.fc1")
                        .replace("mlp.c_proj", "mlp.fc2");
                    put(format!("{l}{leaf}"), t);
                }
            }
            continue;
        }
        let name = match (tower, rest) {
            ("vision_model.", "class_embedding") => {
                "vision_model.embeddings.class_embedding".into()
            }
            ("vision_model.", "positional_embedding") => {
                "vision_model.embeddings.position_embedding.weight".into()
            }
            ("vision_model.", "conv1.weight") => {
                "vision_model.embeddings.patch_embedding.weight".into()
            }
            ("vision_model.", "proj") => {
                put("visual_projection.weight".into(), transpose(t));
                continue;
            }
            ("vision_model.", r) if r.starts_with("ln_pre.") => {
                format!("vision_model.pre_layrnorm.{}", &r[7..])
            }
            ("vision_model.", r) if r.starts_with("ln_post.") => {
                format!("vision_model.post_layernorm.{}", &r[8..])
            }
            (_, "token_embedding.weight") => "text_model.embeddings.token_embedding.weight".into(),
            (_, "positional_embedding") => "text_model.embeddings.position_embedding.weight".into(),
            (_, "text_projection") => {
                put("text_projection.weight".into(), transpose(t));
                continue;
            }
            (_, "logit_scale") => "logit_scale".into(),
            (_, r) if r.starts_with("ln_final.") => {
                format!("text_model.final_layer_norm.{}", &r[9..])
            }
            _ => n.clone(), // left for the strict check to name
        };
        put(name, t);
    }
    let mut w = Weights::from_map(out, &dir.display().to_string());
    let clip = crate::clip::Clip::load(&hf, &mut w, device)?;
    let left = w.unused(|_| false);
    if !left.is_empty() {
        return Err(ModelError::Format(format!(
            "{}: {} tensors were not used, e.g. {}",
            dir.display(),
            left.len(),
            left[..left.len().min(5)].join(", ")
        )));
    }
    let scale = clip.logit_scale.val().into_scalar::<f32>() as f64;
    let context_length = tc["context_length"].as_u64().map_or(ctx, |c| c as usize);
    Ok(Parts {
        vision: clip.vision.clone(),
        visual_projection: clip.visual_projection.clone(),
        logit_scale: scale,
        context_length: context_length.min(ctx),
        processor: processor(cfg, size),
        layout: "OpenAI CLIP",
        text: OpenClipText::Clip(Box::new(clip)),
    })
}

/// Attention heads for a timm ViT: 64-wide heads, except where timm's own
/// model name says otherwise.
fn timm_heads(name: &str, width: usize) -> Result<usize, String> {
    if name.contains("huge") || name.contains("giant") {
        return Err(format!(
            "timm model {name}: its head count is not the standard 64-wide; not supported"
        ));
    }
    if !width.is_multiple_of(64) {
        return Err(format!(
            "timm model {name}: width {width} is not a multiple of the 64-wide heads"
        ));
    }
    Ok(width / 64)
}

fn load_timm_hf(
    dir: &Path,
    cfg: &Value,
    model: &Value,
    a: Arrays,
    device: &Device,
) -> Result<Parts, ModelError> {
    let (vc, tc) = (&model["vision_cfg"], &model["text_cfg"]);
    let timm = vc["timm_model_name"].as_str().unwrap_or("");
    if !timm.starts_with("vit_") {
        return Err(cfg_err(
            dir,
            format!("timm model {timm}: only timm VisionTransformers (vit_*) are supported"),
        ));
    }
    if !tc["hf_model_name"].is_string() {
        return Err(cfg_err(
            dir,
            "a timm image tower needs a HF text tower (text_cfg.hf_model_name)",
        ));
    }
    match vc["timm_pool"].as_str().unwrap_or("") {
        "" | "token" => {}
        p => {
            return Err(cfg_err(
                dir,
                format!("timm_pool {p:?}: only the class token ('' or 'token') is supported"),
            ))
        }
    }
    let t = "visual.trunk.";
    for unsupported in ["norm_pre.weight", "fc_norm.weight", "blocks.0.ls1.gamma"] {
        if a.contains_key(&format!("{t}{unsupported}")) {
            return Err(cfg_err(
                dir,
                format!("the timm trunk has {unsupported}, which is not supported"),
            ));
        }
    }
    let pos = shape(&a, &format!("{t}pos_embed"), dir)?;
    let conv = shape(&a, &format!("{t}patch_embed.proj.weight"), dir)?;
    let (width, patch) = (pos[2], conv[2]);
    let size = image_size(&vc["image_size"]).unwrap_or(224);
    let grid = size / patch;
    if pos[1] != 1 + grid * grid {
        return Err(cfg_err(
            dir,
            format!(
                "pos_embed has {} tokens, not 1 + ({size}/{patch})^2: only a class token is supported",
                pos[1]
            ),
        ));
    }
    let vit_config = VitConfig {
        flavour: Flavour::Vit,
        image_size: size,
        patch_size: patch,
        num_channels: conv[1],
        hidden_size: width,
        num_hidden_layers: count_blocks(&a, &format!("{t}blocks.")),
        num_attention_heads: timm_heads(timm, width).map_err(|e| cfg_err(dir, e))?,
        intermediate_size: shape(&a, &format!("{t}blocks.0.mlp.fc1.weight"), dir)?[0],
        hidden_act: Act::Gelu,
        layer_norm_eps: 1e-6,
        qkv_bias: a.contains_key(&format!("{t}blocks.0.attn.qkv.bias")),
        layerscale_value: None,
        num_register_tokens: 0,
        position_embedding: PosEmbed::Learned,
        pre_layernorm: false,
        pooler: false,
        drop_path_rate: 0.0,
    };
    // rename: the trunk onto HF ViTModel, the text tower onto BertModel
    let mut v = Arrays::new();
    let mut txt = Arrays::new();
    let mut rest = Arrays::new();
    for (n, arr) in a {
        if let Some(r) = n.strip_prefix(t) {
            let name = match r {
                "cls_token" => "embeddings.cls_token".to_string(),
                "pos_embed" => "embeddings.position_embeddings".to_string(),
                r if r.starts_with("patch_embed.proj.") => {
                    format!("embeddings.patch_embeddings.projection.{}", &r[17..])
                }
                r if r.starts_with("norm.") => format!("layernorm.{}", &r[5..]),
                r if r.starts_with("blocks.") => {
                    let (i, leaf) = r[7..].split_once('.').ok_or_else(|| cfg_err(dir, &n))?;
                    let l = format!("encoder.layer.{i}.");
                    if let Some(kind) = leaf.strip_prefix("attn.qkv.") {
                        for (p, x) in ["query", "key", "value"].iter().zip(split3(arr)) {
                            v.insert(format!("{l}attention.attention.{p}.{kind}"), x);
                        }
                        continue;
                    }
                    let leaf = leaf
                        .replace("norm1", "layernorm_before")
                        .replace("norm2", "layernorm_after")
                        .replace("attn.proj", "attention.output.dense")
                        .replace("mlp.fc1", "intermediate.dense")
                        .replace("mlp.fc2", "output.dense");
                    format!("{l}{leaf}")
                }
                _ => n.clone(),
            };
            v.insert(name, arr);
        } else if let Some(r) = n.strip_prefix("text.transformer.") {
            txt.insert(r.to_string(), arr);
        } else {
            rest.insert(n, arr);
        }
    }
    let mut vw = Weights::from_map(v, &dir.display().to_string());
    let vision = Vit::load(&vit_config, &mut vw, device)?;
    let mut left: Vec<String> = vw.unused(|_| false);
    // the text tower: its config from the directory's config.json when it has
    // a BERT one, else from the weights' shapes with 64-wide heads
    let word = txt
        .get("embeddings.word_embeddings.weight")
        .map(|t| t.0.clone())
        .ok_or_else(|| {
            ModelError::Missing(
                dir.display().to_string(),
                "text.transformer.embeddings.word_embeddings.weight".into(),
            )
        })?;
    let hidden = word[1];
    let sh = |k: &str| -> Result<Vec<usize>, ModelError> {
        txt.get(k).map(|t| t.0.clone()).ok_or_else(|| {
            ModelError::Missing(dir.display().to_string(), format!("text.transformer.{k}"))
        })
    };
    let bert_config = match crate::hf::read_config(dir) {
        Ok(c) if c["model_type"] == "bert" => BertConfig::from_hf(&c)?,
        _ => BertConfig {
            vocab_size: word[0],
            hidden_size: hidden,
            num_hidden_layers: (0..)
                .take_while(|i| {
                    txt.keys()
                        .any(|k| k.starts_with(&format!("encoder.layer.{i}.")))
                })
                .count(),
            num_attention_heads: if hidden.is_multiple_of(64) {
                hidden / 64
            } else {
                1
            },
            intermediate_size: sh("encoder.layer.0.intermediate.dense.weight")?[0],
            hidden_act: Act::Gelu,
            max_position_embeddings: sh("embeddings.position_embeddings.weight")?[0],
            type_vocab_size: sh("embeddings.token_type_embeddings.weight")?[0],
            layer_norm_eps: 1e-12,
        },
    };
    let pooling = match tc["hf_pooler_type"].as_str().unwrap_or("mean_pooler") {
        "cls_last_hidden_state_pooler" => BertPool::Token(Pooling::Cls),
        "mean_pooler" => BertPool::Token(Pooling::Mean),
        "cls_pooler" => BertPool::Pooler,
        other => {
            return Err(cfg_err(
                dir,
                format!(
                    "hf_pooler_type {other:?} is not supported (cls_last_hidden_state_pooler, \
                     mean_pooler, cls_pooler)"
                ),
            ))
        }
    };
    let mut tw = Weights::from_map(txt, &dir.display().to_string());
    let bert = Bert::load(&bert_config, &mut tw, device)?;
    left.extend(
        tw.unused(|k| {
            k.ends_with("position_ids") || (pooling != BertPool::Pooler && k.starts_with("pooler."))
        })
        .into_iter()
        .map(|k| format!("text.transformer.{k}")),
    );
    if pooling == BertPool::Pooler && bert.pooler.is_none() {
        return Err(cfg_err(
            dir,
            "cls_pooler needs the text tower's pooler weights",
        ));
    }
    let embed = shape(&rest, "visual.head.proj.weight", dir)?[0];
    let mut rw = Weights::from_map(rest, &dir.display().to_string());
    let proj_bias = rw.contains("visual.head.proj.bias");
    let visual_projection =
        load_linear(&mut rw, "visual.head.proj", width, embed, proj_bias, device)?;
    let proj = match tc["hf_proj_type"].as_str().unwrap_or("mlp") {
        "mlp" => {
            let mid = (hidden + embed) / 2;
            let b0 = rw.contains("text.proj.0.bias");
            let b2 = rw.contains("text.proj.2.bias");
            vec![
                load_linear(&mut rw, "text.proj.0", hidden, mid, b0, device)?,
                load_linear(&mut rw, "text.proj.2", mid, embed, b2, device)?,
            ]
        }
        "linear" => {
            let b = rw.contains("text.proj.bias");
            vec![load_linear(&mut rw, "text.proj", hidden, embed, b, device)?]
        }
        "none" | "" if hidden == embed => Vec::new(),
        other => {
            return Err(cfg_err(
                dir,
                format!("hf_proj_type {other:?} is not supported (mlp, linear)"),
            ))
        }
    };
    let (_, scale) = rw.raw("logit_scale")?;
    left.extend(rw.unused(|_| false));
    if !left.is_empty() {
        return Err(ModelError::Format(format!(
            "{}: {} tensors were not used, e.g. {}",
            dir.display(),
            left.len(),
            left[..left.len().min(5)].join(", ")
        )));
    }
    let context_length = tc["context_length"]
        .as_u64()
        .map_or(bert_config.max_position_embeddings, |c| c as usize)
        .min(bert_config.max_position_embeddings);
    Ok(Parts {
        vision,
        visual_projection,
        text: OpenClipText::Bert {
            bert: Box::new(bert),
            pooling,
            proj,
        },
        logit_scale: scale.first().copied().unwrap_or(0.0) as f64,
        context_length,
        processor: processor(cfg, size),
        layout: "timm + HF text",
    })
}
