//! The training engine: AdamW with weight-decay exclusions, a warmup + cosine
//! schedule, global-norm gradient clipping, and atomic checkpoints of the
//! model together with the optimizer and schedule state.
//!
//! Parameters are addressed by their module path (`blocks.3.attn.query.weight`),
//! so a checkpoint is a plain safetensors file readable from Python, and the
//! optimizer state survives a restart without depending on burn's runtime ids.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::weights::Weights;
use crate::ModelError;

/// Tracks the module path while a visitor or mapper walks a module.
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn path(&self) -> String {
        self.0.join(".")
    }
}

/// Every float parameter of `module` by path, as host arrays.
/// Named host arrays: path -> (shape, values).
pub type Arrays = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

pub fn named_params<M: Module>(module: &M) -> Arrays {
    struct V(PathStack, BTreeMap<String, (Vec<usize>, Vec<f32>)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.exit();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val();
            let shape = t.dims().to_vec();
            let v: Vec<f32> = t
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("f32 parameter");
            self.1.insert(self.0.path(), (shape, v));
        }
    }
    let mut v = V(PathStack::default(), BTreeMap::new());
    module.visit(&mut v);
    v.1
}

/// Replace every float parameter of `module` by the array of the same path in `w`.
pub fn load_params<M: Module>(
    module: M,
    w: &mut Weights,
    device: &Device,
) -> Result<M, ModelError> {
    struct L<'a> {
        path: PathStack,
        w: &'a mut Weights,
        device: Device,
        err: Option<ModelError>,
    }
    impl ModuleMapper for L<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let name = self.path.path();
            let (shape, _) = (p.val().dims(), ());
            match self.w.tensor::<D>(&name, shape, &self.device) {
                Ok(t) => {
                    let t = if p.val().is_require_grad() {
                        t.require_grad()
                    } else {
                        t
                    };
                    Param::initialized(p.id, t)
                }
                Err(e) => {
                    self.err.get_or_insert(e);
                    p
                }
            }
        }
    }
    let mut l = L {
        path: PathStack::default(),
        w,
        device: device.clone(),
        err: None,
    };
    let m = module.map(&mut l);
    match l.err {
        Some(e) => Err(e),
        None => Ok(m),
    }
}

/// Warmup then cosine decay to `min_lr`, by step (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// clip the global gradient norm to this (None: no clipping)
    pub clip_norm: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
            clip_norm: Some(1.0),
        }
    }
}

/// `inner` (a tensor of the inner backend) back on the autodiff backend of
/// `like`, with its gradient-checkpointing strategy: burn refuses to combine
/// tensors of different strategies, and `Tensor::from_inner` takes the default.
pub fn lift<const D: usize, const E: usize>(inner: Tensor<D>, like: &Tensor<E>) -> Tensor<D> {
    let t = Tensor::from_inner(inner);
    match like.gradient_checkpointing_strategy() {
        Some(s) if t.gradient_checkpointing_strategy() != Some(s) => {
            t.with_gradient_checkpointing_strategy(s)
        }
        _ => t,
    }
}

/// A copy of `module` whose trainable parameters are new autodiff leaves with
/// the same ids and values. Two replicas share no graph node, so burn keeps
/// their autodiff graphs apart and their backward passes can run at once;
/// their `GradientsParams` are keyed by the shared parameter ids.
pub fn replica<M: Module>(module: &M) -> M {
    struct Fresh;
    impl ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id = p.id;
            let t = p.val();
            let t = if t.is_require_grad() {
                lift(t.clone().inner(), &t).require_grad()
            } else {
                t
            };
            Param::initialized(id, t)
        }
    }
    module.clone().map(&mut Fresh)
}

/// The data-parallel parts for a batch of `batch` samples when none are asked
/// for: two per core (while one part waits on a lock or a gather, another
/// computes), at most 8, and at least 8 samples to a part.
pub fn default_parts(batch: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    (2 * cores).min(8).min(batch / 8).max(1)
}

/// `n` rows cut into `parts` contiguous ranges of near-equal size (the first
/// ones one longer), never more ranges than rows and at least one.
pub fn split_rows(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (q, r) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = q + usize::from(i < r);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

/// Data-parallel gradients on one machine: `loss(replica, part)` runs for
/// every part of a batch at once, each on its own replica of `model` and its
/// own thread, and the gradients are summed in part order (so the result
/// does not depend on thread timing). Each part's loss must already carry its
/// weight in the batch (for a mean loss: the part's share of the samples).
/// Returns the summed gradients and each part's loss value.
pub fn parallel_grads<M, I, F>(
    model: &M,
    parts: Vec<I>,
    loss: F,
) -> Result<(GradientsParams, Vec<f64>), ModelError>
where
    M: Module + Send,
    I: Send,
    F: Fn(&M, I) -> Result<Tensor<1>, ModelError> + Sync,
{
    parallel_part_grads(model, parts, 0, |rep, part| {
        Ok(loss_grads(loss(rep, part)?, rep))
    })
}

/// The gradients of the scalar loss `l` for the parameters of `model`, by
/// autodiff, with the loss's value.
pub fn loss_grads<M: Module>(l: Tensor<1>, model: &M) -> (GradientsParams, f64) {
    let value = l.clone().into_scalar::<f32>() as f64;
    (GradientsParams::from_grads(l.backward(), model), value)
}

/// [`parallel_grads`] for parts whose gradients `grads(replica, part)`
/// computes itself (by autodiff of a loss, or stage by stage with recomputed
/// activations), with at most `in_flight` parts computed at once (0: all). A
/// part holds its activations from its forward to its backward, so with more
/// parts than cores this bounds the memory; the result is the same bit for
/// bit. Summed in part order; returns the sum and each part's loss value.
pub fn parallel_part_grads<M, I, F>(
    model: &M,
    parts: Vec<I>,
    in_flight: usize,
    grads: F,
) -> Result<(GradientsParams, Vec<f64>), ModelError>
where
    M: Module + Send,
    I: Send,
    F: Fn(&M, I) -> Result<(GradientsParams, f64), ModelError> + Sync,
{
    // the replicas are made here: a module is Send but not Sync
    let work: Vec<(M, I)> = parts.into_iter().map(|p| (replica(model), p)).collect();
    let results = match in_flight {
        0 => on_threads(work, |(rep, part)| grads(&rep, part)),
        k => on_threads_bounded(work, k, |(rep, part)| grads(&rep, part)),
    };
    let mut acc = GradientsAccumulator::<M>::new();
    let mut losses = Vec::with_capacity(results.len());
    for r in results {
        let (g, v) = r?;
        acc.accumulate(model, g);
        losses.push(v);
    }
    Ok((acc.grads(), losses))
}

/// Data-parallel gradients for a loss that couples the whole batch (CLIP's
/// InfoNCE, where every sample is the others' negative). `embed(replica,
/// part)` maps each part to per-sample features at once, on its own replica
/// and thread; `head(model, features)` takes the joined `[batch, dim]`
/// features (a leaf of their own) to the batch loss. The loss's gradient with
/// respect to each part's features is then pushed back through that part's
/// graph, again all parts at once. The sum, head first and then parts in
/// order, is the gradient of `head(model, embed(model, batch))`.
/// Returns it with the loss value.
pub fn parallel_grads_coupled<M, I, E, H>(
    model: &M,
    parts: Vec<I>,
    embed: E,
    head: H,
) -> Result<(GradientsParams, f64), ModelError>
where
    M: Module + Send,
    I: Send,
    E: Fn(&M, I) -> Result<Tensor<2>, ModelError> + Sync,
    H: FnOnce(&M, Tensor<2>) -> Result<Tensor<1>, ModelError>,
{
    let embed_one = |rep: M, part: I| embed(&rep, part).map(|e| (rep, e));
    let work: Vec<(M, I)> = parts.into_iter().map(|p| (replica(model), p)).collect();
    let embedded = on_threads(work, |(rep, part)| embed_one(rep, part));
    let (mut reps, mut feats) = (Vec::new(), Vec::new());
    for r in embedded {
        let (rep, e) = r?;
        reps.push(rep);
        feats.push(e);
    }
    if feats.is_empty() {
        return Ok((GradientsParams::new(), 0.0));
    }
    let rows: Vec<usize> = feats.iter().map(|e| e.dims()[0]).collect();
    let joined = lift(
        Tensor::cat(feats.iter().map(|e| e.clone().inner()).collect(), 0),
        &feats[0],
    )
    .require_grad();
    let loss = head(model, joined.clone())?;
    let value = loss.clone().into_scalar::<f32>() as f64;
    let g = loss.backward();
    let d_joined = joined
        .grad(&g)
        .ok_or_else(|| ModelError::Config("the batch loss does not use the features".into()))?;
    let head_grads = GradientsParams::from_grads(g, model);
    let mut start = 0;
    let work: Vec<(M, Tensor<2>, Tensor<2>)> = reps
        .into_iter()
        .zip(feats)
        .zip(&rows)
        .map(|((rep, e), &n)| {
            let d = d_joined.clone().slice(start..start + n);
            start += n;
            (rep, e, d)
        })
        .collect();
    let part_grads = on_threads(work, |(rep, e, d)| {
        let d = lift(d, &e);
        let surrogate = (e * d).sum();
        GradientsParams::from_grads(surrogate.backward(), &rep)
    });
    let mut acc = GradientsAccumulator::<M>::new();
    acc.accumulate(model, head_grads);
    for g in part_grads {
        acc.accumulate(model, g);
    }
    Ok((acc.grads(), value))
}

/// `f` over `items`, each on its own scoped thread (the first on this one),
/// results in item order. The crate's one fan-out for CPU data parallelism:
/// burn's CPU backend keeps most of a pass on the thread that calls it.
pub(crate) fn on_threads<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items.map(|t| s.spawn(move || f(t))).collect();
        let mut out = vec![f(first)];
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("a data-parallel worker panicked")),
        );
        out
    })
}

/// [`on_threads`] with at most `workers` items in flight at once: each worker
/// takes the next item when it is done with one. Results in item order, so
/// the outcome does not depend on the schedule. Training parts hold their
/// autodiff graphs (the activations) from forward to backward: with more
/// parts than cores, bounding the parts in flight bounds the memory.
pub(crate) fn on_threads_bounded<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let workers = workers.clamp(1, n.max(1));
    if workers >= n {
        return on_threads(items, f);
    }
    let queue: Vec<std::sync::Mutex<Option<T>>> = items
        .into_iter()
        .map(|t| std::sync::Mutex::new(Some(t)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return done;
            }
            let t = queue[i]
                .lock()
                .expect("queue")
                .take()
                .expect("each item once");
            done.push((i, f(t)));
        }
    };
    let mut all: Vec<(usize, R)> = on_threads(vec![(); workers], |()| work())
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Parameters that get no weight decay: vectors (norm scales, biases, LayerScale)
/// and embeddings of positions and special tokens.
pub fn decays(path: &str, rank: usize) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    !(rank <= 1
        || path.contains("pos")
        || matches!(last, "cls" | "registers" | "mask_token" | "logit_scale"))
}

/// AdamW (Loshchilov and Hutter), decoupled decay, state keyed by parameter path.
pub struct AdamW {
    pub config: AdamWConfig,
    /// completed optimizer steps
    pub step: u64,
    state: BTreeMap<String, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> AdamW {
        AdamW {
            config,
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// One update of `module` with `grads` at learning rate `lr`. Returns the
    /// global gradient norm before clipping.
    pub fn update<M: Module>(&mut self, module: M, grads: &GradientsParams, lr: f64) -> (M, f64) {
        self.update_scaled(module, grads, lr, &|_| 1.0)
    }

    /// [`AdamW::update`] with the learning rate of each parameter multiplied
    /// by `scale(path)` (layer-wise decay); weight decay follows the scaled rate.
    pub fn update_scaled<M: Module>(
        &mut self,
        module: M,
        grads: &GradientsParams,
        lr: f64,
        scale: &dyn Fn(&str) -> f64,
    ) -> (M, f64) {
        // global norm over all gradients
        struct Norm<'a>(&'a GradientsParams, f64);
        impl ModuleVisitor for Norm<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(p.id) {
                    self.1 += g.powf_scalar(2.0).sum().into_scalar::<f32>() as f64;
                }
            }
        }
        let mut n = Norm(grads, 0.0);
        module.visit(&mut n);
        let norm = n.1.sqrt();
        let clip = match self.config.clip_norm {
            Some(c) if norm > c => c / (norm + 1e-6),
            _ => 1.0,
        };
        self.step += 1;
        struct Step<'a> {
            path: PathStack,
            grads: &'a GradientsParams,
            opt: &'a mut AdamW,
            lr: f64,
            clip: f64,
            scale: &'a dyn Fn(&str) -> f64,
        }
        impl ModuleMapper for Step<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.enter(name);
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.exit();
            }
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let Some(g) = self.grads.get::<D>(p.id) else {
                    return p;
                };
                let c = self.opt.config;
                let path = self.path.path();
                let x = p.val().inner();
                let shape = x.dims();
                let n: usize = shape.iter().product();
                let g = g.inner().reshape([n]) * self.clip;
                let (m, v) = match self.opt.state.remove(&path) {
                    Some(s) => s,
                    None => {
                        let dev = g.device();
                        (Tensor::zeros([n], &dev), Tensor::zeros([n], &dev))
                    }
                };
                let m = m * c.beta1 + g.clone() * (1.0 - c.beta1);
                let v = v * c.beta2 + g.powf_scalar(2.0) * (1.0 - c.beta2);
                let t = self.opt.step as i32;
                let mhat = m.clone() / (1.0 - c.beta1.powi(t));
                let vhat = v.clone() / (1.0 - c.beta2.powi(t));
                let lr = self.lr * (self.scale)(&path);
                let mut flat = x.reshape([n]);
                if c.weight_decay > 0.0 && decays(&path, D) {
                    flat = flat * (1.0 - lr * c.weight_decay);
                }
                let flat = flat - mhat / (vhat.sqrt() + c.eps) * lr;
                self.opt.state.insert(path, (m, v));
                let new = lift(flat.reshape(shape), &p.val()).require_grad();
                Param::initialized(p.id, new)
            }
        }
        let mut s = Step {
            path: PathStack::default(),
            grads,
            opt: self,
            lr,
            clip,
            scale,
        };
        (module.map(&mut s), norm)
    }

    /// The moments as named host arrays (`<path>.exp_avg`, `<path>.exp_avg_sq`).
    pub fn state_arrays(&self) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        let mut out = BTreeMap::new();
        for (k, (m, v)) in &self.state {
            for (suffix, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let data: Vec<f32> = t
                    .to_data()
                    .convert::<f32>()
                    .try_to_vec()
                    .expect("f32 state");
                out.insert(format!("{k}.{suffix}"), (vec![data.len()], data));
            }
        }
        out
    }

    pub fn load_state(
        &mut self,
        w: &mut Weights,
        step: u64,
        device: &Device,
    ) -> Result<(), ModelError> {
        self.state.clear();
        let names: Vec<String> = w.names().map(str::to_string).collect();
        for name in names.iter().filter(|n| n.ends_with(".exp_avg")) {
            let base = name.trim_end_matches(".exp_avg");
            let (_, m) = w.raw(name)?;
            let (_, v) = w.raw(&format!("{base}.exp_avg_sq"))?;
            let n = m.len();
            self.state.insert(
                base.to_string(),
                (
                    Tensor::from_data(TensorData::new(m, [n]), device),
                    Tensor::from_data(TensorData::new(v, [n]), device),
                ),
            );
        }
        self.step = step;
        Ok(())
    }
}

/// Write named arrays as one safetensors file, atomically (temporary file, fsync, rename).
pub fn save_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<(), ModelError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (s, v))| {
            (
                k.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("consistent view"),
            )
        })
        .collect();
    let data = safetensors::serialize(views, &None)
        .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    radfm_core::write_atomic(path, &data).map_err(|e| ModelError::io(path, e))
}

/// Every parameter's gradient in `grads`, in visiting order (tests compare
/// gradient sets computed in different ways).
#[cfg(test)]
pub(crate) fn param_grads<M: Module>(module: &M, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let g = self
                .0
                .get::<D>(p.id)
                .expect("every parameter has a gradient");
            self.1.push(g.into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(grads, Vec::new());
    module.visit(&mut c);
    c.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_covers_every_row_once() {
        let cases: [(usize, usize, &[usize]); 5] = [
            (32, 4, &[8, 8, 8, 8]),
            (7, 3, &[3, 2, 2]),
            (2, 5, &[1, 1]),
            (5, 0, &[5]),
            (0, 3, &[0]),
        ];
        for (n, parts, lens) in cases {
            let r = split_rows(n, parts);
            assert_eq!(
                r.iter().map(|r| r.len()).collect::<Vec<_>>(),
                lens,
                "{n} rows, {parts} parts"
            );
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, n);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start));
        }
        assert!((1..=8).contains(&default_parts(64)));
        assert_eq!(default_parts(8), 1);
    }

    #[test]
    fn parallel_parts_add_up_to_the_whole_batch_gradient() {
        use crate::head::{bce_with_logits, Classifier};
        use crate::vit::{PosEmbed, Vit, VitConfig};
        let device = crate::device("cpu").unwrap();
        let ad = device.clone().autodiff();
        let mut cfg = VitConfig::preset("vit-tiny", 16, 4, 1).unwrap();
        cfg.hidden_size = 32;
        cfg.num_hidden_layers = 2;
        cfg.num_attention_heads = 2;
        cfg.intermediate_size = 64;
        cfg.position_embedding = PosEmbed::Learned;
        ad.seed(3);
        let model = Classifier::new(Vit::new(&cfg, &ad), 5, &ad);
        let b = 7;
        let xv: Vec<f32> = (0..b * 256)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let yv: Vec<f32> = (0..b * 5)
            .map(|i| f32::from(u8::from(i % 3 == 0)))
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(xv, [b, 1, 16, 16]), &ad);
        let y = Tensor::<2>::from_data(TensorData::new(yv, [b, 5]), &ad);
        let run = |parts: usize| {
            let chunks: Vec<_> = split_rows(b, parts)
                .into_iter()
                .map(|r| (x.clone().slice(r.clone()), y.clone().slice(r)))
                .collect();
            let (g, losses) = parallel_grads(&model, chunks, |m, (x, y)| {
                let share = x.dims()[0] as f64 / b as f64;
                Ok(bce_with_logits(m.forward(x), y) * share)
            })
            .unwrap();
            (param_grads(&model, &g), losses.iter().sum::<f64>())
        };
        let (whole, loss1) = run(1);
        let (split, loss3) = run(3);
        assert!(
            (loss1 - loss3).abs() < 1e-6 * loss1.abs(),
            "{loss1} vs {loss3}"
        );
        assert_eq!(whole.len(), split.len());
        // attention key biases get a gradient of exactly zero up to rounding:
        // scales are floored at a thousandth of the largest gradient
        let top = whole.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        let mut worst = 0f32;
        for (w, s) in whole.iter().zip(&split) {
            let scale = w.iter().fold(top * 1e-3, |m, v| m.max(v.abs()));
            for (a, c) in w.iter().zip(s) {
                worst = worst.max((a - c).abs() / scale);
            }
        }
        assert!(
            worst < 1e-4,
            "parts disagree with the whole batch by {worst} of scale"
        );
        // the sum runs in part order: a rerun is bitwise the same whatever the timing
        let (again, _) = run(3);
        assert!(split
            .iter()
            .zip(&again)
            .all(|(a, c)| a.iter().zip(c).all(|(p, q)| p.to_bits() == q.to_bits())));
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = Schedule {
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert!((s.at(0) - 1e-4).abs() < 1e-12);
        assert!((s.at(9) - 1e-3).abs() < 1e-12);
        assert!((s.at(60) - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-12);
        assert!((s.at(110) - 1e-5).abs() < 1e-12);
        assert!((s.at(500) - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn decay_exclusions() {
        let cases = [
            ("blocks.0.attn.query.weight", 2, true),
            ("blocks.0.attn.query.bias", 1, false),
            ("blocks.0.norm1.gamma", 1, false),
            ("pos", 3, false),
            ("cls", 3, false),
            ("decoder.mask_token", 3, false),
            ("patch.weight", 2, true),
        ];
        for (path, rank, want) in cases {
            assert_eq!(decays(path, rank), want, "{path}");
        }
    }
}
