//! `radfm bench vit`: the training-step and inference timings that
//! `bench/vit_step.py` compares with PyTorch.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor, TensorData};
use radfm_model::head::{bce_with_logits, Classifier};
use radfm_model::train::{default_parts, parallel_grads, split_rows, AdamW, AdamWConfig};
use radfm_model::vit::{PosEmbed, Vit, VitConfig};

use crate::cli::{BenchCommand, FinetuneBenchArgs, MethodArg};

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let cmd = match cmd {
        BenchCommand::Finetune(b) => return finetune(b),
        BenchCommand::Retrieval {
            embeddings,
            queries,
            k,
            approximate,
        } => return retrieval(&embeddings, &queries, k, approximate),
        other => other,
    };
    let BenchCommand::Vit {
        steps,
        warmup,
        infer_reps,
        device,
        parts,
    } = cmd
    else {
        unreachable!("handled above")
    };
    let dev = radfm_model::device(device.as_str())?;
    let ad = dev.clone().autodiff();
    ad.seed(0);
    let mut cfg = VitConfig::preset("vit-tiny", 64, 8, 1).expect("preset");
    cfg.num_hidden_layers = 6;
    cfg.position_embedding = PosEmbed::Learned;
    let mut model = Classifier::new(Vit::new(&cfg, &ad), 14, &ad);
    let mut opt = AdamW::new(AdamWConfig::default());
    let b = 32;
    let x = Tensor::<4>::random([b, 1, 64, 64], Distribution::Normal(0.0, 1.0), &ad);
    let y: Vec<f32> = (0..b * 14)
        .map(|i| f32::from(u8::from(i % 3 == 0)))
        .collect();
    let y = Tensor::<2>::from_data(TensorData::new(y, [b, 14]), &ad);
    let requested = parts;
    let parts = if parts == 0 { default_parts(b) } else { parts };
    let mut times = Vec::new();
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        let chunks: Vec<_> = split_rows(b, parts)
            .into_iter()
            .map(|r| (x.clone().slice(r.clone()), y.clone().slice(r)))
            .collect();
        let (grads, _) = parallel_grads(&model, chunks, |m, (x, y)| {
            let share = x.dims()[0] as f64 / b as f64;
            Ok(bce_with_logits(m.forward(x), y) * share)
        })?;
        let (m, _) = opt.update(model, &grads, 1e-4);
        model = m;
        // wait for the step to finish
        let _ = model.head.weight.val().into_data();
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let train = times[times.len() / 2];

    // inference: ViT-S/16, batch 16, 224 px, 3 channels, no autodiff
    let s = VitConfig::preset("vit-small", 224, 16, 3).expect("preset");
    dev.seed(0);
    let vit = Vit::new(&s, &dev);
    let x = Tensor::<4>::random([16, 3, 224, 224], Distribution::Normal(0.0, 1.0), &dev);
    let infer_parts = if requested == 0 {
        default_parts(16)
    } else {
        requested
    };
    let mut inf = Vec::new();
    for i in 0..infer_reps.max(1) + 1 {
        let t0 = Instant::now();
        let o = vit.forward_parts(x.clone(), infer_parts)?;
        let _ = o.pooled.into_data();
        if i > 0 {
            inf.push(t0.elapsed().as_secs_f64());
        }
    }
    inf.sort_by(f64::total_cmp);
    let infer = inf[inf.len() / 2];
    println!(
        "{}",
        serde_json::json!({"train_step_s": train, "train_steps": steps, "infer_s": infer, "infer_reps": infer_reps, "parts": parts, "infer_parts": infer_parts,
                           "device": device.as_str()})
    );
    Ok(())
}

/// Random images and labels, made on the fly (the data loader is not what is measured).
struct Noise {
    n: usize,
    len: usize,
    targets: Vec<Vec<f32>>,
}

impl radfm_model::pretrain::ImageSet for Noise {
    fn len(&self) -> usize {
        self.n
    }
    fn image(&self, i: usize, _rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
        (0..self.len)
            .map(|k| (((i * 7919 + k * 104_729) % 1000) as f32 / 500.0) - 1.0)
            .collect()
    }
    fn paired(&self, i: usize) -> Option<&[f32]> {
        Some(&self.targets[i % self.targets.len()])
    }
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn finetune(b: FinetuneBenchArgs) -> anyhow::Result<()> {
    use radfm_model::finetune::{FineTune, FinetuneConfig, Method};
    use radfm_model::lora::{self, LoraConfig};
    use radfm_model::pretrain::{PretrainConfig, Run};
    use radfm_model::train::Schedule;
    let dev = radfm_model::device("cpu")?;
    let enc = VitConfig::preset(&b.model, b.image_size, b.patch, 1)
        .ok_or_else(|| anyhow::anyhow!("--model {}: a radfm preset", b.model))?;
    let method = match b.method {
        MethodArg::Full => Method::Full,
        MethodArg::Lora => Method::Lora,
    };
    let k = radfm_core::observation::Observation::ALL.len();
    let lora_cfg = (method == Method::Lora)
        .then(|| -> anyhow::Result<LoraConfig> {
            Ok(LoraConfig {
                rank: b.rank,
                alpha: b.rank as f64,
                rslora: false,
                dropout: 0.0,
                targets: lora::resolve(&enc, &b.targets)?
                    .into_iter()
                    .map(|s| s.path)
                    .collect(),
            })
        })
        .transpose()?;
    let parts = b.parts.unwrap_or_else(|| default_parts(b.batch));
    let recompute = super::finetune::recompute_blocks(b.recompute, method, enc.num_hidden_layers);
    let total = (b.warmup + b.steps) as u64;
    let config = PretrainConfig {
        objective: "finetune".into(),
        mae: None,
        clip: None,
        finetune: Some(FinetuneConfig {
            encoder: enc.clone(),
            method,
            lora: lora_cfg,
            observations: (0..k).map(|j| format!("o{j}")).collect(),
            pos_weight: None,
            layer_decay: None,
            recompute,
        }),
        augment: None,
        init: None,
        accumulate: 1,
        parts,
        batch: b.batch,
        // one more than is run: no checkpoint is written inside the timing
        steps: total + 1,
        schedule: Schedule {
            lr: 1e-4,
            min_lr: 1e-6,
            warmup_steps: 1,
            total_steps: total + 1,
        },
        adamw: AdamWConfig::default(),
        seed: 0,
        checkpoint_every: u64::MAX,
        images: 256,
    };
    let data = Noise {
        n: 256,
        len: b.image_size * b.image_size,
        targets: (0..7)
            .map(|i| {
                (0..2 * k)
                    .map(|j| f32::from(u8::from(j >= k || (i + j) % 3 == 0)))
                    .collect()
            })
            .collect(),
    };
    let tmp = std::env::temp_dir().join(format!("radfm-bench-finetune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let rss_before = peak_rss_mib();
    let mut run = Run::<FineTune>::open(config, &tmp, false, &dev)?;
    run.set_parts_in_flight(b.parts_in_flight);
    let (trainable, params) = lora::count_params(run.model());
    let mut times = Vec::new();
    for i in 0..total as usize {
        let log = run.step(&data)?;
        if i >= b.warmup {
            times.push(b.batch as f64 / log.images_per_s);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({"method": b.method.as_str(), "model": b.model, "image_size": b.image_size,
            "batch": b.batch, "parts": parts, "parts_in_flight": b.parts_in_flight, "recompute": recompute, "trainable": trainable, "params": params,
            "step_s": times[times.len() / 2], "steps": b.steps,
            "peak_rss_mib": peak_rss_mib(), "rss_at_start_mib": rss_before})
    );
    Ok(())
}

/// Time exact top-k search of `queries` against `embeddings` (both float32
/// .npy, N x D and Q x D) through `retrieve`'s own search. Prints JSON with
/// the queries per second and the first queries' results, for comparison.
fn retrieval(
    embeddings: &std::path::Path,
    queries: &std::path::Path,
    k: usize,
    approximate: bool,
) -> anyhow::Result<()> {
    let read = |p: &std::path::Path| -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
        let n = radfm_core::npy::Npy::read(std::fs::File::open(p)?)?;
        Ok((n.shape.clone(), n.to_f32()))
    };
    let (es, e) = read(embeddings)?;
    let (qs, q) = read(queries)?;
    anyhow::ensure!(
        es.len() == 2 && qs.len() == 2 && es[1] == qs[1],
        "embeddings N x D and queries Q x D"
    );
    let t0 = Instant::now();
    let found = crate::commands::retrieve::top_k(&e, es[1], &q, k, &|_, _| false);
    let secs = t0.elapsed().as_secs_f64();
    let first: Vec<Vec<usize>> = found
        .iter()
        .take(5)
        .map(|r| r.iter().map(|x| x.0).collect())
        .collect();
    let mut out = serde_json::json!({
        "rows": es[0], "dim": es[1], "queries": qs[0], "k": k, "seconds": secs,
        "queries_per_s": qs[0] as f64 / secs, "first": first,
    });
    if approximate {
        use crate::commands::approx;
        let t0 = Instant::now();
        let h = approx::build(&e, es[1]);
        let build = t0.elapsed().as_secs_f64();
        let qv: Vec<Vec<f32>> = q.chunks_exact(qs[1]).map(<[f32]>::to_vec).collect();
        let t0 = Instant::now();
        let got = approx::search(&h, &qv, k, approx::ef_for(k));
        let search = t0.elapsed().as_secs_f64();
        out["hnsw"] = serde_json::json!({
            "crate": "hnsw_rs 0.3.5", "connections": approx::CONNECTIONS,
            "ef_construction": approx::EF_CONSTRUCTION, "ef_search": approx::ef_for(k),
            "build_seconds": build, "queries_per_s": qs[0] as f64 / search,
            "recall_at_k": approx::recall(&found, &got, k),
        });
    }
    println!("{out}");
    Ok(())
}
