//! LoRA on radfm's encoders, built on burn's own implementation
//! (`Module::apply_lora`, parameter groups by path, `materialize` to merge),
//! and Hugging Face PEFT's adapter format in both directions.
//!
//! burn attaches a [`burn::module::LoraAdapter`] to a frozen 2-D weight: the
//! factors `a` (`[d_in, r]`) and `b` (`[r, d_out]`) with a scale, every other
//! parameter of the module frozen. Two things are added here:
//!
//! - [`linear`], the forward of a linear layer that uses the adapter as PEFT
//!   does, `x W + scale * (x a) b`, instead of composing the dense weight
//!   `W + scale * a b` on every call. Same values; but the backward no longer
//!   forms a weight-shaped gradient for each adapted layer, only the
//!   low-rank ones.
//! - the names: which projections of a ViT can be adapted ([`sites`]), how
//!   `--targets` selects them ([`resolve`]), and the module names PEFT uses
//!   for them under transformers 5 (`attention.q_proj`, `mlp.fc1`) and 4.x
//!   (`attention.attention.query`, `intermediate.dense`).
//!
//! A PEFT adapter stores `lora_A.weight` as `[r, d_in]` and `lora_B.weight`
//! as `[d_out, r]` (PyTorch's `[out, in]` layout); burn's factors are their
//! transposes, since a burn `Linear` weight is `[in, out]`. The scale is
//! `lora_alpha / r`, or `lora_alpha / sqrt(r)` with `use_rslora`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Lora, Module, ModuleMapper, Param, ParamGroup};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::train::named_params;
use crate::vit::{Flavour, Vit, VitConfig};
use crate::weights::Weights;
use crate::ModelError;

/// The short names `--targets` accepts, one per kind of projection.
pub const ROLES: [&str; 7] = ["q", "k", "v", "o", "fc1", "fc2", "pooler"];

/// One linear projection of a ViT that LoRA can adapt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// the module path in radfm's model, e.g. `blocks.3.attn.query`
    pub path: String,
    /// one of [`ROLES`]
    pub role: &'static str,
    /// the module's name in transformers 5, which is what PEFT writes with it
    pub name: String,
    /// its name in transformers 4.x (most published adapters)
    pub legacy: String,
    pub d_in: usize,
    pub d_out: usize,
}

/// Every projection of an encoder that LoRA can adapt, in model order: per
/// block the query, key, value and output projections and the two MLP
/// layers, then the pooler where there is one. The patch embedding is a
/// convolution in every checkpoint, so PEFT never targets it; neither does radfm.
pub fn sites(c: &VitConfig) -> Vec<Site> {
    let (d, m) = (c.hidden_size, c.intermediate_size);
    let p = c.flavour.prefix();
    let mut out = Vec::new();
    for i in 0..c.num_hidden_layers {
        let old = c.flavour.block(p, i);
        let new = |role: &str| -> String {
            match c.flavour {
                Flavour::Dinov2 => match role {
                    "fc1" | "fc2" => format!("encoder.layer.{i}.mlp.{role}"),
                    r => format!("encoder.layer.{i}.attention.{r}_proj"),
                },
                Flavour::Vit => match role {
                    "fc1" | "fc2" => format!("layers.{i}.mlp.{role}"),
                    r => format!("layers.{i}.attention.{r}_proj"),
                },
                // CLIP's module names did not change
                Flavour::ClipVision => match role {
                    "q" => old.query.clone(),
                    "k" => old.key.clone(),
                    "v" => old.value.clone(),
                    "o" => old.out.clone(),
                    "fc1" => old.fc1.clone(),
                    _ => old.fc2.clone(),
                },
            }
        };
        let b = format!("blocks.{i}");
        let rows: [(&'static str, String, &String, usize, usize); 6] = [
            ("q", format!("{b}.attn.query"), &old.query, d, d),
            ("k", format!("{b}.attn.key"), &old.key, d, d),
            ("v", format!("{b}.attn.value"), &old.value, d, d),
            ("o", format!("{b}.attn.out"), &old.out, d, d),
            ("fc1", format!("{b}.mlp.fc1"), &old.fc1, d, m),
            ("fc2", format!("{b}.mlp.fc2"), &old.fc2, m, d),
        ];
        for (role, path, legacy, d_in, d_out) in rows {
            out.push(Site {
                path,
                role,
                name: new(role),
                legacy: legacy.clone(),
                d_in,
                d_out,
            });
        }
    }
    if c.pooler {
        out.push(Site {
            path: "pooler".into(),
            role: "pooler",
            name: format!("{p}pooler.dense"),
            legacy: format!("{p}pooler.dense"),
            d_in: d,
            d_out: d,
        });
    }
    out
}

/// Whether module `name` is `target` or ends with `.target`: how PEFT matches
/// a `target_modules` entry.
fn suffix_match(name: &str, target: &str) -> bool {
    name == target
        || (name.len() > target.len()
            && name.ends_with(target)
            && name.as_bytes()[name.len() - target.len() - 1] == b'.')
}

/// The projections `--targets` names: `q,v`-style short names (see [`ROLES`]),
/// `all-linear` (every projection, as PEFT's `all-linear` on these models),
/// or module names as PEFT's `target_modules` takes them (`query`,
/// `attention.q_proj`, `intermediate.dense`, ...), in either transformers
/// naming. An entry that names nothing is an error listing what there is.
pub fn resolve(c: &VitConfig, targets: &str) -> Result<Vec<Site>, ModelError> {
    let all = sites(c);
    if targets.trim() == "all-linear" {
        return Ok(all);
    }
    let mut keep = vec![false; all.len()];
    for t in targets.split(',').map(str::trim) {
        if t.is_empty() {
            continue;
        }
        let mut hit = false;
        for (k, s) in all.iter().enumerate() {
            if s.role == t || suffix_match(&s.name, t) || suffix_match(&s.legacy, t) {
                keep[k] = true;
                hit = true;
            }
        }
        if !hit {
            let roles: Vec<&str> = ROLES
                .iter()
                .copied()
                .filter(|r| all.iter().any(|s| s.role == *r))
                .collect();
            let first: Vec<String> = all
                .iter()
                .take(6)
                .map(|s| format!("{} ({})", s.name, s.legacy))
                .collect();
            return Err(ModelError::Config(format!(
                "--targets: {t:?} names no linear layer of this {:?} encoder. Available: {}, \
                 all-linear, or module names as PEFT takes them, e.g. those of the first block: {}",
                c.flavour,
                roles.join(", "),
                first.join(", ")
            )));
        }
    }
    let chosen: Vec<Site> = all
        .into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect();
    if chosen.is_empty() {
        return Err(ModelError::Config("--targets: no layer given".into()));
    }
    Ok(chosen)
}

/// A LoRA configuration: rank, scaling and the adapted projections (module paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// rank-stabilised scaling: alpha / sqrt(rank) instead of alpha / rank
    #[serde(default)]
    pub rslora: bool,
    #[serde(default)]
    pub dropout: f64,
    /// the module paths of the adapted projections ([`Site::path`])
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// The factor of the low-rank update, as PEFT computes it.
    pub fn scale(&self) -> f64 {
        scale(self.alpha, self.rank, self.rslora)
    }
}

fn scale(alpha: f64, rank: usize, rslora: bool) -> f64 {
    if rslora {
        alpha / (rank as f64).sqrt()
    } else {
        alpha / rank as f64
    }
}

/// `vit` with LoRA adapters on `cfg.targets` (burn's `apply_lora`): every
/// parameter of the encoder frozen, the new factors trainable, `b` zero so the
/// encoder's output is unchanged until it trains. `a` is drawn with the
/// standard deviation of PEFT's default (Kaiming-uniform) initialisation for
/// a `hidden_size` input.
pub fn attach(vit: Vit, cfg: &LoraConfig) -> Result<Vit, ModelError> {
    if cfg.rank == 0 {
        return Err(ModelError::Config("--rank must be at least 1".into()));
    }
    let known: Vec<String> = sites(&vit.config).into_iter().map(|s| s.path).collect();
    if let Some(t) = cfg.targets.iter().find(|t| !known.contains(t)) {
        return Err(ModelError::Config(format!(
            "LoRA target {t} is not a projection of this encoder"
        )));
    }
    let group = ParamGroup::from_paths(
        cfg.targets
            .iter()
            .map(|t| format!("{t}.weight"))
            .collect::<Vec<_>>(),
    );
    // burn scales by alpha / rank: pass the alpha that gives PEFT's scale
    let mut lora = Lora::new(cfg.rank, cfg.scale() * cfg.rank as f64).set_param_group(group);
    lora.init_std = Some(1.0 / (3.0 * vit.config.hidden_size as f64).sqrt());
    let vit = vit.apply_lora(lora);
    let attached = adapted_paths(&vit);
    if attached.len() != cfg.targets.len() {
        return Err(ModelError::Config(format!(
            "LoRA: {} targets asked for, {} adapters attached",
            cfg.targets.len(),
            attached.len()
        )));
    }
    Ok(vit)
}

/// The module paths of the adapted linear layers of `m`.
pub fn adapted_paths<M: Module>(m: &M) -> Vec<String> {
    named_params(m)
        .keys()
        .filter_map(|k| k.strip_suffix(".weight.lora.a").map(str::to_string))
        .collect()
}

/// A linear layer's forward, adapter-aware: `x W + b` for a plain layer; for
/// an adapted one `x W + b + scale * (drop(x) a) b`, PEFT's order of
/// operations, where `drop` is the LoRA dropout of a [`dropout_scope`] on
/// this thread (none outside one).
pub fn linear<const D: usize>(l: &Linear, x: Tensor<D>) -> Tensor<D> {
    let bias = l.bias.as_ref().map(|b| b.val());
    match l.weight.adapter() {
        None => burn::tensor::module::linear(x, l.weight.val(), bias),
        Some(ad) => {
            let branch = match dropout_mask(&x) {
                Some(m) => x.clone() * m,
                None => x.clone(),
            };
            let low = burn::tensor::module::linear(
                burn::tensor::module::linear(branch, ad.a.val(), None),
                ad.b.val(),
                None,
            );
            burn::tensor::module::linear(x, l.weight.base(), bias) + low * ad.scale
        }
    }
}

/// The LoRA dropout in force on a thread: rate, seed, the block being run
/// and how many adapted layers it has run so far.
#[derive(Clone, Copy)]
struct Dropout {
    rate: f64,
    seed: u64,
    block: u64,
    call: u64,
}

thread_local! {
    static DROPOUT: std::cell::Cell<Option<Dropout>> = const { std::cell::Cell::new(None) };
}

/// While the returned guard lives, every adapted layer that [`linear`] runs
/// on this thread drops its LoRA branch's input elementwise with probability
/// `rate`, the kept entries scaled by 1 / (1 - rate) (PEFT's `lora_dropout`,
/// torch's `Dropout`). A layer's mask is a function of `seed`, the block
/// being run ([`dropout_block`]) and the layer's place in it, so a forward
/// that is run again (activation recomputation) draws the same masks, and a
/// run stays a function of its seed. Outside a scope (evaluation, inference)
/// there is no dropout.
pub fn dropout_scope(rate: f64, seed: u64) -> DropoutScope {
    let active = (rate > 0.0).then_some(Dropout {
        rate,
        seed,
        block: 0,
        call: 0,
    });
    DropoutScope(DROPOUT.replace(active))
}

/// Restores the thread's previous LoRA dropout when dropped.
pub struct DropoutScope(Option<Dropout>);

impl Drop for DropoutScope {
    fn drop(&mut self) {
        DROPOUT.set(self.0);
    }
}

/// Marks the start of block `i` (the encoder's blocks in order; the layers
/// after the last one as the depth) for the masks of [`dropout_scope`].
pub fn dropout_block(i: usize) {
    DROPOUT.with(|d| {
        if let Some(mut s) = d.get() {
            s.block = i as u64;
            s.call = 0;
            d.set(Some(s));
        }
    });
}

/// The next dropout mask for an adapted layer's input `x`, if a scope is in force.
fn dropout_mask<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    use rand::{Rng, SeedableRng};
    let mut s = DROPOUT.with(|d| d.get())?;
    let key = radfm_core::seed::spread(radfm_core::seed::spread(s.seed, s.block), s.call);
    s.call += 1;
    DROPOUT.with(|d| d.set(Some(s)));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(key);
    let keep = (1.0 / (1.0 - s.rate)) as f32;
    let p = s.rate as f32;
    let shape = x.shape();
    let v: Vec<f32> = (0..shape.num_elements())
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
        .collect();
    Some(Tensor::from_data(TensorData::new(v, shape), &x.device()))
}

/// Parameters of `m`: (trainable, total), adapter factors included.
pub fn count_params<M: Module>(m: &M) -> (usize, usize) {
    struct C(usize, usize);
    impl burn::module::ModuleVisitor for C {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let n = p.shape().num_elements();
            self.1 += n;
            if p.is_require_grad() {
                self.0 += n;
            }
        }
    }
    let mut c = C(0, 0);
    m.visit(&mut c);
    (c.0, c.1)
}

/// A PEFT LoRA adapter read for an encoder.
#[derive(Debug, Clone)]
pub struct PeftAdapter {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    /// by module path: (a `[d_in, r]`, b `[r, d_out]` with the module's scale folded in, r)
    factors: BTreeMap<String, (Vec<f32>, Vec<f32>, usize)>,
    /// tensors of the adapter outside the image encoder (a CLIP text tower,
    /// projections): not used
    pub ignored: Vec<String>,
    /// which naming the keys used: "transformers 5", "transformers 4" or both
    pub naming: &'static str,
}

impl PeftAdapter {
    /// The adapted module paths.
    pub fn targets(&self) -> Vec<String> {
        self.factors.keys().cloned().collect()
    }

    /// `base_model_name_or_path` of its config, when set.
    pub fn base_model(&self) -> Option<&str> {
        self.config["base_model_name_or_path"]
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// The base checksum radfm recorded beside an adapter it wrote (`radfm_base.json`).
    pub fn base_sha256(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(RADFM_BASE)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["sha256"].as_str().map(str::to_string)
    }
}

/// The file radfm writes beside an adapter: its base model and checksum (PEFT ignores it).
pub const RADFM_BASE: &str = "radfm_base.json";

/// Read the PEFT adapter in `dir` (`adapter_config.json` and
/// `adapter_model.safetensors`) for an encoder of configuration `c`. Every
/// LoRA factor must belong to a projection of the encoder, with its shape;
/// factors of a CLIP model's text tower and projections are set aside.
pub fn read_peft(dir: &Path, c: &VitConfig) -> Result<PeftAdapter, ModelError> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Format(format!("{}: {e}", cfg_path.display())))?;
    let bad = |why: String| ModelError::Config(format!("{}: {why}", cfg_path.display()));
    match config["peft_type"].as_str() {
        Some("LORA") => {}
        other => {
            return Err(bad(format!(
                "peft_type {other:?}: only LoRA adapters (\"LORA\") are supported"
            )))
        }
    }
    for (flag, why) in [
        ("use_dora", "DoRA adapters are not supported"),
        (
            "fan_in_fan_out",
            "fan_in_fan_out (Conv1D layers) does not apply to these encoders",
        ),
        ("lora_bias", "adapters with a LoRA bias are not supported"),
    ] {
        if config[flag].as_bool() == Some(true) {
            return Err(bad(format!("{flag} is true: {why}")));
        }
    }
    if let Some(b) = config["bias"].as_str().filter(|b| *b != "none") {
        return Err(bad(format!(
            "bias {b:?}: the adapter trains biases of the base model, which radfm does not apply (only bias \"none\")"
        )));
    }
    let alpha = config["lora_alpha"]
        .as_f64()
        .ok_or_else(|| bad("no lora_alpha".into()))?;
    let rslora = config["use_rslora"].as_bool().unwrap_or(false);
    let pattern = |key: &str, name: &str| -> Option<f64> {
        config[key]
            .as_object()?
            .iter()
            .find(|(k, _)| suffix_match(name, k))
            .and_then(|(_, v)| v.as_f64())
    };
    let file = dir.join("adapter_model.safetensors");
    if !file.is_file() {
        let why = if dir.join("adapter_model.bin").is_file() {
            "the adapter is a pickled adapter_model.bin; radfm reads adapter_model.safetensors only \
             (convert it with safetensors.torch.save_file)"
        } else {
            "no adapter_model.safetensors"
        };
        return Err(ModelError::Config(format!("{}: {why}", dir.display())));
    }
    let mut w = Weights::open(&file)?;
    let all = sites(c);
    let p = c.flavour.prefix();
    let (mut factors, mut ignored) = (BTreeMap::new(), Vec::new());
    let (mut new_names, mut old_names) = (false, false);
    // by module path: lora_A and lora_B as (shape, values)
    type Pair = [Option<(Vec<usize>, Vec<f32>)>; 2];
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    let names: Vec<String> = w.names().map(str::to_string).collect();
    for key in names {
        let module = key.strip_prefix("base_model.model.").unwrap_or(&key);
        let (module, which) = match (
            module
                .strip_suffix(".lora_A.weight")
                .or_else(|| module.strip_suffix(".lora_A.default.weight")),
            module
                .strip_suffix(".lora_B.weight")
                .or_else(|| module.strip_suffix(".lora_B.default.weight")),
        ) {
            (Some(m), _) => (m, 0),
            (_, Some(m)) => (m, 1),
            _ => {
                return Err(bad(format!(
                    "{key} is not a LoRA factor (lora_A / lora_B); modules_to_save and trained \
                     embeddings are not supported"
                )))
            }
        };
        if c.flavour == Flavour::ClipVision
            && (module.contains("text_model.")
                || module.ends_with("text_projection")
                || module.ends_with("visual_projection"))
        {
            ignored.push(key.clone());
            let _ = w.raw(&key)?;
            continue;
        }
        let site = all.iter().find(|s| {
            // a wrapper's prefix (vit., dinov2.) is allowed; CLIP's tower may be named without its own
            let bare = |n: &str| n.strip_prefix(p).map(str::to_string);
            let hit = |n: &str| {
                suffix_match(module, n) || bare(n).is_some_and(|b| suffix_match(module, &b))
            };
            let (a, b) = (hit(&s.name), hit(&s.legacy));
            if a && s.name != s.legacy {
                new_names = true;
            }
            if b && s.name != s.legacy {
                old_names = true;
            }
            a || b
        });
        let Some(site) = site else {
            return Err(bad(format!(
                "{key}: module {module} is not a linear layer of this {:?} encoder \
                 (is the adapter for another model?)",
                c.flavour
            )));
        };
        let t = w.raw(&key)?;
        pairs.entry(site.path.clone()).or_default()[which] = Some(t);
    }
    for (path, pair) in pairs {
        let site = all.iter().find(|s| s.path == path).expect("site of a pair");
        let [Some((sa, va)), Some((sb, vb))] = pair else {
            return Err(bad(format!(
                "{}: only one of lora_A and lora_B is present",
                site.name
            )));
        };
        let mismatch = |what: &str, shape: &[usize]| {
            ModelError::Config(format!(
                "{}: {} {what} has shape {shape:?}, but {} of the base model maps {} to {} features: \
                 the adapter was made for another base model",
                dir.display(),
                site.name,
                site.name,
                site.d_in,
                site.d_out
            ))
        };
        if sa.len() != 2 || sa[1] != site.d_in {
            return Err(mismatch("lora_A", &sa));
        }
        let r = sa[0];
        if sb.len() != 2 || sb[0] != site.d_out || sb[1] != r {
            return Err(mismatch("lora_B", &sb));
        }
        let a_alpha = pattern("alpha_pattern", &site.name)
            .or_else(|| pattern("alpha_pattern", &site.legacy))
            .unwrap_or(alpha);
        let s = scale(a_alpha, r, rslora) as f32;
        // burn's factors are the transposes of PyTorch's
        let a = transpose(&va, r, site.d_in);
        let b: Vec<f32> = transpose(&vb, site.d_out, r)
            .into_iter()
            .map(|x| x * s)
            .collect();
        factors.insert(path, (a, b, r));
    }
    if factors.is_empty() {
        return Err(bad(
            "the adapter has no LoRA factor for the image encoder".into()
        ));
    }
    let naming = match (new_names, old_names) {
        (true, true) => "transformers 4 and 5",
        (false, true) => "transformers 4",
        _ => "transformers 5",
    };
    Ok(PeftAdapter {
        dir: dir.to_path_buf(),
        config,
        factors,
        ignored,
        naming,
    })
}

/// `rows x cols` row-major values, transposed.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = v[i * cols + j];
        }
    }
    out
}

/// `vit` with the adapter's factors attached (its scales folded into `b`).
pub fn apply_peft(vit: Vit, adapter: &PeftAdapter, device: &Device) -> Result<Vit, ModelError> {
    let (_, (_, _, r0)) = adapter.factors.iter().next().expect("a factor");
    let cfg = LoraConfig {
        rank: *r0,
        alpha: *r0 as f64,
        rslora: false,
        dropout: 0.0,
        targets: adapter.targets(),
    };
    // attached with scale 1; the module's own scale is in its b
    let vit = attach(vit, &cfg)?;
    struct Set<'a> {
        path: Vec<String>,
        factors: &'a BTreeMap<String, (Vec<f32>, Vec<f32>, usize)>,
        device: Device,
    }
    impl ModuleMapper for Set<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let path = self.path.join(".");
            let (module, which) = match (
                path.strip_suffix(".weight.lora.a"),
                path.strip_suffix(".weight.lora.b"),
            ) {
                (Some(m), _) => (m, 0),
                (_, Some(m)) => (m, 1),
                _ => return p,
            };
            let Some((a, b, r)) = self.factors.get(module) else {
                return p;
            };
            let dims = p.val().dims();
            let (values, shape) = if which == 0 {
                (a.clone(), [dims[0], *r])
            } else {
                (b.clone(), [*r, dims[1]])
            };
            let mut s = [0usize; D];
            s.copy_from_slice(&shape[..D]);
            let t = Tensor::<D>::from_data(TensorData::new(values, s), &self.device);
            let t = if p.val().is_require_grad() {
                t.require_grad()
            } else {
                t
            };
            Param::initialized(p.id, t)
        }
    }
    Ok(vit.map(&mut Set {
        path: Vec::new(),
        factors: &adapter.factors,
        device: device.clone(),
    }))
}

/// Write the adapters of `vit` (attached with `cfg`) as a PEFT adapter
/// directory: `adapter_config.json` and `adapter_model.safetensors` with the
/// module names of transformers 5 (what PEFT loads them onto), plus
/// `radfm_base.json` with the base model's path and checksum. Written into a
/// temporary directory first and renamed, so `dir` is complete or absent.
pub fn write_peft(
    dir: &Path,
    vit: &Vit,
    cfg: &LoraConfig,
    base_model: &str,
    base_sha256: &str,
) -> Result<(), ModelError> {
    let params = named_params(vit);
    let all = sites(&vit.config);
    let mut tensors = BTreeMap::new();
    let mut names = Vec::new();
    for t in &cfg.targets {
        let site = all
            .iter()
            .find(|s| &s.path == t)
            .ok_or_else(|| ModelError::Config(format!("LoRA target {t} is not a projection")))?;
        let get = |k: &str| {
            params
                .get(&format!("{t}.weight.lora.{k}"))
                .ok_or_else(|| ModelError::Config(format!("{t} has no LoRA adapter to write")))
        };
        let ((sa, va), (sb, vb)) = (get("a")?, get("b")?);
        let key = format!("base_model.model.{}", site.name);
        tensors.insert(
            format!("{key}.lora_A.weight"),
            (vec![sa[1], sa[0]], transpose(va, sa[0], sa[1])),
        );
        tensors.insert(
            format!("{key}.lora_B.weight"),
            (vec![sb[1], sb[0]], transpose(vb, sb[0], sb[1])),
        );
        names.push(site.name.clone());
    }
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": null,
        "base_model_name_or_path": base_model,
        "revision": null,
        "inference_mode": true,
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "use_rslora": cfg.rslora,
        "target_modules": names,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "modules_to_save": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": false,
        "lora_bias": false,
        "layers_to_transform": null,
        "layers_pattern": null,
    });
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    crate::train::save_safetensors(&tmp.join("adapter_model.safetensors"), &tensors)?;
    let write = |name: &str, v: &serde_json::Value| {
        let p = tmp.join(name);
        radfm_core::write_atomic(
            &p,
            serde_json::to_string_pretty(v).expect("json").as_bytes(),
        )
        .map_err(|e| ModelError::io(&p, e))
    };
    write("adapter_config.json", &config)?;
    write(
        RADFM_BASE,
        &serde_json::json!({"base_model": base_model, "sha256": base_sha256,
            "flavour": vit.config.flavour, "written_by": "radfm"}),
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| ModelError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vit::PosEmbed;

    fn tiny(flavour: Flavour) -> VitConfig {
        let mut c = VitConfig::preset("vit-tiny", 16, 4, 1).unwrap();
        c.flavour = flavour;
        c.hidden_size = 16;
        c.num_attention_heads = 2;
        c.intermediate_size = 32;
        c.num_hidden_layers = 2;
        c.position_embedding = PosEmbed::Learned;
        c.pooler = flavour == Flavour::Vit;
        c
    }

    #[test]
    fn targets_resolve_by_role_by_either_naming_and_all_linear() {
        let c = tiny(Flavour::Vit);
        let paths = |t: &str| -> Vec<String> {
            resolve(&c, t)
                .unwrap()
                .into_iter()
                .map(|s| s.path)
                .collect()
        };
        let qv = vec![
            "blocks.0.attn.query",
            "blocks.0.attn.value",
            "blocks.1.attn.query",
            "blocks.1.attn.value",
        ];
        assert_eq!(paths("q,v"), qv);
        assert_eq!(paths("query,value"), qv);
        assert_eq!(paths("q_proj, v_proj"), qv);
        assert_eq!(paths("attention.attention.value,q"), qv);
        // ViT 4.x: intermediate.dense is fc1, output.dense fc2 (and attention.output.dense o)
        assert_eq!(
            paths("intermediate.dense"),
            vec!["blocks.0.mlp.fc1", "blocks.1.mlp.fc1"]
        );
        assert_eq!(paths("all-linear").len(), 2 * 6 + 1);
        assert_eq!(paths("all-linear").last().unwrap(), "pooler");
        let err = resolve(&c, "q,qkv").unwrap_err().to_string();
        assert!(
            err.contains("\"qkv\"") && err.contains("fc1") && err.contains("q_proj"),
            "{err}"
        );
        // DINOv2's MLP keeps its name in both namings
        let d = tiny(Flavour::Dinov2);
        let s = &resolve(&d, "fc2").unwrap()[0];
        assert_eq!(
            (s.name.as_str(), s.legacy.as_str()),
            ("encoder.layer.0.mlp.fc2", "encoder.layer.0.mlp.fc2")
        );
        let s = &resolve(&tiny(Flavour::ClipVision), "o").unwrap()[0];
        assert_eq!(s.name, "vision_model.encoder.layers.0.self_attn.out_proj");
    }

    #[test]
    fn attach_freezes_the_base_and_trains_only_the_factors() {
        let device = crate::device("cpu").unwrap().autodiff();
        let c = tiny(Flavour::Dinov2);
        let vit = Vit::new(&c, &device);
        let (_, total0) = count_params(&vit);
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            rslora: false,
            dropout: 0.0,
            targets: resolve(&c, "q,v")
                .unwrap()
                .into_iter()
                .map(|s| s.path)
                .collect(),
        };
        let x = Tensor::<4>::random([2, 1, 16, 16], burn::tensor::Distribution::Default, &device);
        let before: Vec<f32> = vit
            .forward(x.clone())
            .unwrap()
            .pooled
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let vit = attach(vit, &cfg).unwrap();
        let (trainable, total) = count_params(&vit);
        // 4 adapted 16x16 layers, r = 4: a 16x4 and b 4x16 each
        assert_eq!(trainable, 4 * (16 * 4 + 4 * 16));
        assert_eq!(total, total0 + trainable);
        // b = 0: the output is unchanged
        let after: Vec<f32> = vit
            .forward(x)
            .unwrap()
            .pooled
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(before, after);
        assert_eq!(adapted_paths(&vit), cfg.targets);
        assert!((cfg.scale() - 2.0).abs() < 1e-12);
        let rs = LoraConfig {
            rslora: true,
            ..cfg
        };
        assert!((rs.scale() - 4.0).abs() < 1e-12);
    }

    #[test]
    fn suffix_matching_is_by_whole_module_names() {
        assert!(suffix_match("layers.0.attention.q_proj", "q_proj"));
        assert!(suffix_match(
            "layers.0.attention.q_proj",
            "attention.q_proj"
        ));
        assert!(!suffix_match("layers.0.attention.xq_proj", "q_proj"));
        assert!(suffix_match("q_proj", "q_proj"));
    }
}
