//! Reference parity: tiny randomly initialised Hugging Face models and their
//! outputs on fixed inputs, from `tools/model_reference.py` (committed under
//! tests/fixtures). The target is max |ours - reference| <= 1e-4 x the output
//! scale (max |reference|).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use radfm_core::npy::Npy;
use radfm_model::hf;

pub(crate) fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(model)
}

pub(crate) fn npy(model: &str, name: &str) -> (Vec<usize>, Vec<f64>) {
    let p = fixture(model).join(format!("{name}.npy"));
    let n = Npy::read(std::fs::File::open(&p).unwrap()).unwrap();
    let v = n.to_f64();
    assert_eq!(
        v.len(),
        n.shape.iter().product::<usize>(),
        "{}: dtype {}",
        p.display(),
        n.descr
    );
    (n.shape, v)
}

pub(crate) fn float4(model: &str, name: &str, dev: &Device) -> Tensor<4> {
    let (s, v) = npy(model, name);
    let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [s[0], s[1], s[2], s[3]]), dev)
}

fn int2(model: &str, name: &str, dev: &Device) -> Tensor<2, Int> {
    let (s, v) = npy(model, name);
    let v: Vec<i64> = v.into_iter().map(|x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [s[0], s[1]]), dev)
}

/// Assert closeness relative to the reference's scale; returns the relative error.
pub(crate) fn close<const D: usize>(got: Tensor<D>, model: &str, name: &str) -> f64 {
    let (shape, want) = npy(model, name);
    assert_eq!(got.dims().to_vec(), shape, "{model}/{name}: shape");
    let got: Vec<f32> = got.into_data().convert::<f32>().try_to_vec().unwrap();
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    let rel = diff / scale;
    eprintln!("{model}/{name}: max abs diff {diff:.3e}, scale {scale:.3}, relative {rel:.3e}");
    assert!(
        rel <= 1e-4,
        "{model}/{name}: max abs diff {diff} vs scale {scale}"
    );
    rel
}

#[test]
fn dinov2_with_layerscale_and_interpolated_positions() {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = Device::flex();
    let m = hf::load_image_encoder(&fixture("dinov2"), &dev).unwrap();
    assert!(m.config.layerscale_value.is_some());
    let o = m.forward(float4("dinov2", "x16", &dev)).unwrap();
    close(o.last_hidden_state, "dinov2", "x16_last_hidden_state");
    close(o.pooled, "dinov2", "x16_pooled");
    // 24 px: the 4x4 position grid is resampled bicubically to 6x6
    let o = m.forward(float4("dinov2", "x24", &dev)).unwrap();
    close(o.last_hidden_state, "dinov2", "x24_last_hidden_state");
    close(o.pooled, "dinov2", "x24_pooled");
}

#[test]
fn vit_single_channel_with_pooler() {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = Device::flex();
    let m = hf::load_image_encoder(&fixture("vit"), &dev).unwrap();
    let o = m.forward(float4("vit", "x16", &dev)).unwrap();
    close(o.last_hidden_state, "vit", "x16_last_hidden_state");
    close(o.pooled, "vit", "x16_pooled");
}

#[test]
fn clip_both_towers_and_logits() {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = Device::flex();
    let m = hf::load_clip(&fixture("clip"), &dev).unwrap();
    let x = float4("clip", "x16", &dev);
    let ids = int2("clip", "input_ids", &dev);
    let mask = int2("clip", "attention_mask", &dev);
    let v = m.vision.forward(x.clone()).unwrap();
    close(v.last_hidden_state, "clip", "vision_last_hidden_state");
    close(v.pooled, "clip", "vision_pooled");
    let (last, pooled) = m.text.forward(ids.clone(), mask.clone()).unwrap();
    close(last, "clip", "text_last_hidden_state");
    close(pooled, "clip", "text_pooled");
    let o = m.forward(x, ids, mask).unwrap();
    close(o.image_embeds, "clip", "image_embeds");
    close(o.text_embeds, "clip", "text_embeds");
    close(o.logits_per_image, "clip", "logits_per_image");
    // the vision tower alone, as `radfm model run` loads it
    let v = hf::load_image_encoder(&fixture("clip"), &dev).unwrap();
    let o = v.forward(float4("clip", "x16", &dev)).unwrap();
    close(o.pooled, "clip", "vision_pooled");
}

#[test]
fn bert_with_padding_and_token_types() {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = Device::flex();
    let m = hf::load_bert(&fixture("bert"), &dev).unwrap();
    let o = m
        .forward(
            int2("bert", "input_ids", &dev),
            int2("bert", "attention_mask", &dev),
            Some(int2("bert", "token_type_ids", &dev)),
        )
        .unwrap();
    close(o.last_hidden_state, "bert", "last_hidden_state");
    close(o.pooled.unwrap(), "bert", "pooled");
}
