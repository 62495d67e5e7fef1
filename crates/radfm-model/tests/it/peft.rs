//! LoRA parity with Hugging Face PEFT: the adapters of `tools/peft_reference.py`
//! (random, non-zero factors; query,value under the transformers 4.x module
//! names, all-linear with rsLoRA under the 5.x names) applied by radfm to the
//! fixture models must give PEFT's outputs within 1e-4 of their scale, and
//! merging them into the weights must not change the output (1e-5).

use burn::module::Module;
use burn::tensor::Tensor;
use radfm_model::lora::{self, LoraConfig};
use radfm_model::{hf, ModelError};

use crate::parity::{close, fixture, float4};

fn run(base: &str, adapter: &str) -> (usize, &'static str) {
    let dev = radfm_model::device("cpu").unwrap();
    let vit = hf::load_image_encoder(&fixture(base), &dev).unwrap();
    let dir = fixture("peft").join(format!("{base}-{adapter}"));
    let ad = lora::read_peft(&dir, &vit.config).unwrap();
    let plain = vit.clone();
    let vit = lora::apply_peft(vit, &ad, &dev).unwrap();
    let x = float4(base, "x16", &dev);
    // the adapter moves the output well beyond the tolerance, or parity proves nothing
    let moved = (plain.forward(x.clone()).unwrap().pooled - vit.forward(x.clone()).unwrap().pooled)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(
        moved > 0.05,
        "{base}-{adapter}: the adapter moves the output by {moved} only"
    );
    let out = vit.forward(x.clone()).unwrap();
    let name = format!("peft/{base}-{adapter}");
    close(out.last_hidden_state, &name, "last_hidden_state");
    let pooled = out.pooled;
    close(pooled.clone(), &name, "pooled");
    // merged into dense weights: PEFT's merged model, and the adapter form
    let merged = vit.clone().materialize();
    assert!(lora::adapted_paths(&merged).is_empty());
    let m = merged.forward(x).unwrap().pooled;
    close(m.clone(), &name, "merged_pooled");
    let scale = pooled.clone().abs().max().into_scalar::<f32>();
    let diff = (m - pooled).abs().max().into_scalar::<f32>();
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "{name}: merged differs from the adapter form by {diff}"
    );
    (ad.targets().len(), ad.naming)
}

#[test]
fn peft_adapters_give_peft_outputs_on_vit_dinov2_and_clip_in_both_namings() {
    let _one_at_a_time = crate::one_at_a_time();
    // 2 blocks: q and v of each; all-linear: 6 projections per block (+ the ViT pooler)
    assert_eq!(run("vit", "qv"), (4, "transformers 4"));
    assert_eq!(run("vit", "all"), (13, "transformers 5"));
    assert_eq!(run("dinov2", "qv"), (4, "transformers 4"));
    assert_eq!(run("dinov2", "all"), (12, "transformers 5"));
    // CLIP's names are the same in both; the text tower's factors are set aside
    assert_eq!(run("clip", "qv").0, 4);
    assert_eq!(run("clip", "all").0, 12);
    let dev = radfm_model::device("cpu").unwrap();
    let vit = hf::load_image_encoder(&fixture("clip"), &dev).unwrap();
    let ad = lora::read_peft(&fixture("peft").join("clip-all"), &vit.config).unwrap();
    assert!(
        ad.ignored.iter().any(|k| k.contains("text_model.")),
        "{:?}",
        ad.ignored
    );
}

#[test]
fn an_adapter_for_another_base_is_refused_with_the_reason() {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = radfm_model::device("cpu").unwrap();
    // a DINOv2 adapter on the ViT: other module names
    let vit = hf::load_image_encoder(&fixture("vit"), &dev).unwrap();
    let e = lora::read_peft(&fixture("peft").join("dinov2-all"), &vit.config).unwrap_err();
    assert!(e.to_string().contains("is not a linear layer"), "{e}");
    // a ViT adapter on a wider ViT: the same names, other shapes
    let mut c = vit.config.clone();
    c.hidden_size = 48;
    c.intermediate_size = 96;
    let e = lora::read_peft(&fixture("peft").join("vit-qv"), &c).unwrap_err();
    assert!(
        matches!(e, ModelError::Config(_)) && e.to_string().contains("another base model"),
        "{e}"
    );
    // not an adapter directory
    let e = lora::read_peft(&fixture("vit"), &vit.config).unwrap_err();
    assert!(e.to_string().contains("adapter_config.json"), "{e}");
}

#[test]
fn an_adapter_radfm_writes_reads_back_the_same() {
    let _one_at_a_time = crate::one_at_a_time();
    let dev = radfm_model::device("cpu").unwrap();
    let vit = hf::load_image_encoder(&fixture("dinov2"), &dev).unwrap();
    let targets: Vec<String> = lora::resolve(&vit.config, "q,v,fc1")
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    let cfg = LoraConfig {
        rank: 3,
        alpha: 6.0,
        rslora: true,
        dropout: 0.0,
        targets,
    };
    // an adapter with non-zero factors: PEFT's, moved onto q, v and fc1
    let base = lora::attach(vit.clone(), &cfg).unwrap();
    let ad = lora::read_peft(&fixture("peft").join("dinov2-all"), &vit.config).unwrap();
    let donor = lora::apply_peft(vit.clone(), &ad, &dev).unwrap();
    let trained = copy_factors(base, &donor, &cfg);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adapter");
    lora::write_peft(&dir, &trained, &cfg, "radfm-fixture-dinov2", "abc123").unwrap();
    let back = lora::read_peft(&dir, &vit.config).unwrap();
    assert_eq!(back.targets(), {
        let mut t = cfg.targets.clone();
        t.sort();
        t
    });
    assert_eq!(back.base_sha256().as_deref(), Some("abc123"));
    assert_eq!(back.base_model(), Some("radfm-fixture-dinov2"));
    let again = lora::apply_peft(vit, &back, &dev).unwrap();
    let x = float4("dinov2", "x16", &dev);
    let (a, b) = (
        trained.forward(x.clone()).unwrap().last_hidden_state,
        again.forward(x).unwrap().last_hidden_state,
    );
    let diff = (a - b).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-5, "written and read back differ by {diff}");
}

/// `target` with the LoRA factors of `donor` on the paths of `cfg` (rank
/// permitting: the first `cfg.rank` columns of a and rows of b).
fn copy_factors(
    target: radfm_model::vit::Vit,
    donor: &radfm_model::vit::Vit,
    cfg: &LoraConfig,
) -> radfm_model::vit::Vit {
    let params = radfm_model::train::named_params(donor);
    let mut arrays = radfm_model::train::named_params(&target);
    for t in &cfg.targets {
        let take = |k: &str| params.get(&format!("{t}.weight.lora.{k}")).unwrap();
        let ((sa, va), (sb, vb)) = (take("a"), take("b"));
        let r = cfg.rank;
        let a: Vec<f32> = (0..sa[0])
            .flat_map(|i| (0..r).map(move |j| (i, j)))
            .map(|(i, j)| va[i * sa[1] + j % sa[1]])
            .collect();
        let b: Vec<f32> = (0..r)
            .flat_map(|i| (0..sb[1]).map(move |j| (i, j)))
            .map(|(i, j)| vb[(i % sb[0]) * sb[1] + j])
            .collect();
        arrays.insert(format!("{t}.weight.lora.a"), (vec![sa[0], r], a));
        arrays.insert(format!("{t}.weight.lora.b"), (vec![r, sb[1]], b));
    }
    let dev = radfm_model::device("cpu").unwrap();
    let mut w = radfm_model::weights::Weights::from_map(arrays, "test");
    let _ = Tensor::<1>::zeros([1], &dev);
    radfm_model::train::load_params(target, &mut w, &dev).unwrap()
}

#[test]
fn adapters_radfm_trained_give_in_radfm_what_they_give_in_peft() {
    let _one_at_a_time = crate::one_at_a_time();
    // tools/radfm_adapters.sh: trained by `radfm finetune --method lora`, loaded by
    // PeftModel.from_pretrained in tools/peft_reference.py --check-radfm
    let dev = radfm_model::device("cpu").unwrap();
    for (base, layers) in [("vit", 13), ("dinov2", 4), ("clip", 12)] {
        let dir = fixture("peft").join(format!("radfm-{base}"));
        let vit = hf::load_image_encoder(&fixture(base), &dev).unwrap();
        let ad = lora::read_peft(&dir.join("adapter"), &vit.config).unwrap();
        assert_eq!(ad.targets().len(), layers, "{base}");
        assert_eq!(ad.naming, "transformers 5");
        let vit = lora::apply_peft(vit, &ad, &dev).unwrap();
        let out = vit.forward(float4(base, "x16", &dev)).unwrap();
        close(
            out.last_hidden_state,
            &format!("peft/radfm-{base}"),
            "peft_last_hidden_state",
        );
    }
}
