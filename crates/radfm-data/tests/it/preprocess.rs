//! Preprocessing against transformers' PIL image processors and PIL's resize
//! (tools/preprocess_reference.py): the same 8-bit images give the same values.

use std::path::Path;

use radfm_core::npy::Npy;
use radfm_data::preprocess::{pil_resize, Filter, Preprocess};

fn npy(name: &str) -> Vec<f64> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(name);
    Npy::read(std::fs::File::open(p).unwrap()).unwrap().to_f64()
}

#[test]
fn pixel_values_match_transformers_and_pil() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let (pixels, outputs, pil) = (npy("images.npy"), npy("outputs.npy"), npy("pil.npy"));
    let shapes: Vec<(usize, usize)> = meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_u64().unwrap() as usize,
                s[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let mut images = Vec::new();
    let mut at = 0;
    for &(h, w) in &shapes {
        images.push(
            pixels[at..at + h * w]
                .iter()
                .map(|&v| v as u8)
                .collect::<Vec<u8>>(),
        );
        at += h * w;
    }
    assert_eq!(at, pixels.len());
    let (mut processors, mut filters, mut worst) = (0, 0, 0.0f64);
    for case in meta["cases"].as_array().unwrap() {
        let i = case["image"].as_u64().unwrap() as usize;
        let (h, w) = shapes[i];
        let off = case["offset"].as_u64().unwrap() as usize;
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let n: usize = shape.iter().product();
        let name = case["name"].as_str().unwrap();
        if let Some(f) = case.get("filter") {
            let f = Filter::from_pil(f.as_i64().unwrap()).unwrap();
            let got = pil_resize(&images[i], h, w, shape[0], shape[1], f);
            let want: Vec<u8> = pil[off..off + n].iter().map(|&v| v as u8).collect();
            let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ, 0,
                "{name} image {i} to {shape:?}: {differ} of {n} pixels differ"
            );
            filters += 1;
        } else {
            let p = Preprocess::from_hf(&case["config"], name).unwrap();
            let grey: Vec<f32> = images[i].iter().map(|&v| f32::from(v) / 255.0).collect();
            let got = p.apply(&grey, h, w).unwrap();
            assert_eq!(got.len(), n, "{name}: {:?}", p.output_size(h, w));
            for (k, (&a, &b)) in got.iter().zip(&outputs[off..off + n]).enumerate() {
                let e = (f64::from(a) - b).abs();
                worst = worst.max(e);
                assert!(
                    e <= 1e-5,
                    "{name} image {i} value {k}: {a} vs transformers {b}"
                );
            }
            processors += 1;
        }
    }
    assert_eq!((processors, filters), (9, 36));
    eprintln!("largest difference from transformers after normalisation: {worst:.1e}");
}
