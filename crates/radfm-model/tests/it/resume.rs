//! Resume: 40 uninterrupted steps against 20 steps, the run dropped, then
//! resumed from its checkpoint to 40, for the MAE and the CLIP objective and
//! for fine-tuning (full with layer decay, and LoRA), with augmentations on. On CPU the loss curves and the final weights must be
//! bitwise identical. (The CLI test kills a real process.)

use burn::tensor::Device;
use radfm_model::augment::Augment;
use radfm_model::clip::{ClipTrain, ClipTrainConfig};
use radfm_model::finetune::{FineTune, FinetuneConfig, Method};
use radfm_model::lora::{self, LoraConfig};
use radfm_model::mae::{Mae, MaeConfig};
use radfm_model::pretrain::{ImageSet, Objective, PretrainConfig, Run};
use radfm_model::train::{named_params, AdamWConfig, Schedule};
use radfm_model::vit::VitConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Smooth blobs, 1 x 16 x 16, two views per item (the second shifted by a
/// pixel); the "report" of an item is its blob's position, one-hot coded.
struct Blobs {
    n: usize,
    texts: Vec<Vec<f32>>,
}

/// Three observations of a blob: right half, lower half (unlabelled for every
/// fourth item) and every third item; as fine-tuning targets, labels then mask.
fn blob_targets(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            let (cx, cy) = ((i * 7 % 11) as f32 + 2.5, (i * 5 % 13) as f32 + 1.5);
            let y = [cx > 8.0, cy > 8.0, i % 3 == 0].map(|b| f32::from(u8::from(b)));
            let m = [1.0, if i % 4 == 0 { 0.0 } else { 1.0 }, 1.0];
            y.into_iter().chain(m).collect()
        })
        .collect()
}

impl Blobs {
    fn new(n: usize) -> Blobs {
        let texts = (0..n)
            .map(|i| {
                let mut t = vec![0f32; 24];
                t[i * 7 % 11] = 1.0;
                t[11 + i * 5 % 13] = 1.0;
                t
            })
            .collect();
        Blobs { n, texts }
    }
}

impl ImageSet for Blobs {
    fn len(&self) -> usize {
        self.n
    }
    fn image(&self, i: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let shift = rng.gen_range(0..2) as f32;
        let (cx, cy) = ((i * 7 % 11) as f32 + 2.5 + shift, (i * 5 % 13) as f32 + 1.5);
        (0..256)
            .map(|k| {
                let (x, y) = ((k % 16) as f32, (k / 16) as f32);
                (-((x - cx).powi(2) + (y - cy).powi(2)) / 12.0).exp()
            })
            .collect()
    }
    fn paired(&self, i: usize) -> Option<&[f32]> {
        Some(&self.texts[i])
    }
}

pub fn tiny_config(objective: &str, steps: u64) -> PretrainConfig {
    let mut enc = VitConfig::preset("vit-tiny", 16, 4, 1).unwrap();
    enc.hidden_size = 32;
    enc.num_hidden_layers = 2;
    enc.num_attention_heads = 2;
    enc.intermediate_size = 64;
    let ft = |method: Method| FinetuneConfig {
        encoder: enc.clone(),
        method,
        lora: (method == Method::Lora).then(|| LoraConfig {
            rank: 2,
            alpha: 4.0,
            rslora: false,
            dropout: 0.1,
            targets: lora::resolve(&enc, "q,v,fc2")
                .unwrap()
                .into_iter()
                .map(|s| s.path)
                .collect(),
        }),
        observations: vec!["a".into(), "b".into(), "c".into()],
        pos_weight: Some(vec![1.0, 2.0, 0.5]),
        layer_decay: (method == Method::Full).then_some(0.75),
        recompute: usize::from(method == Method::Lora),
    };
    let mut mae = MaeConfig::new(enc.clone());
    mae.decoder_dim = 32;
    mae.decoder_depth = 1;
    mae.decoder_heads = 2;
    let clip = ClipTrainConfig {
        encoder: mae.encoder.clone(),
        text_dim: 24,
        projection_dim: 16,
        init_temperature: 0.07,
        text_model: "one-hot blob positions".into(),
    };
    PretrainConfig {
        objective: objective.split('-').next().unwrap().into(),
        mae: (objective == "mae").then_some(mae),
        clip: (objective == "clip").then_some(clip),
        finetune: match objective {
            "finetune-full" => Some(ft(Method::Full)),
            "finetune-lora" => Some(ft(Method::Lora)),
            _ => None,
        },
        augment: Some(Augment::standard()),
        init: None,
        // the CLIP run also accumulates gradients over two micro-batches
        accumulate: if objective == "clip" { 2 } else { 1 },
        // each batch is computed as two data-parallel parts
        parts: 2,
        batch: 4,
        steps,
        schedule: Schedule {
            lr: 2e-3,
            min_lr: 1e-5,
            warmup_steps: 5,
            total_steps: steps,
        },
        adamw: AdamWConfig::default(),
        seed: 7,
        checkpoint_every: 20,
        images: 16,
    }
}

fn resumed_run_equals_uninterrupted_run_bitwise<M: Objective>(objective: &str) {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = Device::flex();
    let mut data = Blobs::new(16);
    if objective.starts_with("finetune") {
        data.texts = blob_targets(16);
    }
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));

    let mut full = Run::<M>::open(tiny_config(objective, 40), &a, false, &dev).unwrap();
    let losses: Vec<f64> = (0..40).map(|_| full.step(&data).unwrap().loss).collect();

    let mut half = Run::<M>::open(tiny_config(objective, 40), &b, false, &dev).unwrap();
    for _ in 0..20 {
        half.step(&data).unwrap();
    }
    drop(half);
    // the other objective cannot resume this run
    let other = if objective == "mae" { "clip" } else { "mae" };
    let objective_name = objective.split('-').next().unwrap();
    let err = Run::<M>::open(tiny_config(other, 40), &b, true, &dev)
        .err()
        .expect("resuming with another objective must fail");
    assert!(err.to_string().contains("run, not"), "{err}");
    let mut resumed = Run::<M>::open(tiny_config(objective, 40), &b, true, &dev).unwrap();
    assert_eq!(resumed.opt.step, 20);
    // one of the two parts at a time: the same bits, less memory
    resumed.set_parts_in_flight(1);
    while resumed.opt.step < 40 {
        resumed.step(&data).unwrap();
    }

    let ma = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let mb = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
    let loss_of = |m: &str| -> Vec<u64> {
        m.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
                    .to_bits()
            })
            .collect()
    };
    assert_eq!(loss_of(&ma).len(), 40);
    assert_eq!(loss_of(&ma), loss_of(&mb), "loss curves differ");
    let (pa, pb) = (named_params(full.model()), named_params(resumed.model()));
    assert_eq!(pa.len(), pb.len());
    for (k, (sa, va)) in &pa {
        let (sb, vb) = &pb[k];
        assert_eq!(sa, sb);
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{k} differs"
        );
    }
    // and it learned: the last 10 steps' mean loss is below the first 10
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[30..].iter().sum::<f64>() / 10.0;
    eprintln!("{objective} loss: first 10 steps {first:.4}, last 10 {last:.4}");
    assert!(last < first, "loss did not fall: {first} -> {last}");
    if objective_name == "finetune" {
        // fine-tuning exports its classifier itself; with LoRA only the adapters and the head train
        assert!(!b.join("model").exists());
        let trainable = radfm_model::lora::count_params(resumed.model()).0;
        if objective == "finetune-lora" {
            // q, v (32x32) and fc2 (64x32) of 2 blocks at rank 2, and the 32x3 head
            assert_eq!(
                trainable,
                2 * (2 * 2 * (32 + 32) + 2 * (64 + 32)) + 32 * 3 + 3
            );
        }
        return;
    }
    // the exported encoder and, for CLIP, its projections
    assert!(b.join("model/model.safetensors").exists());
    assert_eq!(
        b.join("model/clip_head.safetensors").exists(),
        objective == "clip"
    );
}

#[test]
fn mae_resumed_run_equals_uninterrupted_run_bitwise() {
    resumed_run_equals_uninterrupted_run_bitwise::<Mae>("mae");
}

#[test]
fn finetune_full_and_lora_resumed_runs_equal_uninterrupted_runs_bitwise() {
    resumed_run_equals_uninterrupted_run_bitwise::<FineTune>("finetune-full");
    resumed_run_equals_uninterrupted_run_bitwise::<FineTune>("finetune-lora");
}

#[test]
fn clip_resumed_run_equals_uninterrupted_run_bitwise() {
    resumed_run_equals_uninterrupted_run_bitwise::<ClipTrain>("clip");
}
