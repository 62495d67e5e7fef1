//! Resume: 40 uninterrupted MAE steps against 20 steps, the run dropped, then
//! resumed from its checkpoint to 40. On CPU the loss curves and the final
//! weights must be bitwise identical. (The CLI test kills a real process.)

use burn::tensor::Device;
use radfm_model::mae::MaeConfig;
use radfm_model::pretrain::{ImageSet, MaeRun, PretrainConfig};
use radfm_model::train::{named_params, AdamWConfig, Schedule};
use radfm_model::vit::VitConfig;

/// Smooth random blobs, 1 x 16 x 16.
struct Blobs(usize);

impl ImageSet for Blobs {
    fn len(&self) -> usize {
        self.0
    }
    fn image(&self, i: usize) -> Vec<f32> {
        let (cx, cy) = ((i * 7 % 11) as f32 + 2.5, (i * 5 % 13) as f32 + 1.5);
        (0..256)
            .map(|k| {
                let (x, y) = ((k % 16) as f32, (k / 16) as f32);
                (-((x - cx).powi(2) + (y - cy).powi(2)) / 12.0).exp()
            })
            .collect()
    }
}

pub fn tiny_config(steps: u64) -> PretrainConfig {
    let mut enc = VitConfig::preset("vit-tiny", 16, 4, 1).unwrap();
    enc.hidden_size = 32;
    enc.num_hidden_layers = 2;
    enc.num_attention_heads = 2;
    enc.intermediate_size = 64;
    let mut mae = MaeConfig::new(enc);
    mae.decoder_dim = 32;
    mae.decoder_depth = 1;
    mae.decoder_heads = 2;
    PretrainConfig {
        objective: "mae".into(),
        mae,
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

#[test]
fn resumed_run_equals_uninterrupted_run_bitwise() {
    let dev = Device::flex();
    let data = Blobs(16);
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));

    let mut full = MaeRun::open(tiny_config(40), &a, false, &dev).unwrap();
    let losses: Vec<f64> = (0..40).map(|_| full.step(&data).unwrap().loss).collect();

    let mut half = MaeRun::open(tiny_config(40), &b, false, &dev).unwrap();
    for _ in 0..20 {
        half.step(&data).unwrap();
    }
    drop(half);
    let mut resumed = MaeRun::open(tiny_config(40), &b, true, &dev).unwrap();
    assert_eq!(resumed.opt.step, 20);
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
    eprintln!("MAE loss: first 10 steps {first:.4}, last 10 {last:.4}");
    assert!(last < first, "loss did not fall: {first} -> {last}");
}
