//! `radfm bench vit`: the training-step and inference timings that
//! `bench/vit_step.py` compares with PyTorch.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor, TensorData};
use radfm_model::head::{bce_with_logits, Classifier};
use radfm_model::train::{default_parts, parallel_grads, split_rows, AdamW, AdamWConfig};
use radfm_model::vit::{PosEmbed, Vit, VitConfig};

use crate::cli::BenchCommand;

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Vit {
        steps,
        warmup,
        infer_reps,
        device,
        parts,
    } = cmd;
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
