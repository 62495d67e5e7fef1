//! `radfm model run` and `radfm text embed`.

use anyhow::{bail, Context};
use burn::tensor::{Tensor, TensorData};
use radfm_core::npy::{f32_bytes, Npy};
use radfm_model::text::{Pooling, TextEncoder};
use radfm_model::train::default_parts;

use crate::cli::{Device, ModelCommand, ModelOutput, TextCommand};

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    let ModelCommand::Run {
        model,
        input,
        out,
        output,
        lora,
        device,
        batch,
    } = cmd;
    let pooled = output == ModelOutput::Pooled;
    let dev = radfm_model::device(device.as_str())?;
    let mut vit = radfm_model::hf::load_image_encoder(&model, &dev)
        .with_context(|| format!("loading {}", model.display()))?;
    if let Some(dir) = &lora {
        // a finetune model directory holds its adapter in adapter/
        let dir = if !dir.join("adapter_config.json").is_file() && dir.join("adapter").is_dir() {
            dir.join("adapter")
        } else {
            dir.clone()
        };
        let ad = radfm_model::lora::read_peft(&dir, &vit.config)
            .with_context(|| format!("--lora {}", dir.display()))?;
        crate::classifier::check_adapter_base(&ad, &model)?;
        for k in ad.ignored.iter().take(3) {
            eprintln!("--lora: {k} is outside the image encoder, not applied");
        }
        if ad.ignored.len() > 3 {
            eprintln!(
                "--lora: {} more outside the image encoder",
                ad.ignored.len() - 3
            );
        }
        vit = radfm_model::lora::apply_peft(vit, &ad, &dev)?;
        eprintln!(
            "--lora {}: {} adapted layers ({} module names)",
            dir.display(),
            ad.targets().len(),
            ad.naming
        );
    }
    let f = std::fs::File::open(&input).with_context(|| format!("opening {}", input.display()))?;
    let x = Npy::read(std::io::BufReader::new(f))
        .with_context(|| format!("reading {}", input.display()))?;
    if !matches!(x.descr.as_str(), "<f4" | "<f8") || x.shape.len() != 4 {
        bail!(
            "{}: expected a float32 array of shape (N, C, H, W), found dtype {} shape {:?}",
            input.display(),
            x.descr,
            x.shape
        );
    }
    let (n, per) = (x.shape[0], x.shape[1..].iter().product::<usize>());
    let values: Vec<f32> = x.to_f32();
    let mut result: Vec<f32> = Vec::new();
    let mut out_shape: Vec<usize> = Vec::new();
    let pb = crate::progress::bar(n as u64, "images");
    for start in (0..n).step_by(batch.max(1)) {
        let b = batch.max(1).min(n - start);
        let chunk = values[start * per..(start + b) * per].to_vec();
        let t = Tensor::<4>::from_data(
            TensorData::new(chunk, [b, x.shape[1], x.shape[2], x.shape[3]]),
            &dev,
        );
        // on the CPU, parts of the batch run on their own threads
        let parts = if device == Device::Cpu {
            default_parts(b)
        } else {
            1
        };
        let o = vit.forward_parts(t, parts)?;
        let (data, shape): (Vec<f32>, Vec<usize>) = if pooled {
            (
                o.pooled
                    .to_data()
                    .try_to_vec()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                o.pooled.dims().to_vec(),
            )
        } else {
            let s = o.last_hidden_state.dims().to_vec();
            (
                o.last_hidden_state
                    .into_data()
                    .try_to_vec()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                s,
            )
        };
        result.extend(data);
        out_shape = shape;
        pb.inc(b as u64);
    }
    pb.finish_and_clear();
    if n == 0 {
        bail!("{}: no images (N = 0)", input.display());
    }
    out_shape[0] = n;
    radfm_core::atomic::write_atomic(&out, &f32_bytes(&out_shape, &result))
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("{n} images -> {} {:?}", out.display(), out_shape);
    Ok(())
}

pub fn text(cmd: TextCommand) -> anyhow::Result<()> {
    let TextCommand::Embed {
        model,
        input,
        out,
        pooling,
        normalize,
        device,
        batch,
    } = cmd;
    let pooling: Pooling = pooling.as_str().parse().map_err(anyhow::Error::msg)?;
    let dev = radfm_model::device(device.as_str())?;
    let enc =
        TextEncoder::open(&model, &dev).with_context(|| format!("loading {}", model.display()))?;
    let text =
        std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        bail!("{}: no sentences", input.display());
    }
    let pb = crate::progress::bar(lines.len() as u64, "sentences");
    let mut rows = Vec::with_capacity(lines.len());
    for chunk in lines.chunks(batch.max(1) * 8) {
        rows.extend(enc.embed(chunk, pooling, normalize, batch)?);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let d = rows[0].len();
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    radfm_core::atomic::write_atomic(&out, &f32_bytes(&[lines.len(), d], &flat))
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{} sentences -> {} [{}, {d}]",
        lines.len(),
        out.display(),
        lines.len()
    );
    Ok(())
}
