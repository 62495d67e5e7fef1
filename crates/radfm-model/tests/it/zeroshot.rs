//! CLIP text towers, open_clip directories and zero-shot scoring against
//! their references (`tools/zeroshot_reference.py`, committed under
//! tests/fixtures/zeroshot): HF `CLIPTokenizerFast` ids, transformers'
//! `CLIPModel`, open_clip's `encode_image` / `encode_text`, and a Python
//! implementation of the scoring rule. The target is max |ours - reference|
//! <= 1e-4.

use std::io::Read;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use radfm_model::dual::DualEncoder;
use radfm_model::tokenizer::Tokenizer;
use radfm_model::zeroshot::{Classes, PromptSet};

use crate::parity::{fixture, npy};

fn dir(name: &str) -> PathBuf {
    fixture("zeroshot").join(name)
}

fn lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(dir(name))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(dir("texts.json")).unwrap()).unwrap()
}

fn images(dev: &Device) -> Tensor<4> {
    crate::parity::float4("zeroshot", "x", dev)
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, d] = t.dims();
    let v: Vec<f32> = t.into_data().try_to_vec().unwrap();
    v.chunks_exact(d).map(<[f32]>::to_vec).collect()
}

/// max |a - b| over rows, with the reference flattened.
fn worst(got: &[Vec<f32>], want: &[f64]) -> f64 {
    let flat: Vec<f64> = got.iter().flatten().map(|&x| x as f64).collect();
    assert_eq!(flat.len(), want.len());
    flat.iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()))
}

#[test]
fn clip_tokenizer_matches_hugging_face_on_1011_report_sentences() {
    // the full 49,408-token CLIP BPE tokenizer, committed gzipped
    let mut gz =
        flate2::read::GzDecoder::new(std::fs::File::open(dir("clip_tokenizer.json.gz")).unwrap());
    let mut json = String::new();
    gz.read_to_string(&mut json).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tokenizer.json"), json).unwrap();
    let tok = Tokenizer::open(tmp.path()).unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    let sentences = lines("sentences.txt");
    let want: Vec<Vec<i64>> = lines("clip_token_ids.jsonl")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(sentences.len() >= 1000);
    assert_eq!(sentences.len(), want.len());
    let mut truncated = 0;
    for (s, w) in sentences.iter().zip(&want) {
        let b = tok.batch(&[s], 77).unwrap();
        truncated += b.truncated;
        assert_eq!(&b.ids, w, "{s}");
    }
    // the long sentences are cut at 77 and counted
    assert!(truncated >= 1, "{truncated}");
    // capitals, accents, digits and punctuation are all in the set
    for probe in ["ÉTUDE", "Café", "Sjögren", "4.5", "—", "…", "IMPRESSION"] {
        assert!(sentences.iter().any(|s| s.contains(probe)), "{probe}");
    }
}

#[test]
fn hf_clip_model_matches_transformers() {
    let dev = Device::flex();
    let m = DualEncoder::open(&dir("hf_clip"), &dev).unwrap();
    assert_eq!(m.kind, "Hugging Face CLIPModel");
    assert_eq!(m.context_length, 77);
    let t = texts();
    let refs: Vec<&str> = t.iter().map(String::as_str).collect();
    // ids as transformers' tokenizer pads and truncates them
    let b = m.tokenizer.batch(&refs, 77).unwrap();
    let (_, want_ids) = npy("zeroshot/hf_clip_ref", "input_ids");
    assert_eq!(
        b.ids,
        want_ids.iter().map(|&v| v as i64).collect::<Vec<_>>()
    );
    assert_eq!(b.truncated, 1, "the 150-word text is cut at 77 tokens");
    let (txt, truncated) = m.embed_texts(&refs, 2).unwrap();
    assert_eq!(truncated, 1);
    let img = rows(m.embed_images(images(&dev), 2).unwrap());
    let (_, want_t) = npy("zeroshot/hf_clip_ref", "text_embeds");
    let (_, want_i) = npy("zeroshot/hf_clip_ref", "image_embeds");
    assert!(
        worst(&txt, &want_t) <= 1e-4,
        "text {}",
        worst(&txt, &want_t)
    );
    assert!(
        worst(&img, &want_i) <= 1e-4,
        "image {}",
        worst(&img, &want_i)
    );
    let scale = m.logit_scale.exp() as f32;
    let logits: Vec<Vec<f32>> = img
        .iter()
        .map(|i| {
            txt.iter()
                .map(|t| scale * i.iter().zip(t).map(|(a, b)| a * b).sum::<f32>())
                .collect()
        })
        .collect();
    let (shape, want_l) = npy("zeroshot/hf_clip_ref", "logits_per_image");
    assert_eq!(shape, vec![6, 4]);
    let w = worst(&logits, &want_l);
    eprintln!(
        "CLIPModel: text {:.1e}, image {:.1e}, logits {w:.1e}",
        worst(&txt, &want_t),
        worst(&img, &want_i)
    );
    assert!(w <= 1e-4, "logits differ by {w}");
}

fn probabilities(m: &DualEncoder, set: &PromptSet, tau: f64, dev: &Device) -> Vec<Vec<f64>> {
    let texts = Classes::texts(set);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (emb, _) = m.embed_texts(&refs, 8).unwrap();
    let classes = Classes::from_embeddings(set, &emb);
    rows(m.embed_images(images(dev), 1).unwrap())
        .iter()
        .map(|i| classes.score(i, tau))
        .collect()
}

#[test]
fn zero_shot_probabilities_match_the_reference_rule() {
    let dev = Device::flex();
    let set = PromptSet::parse(
        &std::fs::read_to_string(dir("prompts.json")).unwrap(),
        "prompts.json",
    )
    .unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir("zeroshot.json")).unwrap()).unwrap();
    let a = DualEncoder::open(&dir("hf_clip"), &dev).unwrap();
    let b = DualEncoder::open(&dir("hf_clip2"), &dev).unwrap();
    let check = |got: &[Vec<f64>], key: &str| {
        let names: Vec<&String> = set.observations.keys().collect();
        let mut worst = 0f64;
        for (k, name) in names.iter().enumerate() {
            let w = want[key][name.as_str()].as_array().unwrap();
            assert_eq!(w.len(), got.len());
            for (img, wv) in got.iter().zip(w) {
                worst = worst.max((img[k] - wv.as_f64().unwrap()).abs());
            }
        }
        eprintln!("zero-shot {key}: probabilities differ by at most {worst:.1e}");
        assert!(worst <= 1e-4, "{key}: probabilities differ by {worst}");
        // and they are not all one half: the fixture discriminates
        assert!(
            got.iter().flatten().any(|p| (p - 0.5).abs() > 1e-3),
            "{key}"
        );
    };
    let p1 = probabilities(&a, &set, 1.0, &dev);
    check(&p1, "tau_1");
    let pm = probabilities(&a, &set, 1.0 / a.logit_scale.exp(), &dev);
    check(&pm, "tau_model");
    let p2 = probabilities(&b, &set, 1.0, &dev);
    let ens: Vec<Vec<f64>> = p1
        .iter()
        .zip(&p2)
        .map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u + v) / 2.0).collect())
        .collect();
    check(&ens, "ensemble_tau_1");
}

fn open_clip_case(name: &str, kind: &str, context: usize) {
    let dev = Device::flex();
    let m = DualEncoder::open(&dir(name), &dev).unwrap();
    assert_eq!(m.kind, kind);
    assert_eq!(m.context_length, context);
    let img = rows(m.embed_images(images(&dev), 2).unwrap());
    let (_, want) = npy(&format!("zeroshot/{name}"), "ref_image_features");
    let w = worst(&img, &want);
    eprintln!("{name}: image features differ by at most {w:.1e}");
    assert!(w <= 1e-4, "{name}: image features differ by {w}");
    let t = texts();
    let refs: Vec<&str> = t.iter().map(String::as_str).collect();
    let (txt, _) = m.embed_texts(&refs, 3).unwrap();
    let (_, want) = npy(&format!("zeroshot/{name}"), "ref_text_features");
    let w = worst(&txt, &want);
    eprintln!("{name}: text features differ by at most {w:.1e}");
    assert!(w <= 1e-4, "{name}: text features differ by {w}");
    // the preprocessing open_clip applies, as an image-processor config
    let p = m.processor.as_ref().unwrap();
    assert_eq!(p["crop_size"]["height"], 32);
    assert!((p["image_mean"][0].as_f64().unwrap() - 0.48145466).abs() < 1e-9);
}

#[test]
fn open_clip_biomedclip_layout_matches_open_clip() {
    // timm ViT trunk + HF BERT (CLS pooling, MLP projection), float16 weights
    // in a PyTorch .bin read without unpickling code
    open_clip_case("open_clip_biomed", "open_clip (timm + HF text)", 64);
}

#[test]
fn open_clip_openai_layout_matches_open_clip() {
    open_clip_case("open_clip_openai", "open_clip (OpenAI CLIP)", 77);
}

#[test]
fn pickles_that_need_code_are_refused_with_the_reason() {
    let e = radfm_model::torch_pickle::read(&dir("refused/code.bin"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("code execution") && e.contains("system"), "{e}");
    let e = radfm_model::torch_pickle::read(&dir("refused/legacy.bin"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a zip-format PyTorch checkpoint"), "{e}");
    // a .bin state dict the reader does accept holds every tensor of the model
    let arrays =
        radfm_model::torch_pickle::read(&dir("open_clip_biomed/open_clip_pytorch_model.bin"))
            .unwrap();
    assert!(arrays.contains_key("visual.trunk.pos_embed"));
    assert!(arrays.contains_key("text.proj.2.weight"));
    // strides are honoured (a transposed tensor), and float64 is read
    let s = radfm_model::torch_pickle::read(&dir("strided.bin")).unwrap();
    assert_eq!(s["t"], (vec![3, 2], vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]));
    assert_eq!(s["d"], (vec![2], vec![0.5, -2.0]));
    let (shape, v) = &arrays["visual.trunk.cls_token"];
    assert_eq!(shape, &vec![1, 1, 128]);
    assert!(v.iter().any(|x| *x != 0.0));
}

#[test]
fn models_without_a_text_tower_are_refused() {
    let dev = Device::flex();
    for image_only in ["vit", "dinov2"] {
        let e = DualEncoder::open(&fixture(image_only), &dev)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("has no text tower"), "{image_only}: {e}");
    }
}
