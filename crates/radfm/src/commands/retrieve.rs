//! `radfm retrieve`: image retrieval with a CLIP model.
//!
//! - `index`: a dataset's images through the model's image tower into INDEX/:
//!   `embeddings.npy` (float32, N x D, L2-normalised), `index.jsonl` (row i's
//!   catalog metadata: SOP Instance UID, pseudonymous patient, study, split,
//!   weak labels, sex, age, site, view) and `retrieve.json` (the model and
//!   its checksum, the dataset, the preprocessing), `retrieve.json` last.
//! - `query`: a text, a DICOM file or an indexed id against the index: exact
//!   search by matrix product, top k with scores and metadata.
//! - `eval`: on the index's test split, image-to-image precision@k (relevant:
//!   sharing a positive weak label; the query's own patient left out),
//!   report-to-own-image recall@k, and the chance level of each.
//!
//! Search is exact by default: a batched matrix product over every indexed
//! row. `index --approximate` adds an HNSW graph (`approx`), which `query`
//! searches unless `--exact`; `eval` is always exact.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::{Tensor, TensorData};
use radfm_core::npy::Npy;
use radfm_data::reader::Reader;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::cli::{RetrieveCommand, RetrieveEvalArgs, RetrieveIndexArgs, RetrieveQueryArgs};
use crate::commands::embed::{self, Embedded, Streaming};
use crate::commands::zeroshot::{open_model, Opened};

pub fn run(c: RetrieveCommand) -> anyhow::Result<()> {
    match c {
        RetrieveCommand::Index(a) => index(a),
        RetrieveCommand::Query(a) => query(a),
        RetrieveCommand::Eval(a) => eval(a),
    }
}

fn index(a: RetrieveIndexArgs) -> anyhow::Result<()> {
    let dev = radfm_model::device(a.device.as_str())?;
    let m = open_model(&a.model, &dev)?;
    let prep = m.preprocessing()?;
    let mut reader = Reader::open(&a.data)?;
    embed::select_split(&mut reader, &a.data, a.split)?;
    let Embedded {
        rows,
        dim,
        kept,
        failed,
    } = m.embed_dataset(
        &reader,
        &Streaming {
            batch: a.batch,
            jobs: a.jobs,
            quiet: a.quiet,
            device: &dev,
        },
        a.device,
    )?;
    // a multi-frame image's row is the mean of its frames' unit vectors: back to unit length
    let mut rows = rows;
    normalize_rows(&mut rows, dim);
    let records = reader.records();
    let used: Vec<_> = kept.iter().map(|&i| &records[i]).collect();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let n = kept.len();
    // a previous index's retrieve.json goes first, so that a killed rebuild
    // never leaves a description of other rows
    let _ = std::fs::remove_file(a.out.join("retrieve.json"));
    let _ = std::fs::remove_dir_all(a.out.join(crate::commands::approx::DIR));
    radfm_core::atomic::write_atomic(
        &a.out.join("embeddings.npy"),
        &radfm_core::npy::f32_bytes(&[n, dim], &rows),
    )?;
    let mut lines = String::new();
    for r in &used {
        lines.push_str(&embed::index_line(r).to_string());
        lines.push('\n');
    }
    radfm_core::atomic::write_atomic(&a.out.join("index.jsonl"), lines.as_bytes())?;
    let approximate = if a.approximate {
        crate::commands::approx::save(&a.out, &rows, dim)?;
        json!({
            "kind": "HNSW (hnsw_rs 0.3.5)",
            "dir": crate::commands::approx::DIR,
            "connections": crate::commands::approx::CONNECTIONS,
            "ef_construction": crate::commands::approx::EF_CONSTRUCTION,
            "distance": "1 - cosine",
        })
    } else {
        if n >= 1_000_000 {
            eprintln!(
                "note: {n} images; exact search reads every row per query: consider --approximate"
            );
        }
        Value::Null
    };
    let meta = json!({
        "model": m.describe(),
        "preprocessing": prep.describe(),
        "approximate": approximate,
        "dataset": {
            "path": a.data.display().to_string(),
            "split": a.split.as_str(),
            "images": n,
            "left_out": failed,
            "fingerprint": radfm_data::reader::fingerprint(used.iter().copied()),
        },
        "embeddings": {"rows": n, "dim": dim, "dtype": "float32", "normalized": true},
        "search": if a.approximate { "approximate (HNSW) by default; exact with query --exact and in eval" } else { "exact (batched matrix product)" },
        "radfm_version": env!("CARGO_PKG_VERSION"),
    });
    radfm_core::atomic::write_atomic(
        &a.out.join("retrieve.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    eprintln!(
        "{n} images indexed ({failed} left out), {dim}-d -> {}",
        a.out.display()
    );
    Ok(())
}

/// An index read back.
pub struct Index {
    pub dir: PathBuf,
    pub meta: Value,
    /// `n x dim`, row-major
    pub rows: Vec<f32>,
    pub dim: usize,
    pub items: Vec<Value>,
}

impl Index {
    pub fn open(dir: &Path) -> anyhow::Result<Index> {
        let mp = dir.join("retrieve.json");
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(&mp).with_context(|| {
            format!(
                "{}: not a retrieval index (no retrieve.json; build one with `radfm retrieve index`)",
                dir.display()
            )
        })?)
        .with_context(|| format!("{}: not JSON", mp.display()))?;
        let ep = dir.join("embeddings.npy");
        let n = Npy::read(
            std::fs::File::open(&ep).with_context(|| format!("opening {}", ep.display()))?,
        )
        .with_context(|| format!("{}", ep.display()))?;
        if n.shape.len() != 2 || !n.is_float() {
            bail!(
                "{}: {} of shape {:?}, expected float32 (N, D)",
                ep.display(),
                n.descr,
                n.shape
            );
        }
        let dim = n.shape[1];
        let rows: Vec<f32> = n.to_f32();
        let ip = dir.join("index.jsonl");
        let items: Vec<Value> = std::fs::read_to_string(&ip)
            .with_context(|| format!("reading {}", ip.display()))?
            .lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("{}:{}", ip.display(), i + 1))
            })
            .collect::<anyhow::Result<_>>()?;
        if items.len() != n.shape[0] {
            bail!(
                "{}: {} lines for {} embeddings: the index is incomplete; rebuild it",
                dir.display(),
                items.len(),
                n.shape[0]
            );
        }
        Ok(Index {
            dir: dir.to_path_buf(),
            meta,
            rows,
            dim,
            items,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// The model the index was built with, checked to be unchanged; or
    /// `other`, checked to be the same model.
    pub fn model(
        &self,
        other: Option<&Path>,
        dev: &burn::tensor::Device,
    ) -> anyhow::Result<Opened> {
        let recorded = self.meta["model"]["path"].as_str().unwrap_or("");
        let want = self.meta["model"]["sha256"].as_str().unwrap_or("");
        let path = other.map_or_else(|| PathBuf::from(recorded), Path::to_path_buf);
        let m = open_model(&path, dev)
            .with_context(|| format!("the model of index {} ({recorded})", self.dir.display()))?;
        if m.sha256 != want {
            bail!(
                "index {} was built with another model: {recorded} (sha256 {}), but {} is sha256 {}; \
                 query with the model the index was built with, or rebuild the index",
                self.dir.display(),
                &want[..want.len().min(12)],
                path.display(),
                &m.sha256[..12]
            );
        }
        if m.model.dim() != self.dim {
            bail!(
                "index {} holds {}-d embeddings, but {} embeds in {} dimensions",
                self.dir.display(),
                self.dim,
                path.display(),
                m.model.dim()
            );
        }
        Ok(m)
    }
}

/// Exact top-k search: for each query (`q x dim`, row-major), the `k` rows of
/// `rows` with the largest dot products, best first, leaving out those
/// `skip(query, row)` rejects. The products run as batched matrix products.
pub fn top_k(
    rows: &[f32],
    dim: usize,
    queries: &[f32],
    k: usize,
    skip: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Vec<Vec<(usize, f32)>> {
    scan(rows, dim, queries, &|qi, s| best_of(s, k, |r| skip(qi, r)))
}

/// `each(query, scores)` for every query (`q x dim`, row-major), with
/// `scores` its dot products with every row of `rows`, computed as batched
/// matrix products (256 queries at a time against the whole gallery).
pub fn scan<T: Send>(
    rows: &[f32],
    dim: usize,
    queries: &[f32],
    each: &(dyn Fn(usize, &[f32]) -> T + Sync),
) -> Vec<T> {
    let n = rows.len() / dim;
    let q = queries.len() / dim;
    let dev = burn::tensor::Device::flex();
    // the gallery transposed once, contiguous: [dim, n]
    let mut t = vec![0f32; rows.len()];
    for (r, row) in rows.chunks_exact(dim).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * n + r] = v;
        }
    }
    let gallery = Tensor::<2>::from_data(TensorData::new(t, [dim, n]), &dev);
    let block = 256;
    let mut out = Vec::with_capacity(q);
    for start in (0..q).step_by(block) {
        let b = block.min(q - start);
        let qs = Tensor::<2>::from_data(
            TensorData::new(queries[start * dim..(start + b) * dim].to_vec(), [b, dim]),
            &dev,
        );
        let scores: Vec<f32> = qs
            .matmul(gallery.clone())
            .into_data()
            .try_to_vec()
            .expect("f32 scores");
        let part: Vec<T> = scores
            .par_chunks_exact(n)
            .enumerate()
            .map(|(j, s)| each(start + j, s))
            .collect();
        out.extend(part);
    }
    out
}

/// The `k` largest of `scores` with their positions, best first (ties by
/// position), leaving out the positions `skip` rejects: one pass that keeps
/// a sorted buffer of the best so far.
fn best_of(scores: &[f32], k: usize, skip: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (r, &v) in scores.iter().enumerate() {
        if k == 0 || (best.len() == k && v <= best[k - 1].1) || skip(r) {
            continue;
        }
        // after every entry with a score >= v (earlier positions win ties)
        let at = best.partition_point(|x| x.1 >= v);
        best.insert(at, (r, v));
        best.truncate(k);
    }
    best
}

/// Scale each `dim`-wide row of `rows` to unit L2 norm.
fn normalize_rows(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_exact_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|x| *x /= n);
    }
}

/// The positive weak labels of an index line.
fn positives(item: &Value) -> Vec<String> {
    item["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_i64() == Some(1))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn query(a: RetrieveQueryArgs) -> anyhow::Result<()> {
    let ix = Index::open(&a.index)?;
    let dev = radfm_model::device(a.device.as_str())?;
    let (q, described, own): (Vec<f32>, Value, Option<usize>) = match (&a.text, &a.image, &a.id) {
        (Some(text), _, _) => {
            let m = ix.model(a.model.as_deref(), &dev)?;
            let e = m.embed_texts(&[text.as_str()], "query text")?;
            (e[0].clone(), json!({"text": text}), None)
        }
        (_, Some(file), _) => {
            let m = ix.model(a.model.as_deref(), &dev)?;
            let bytes = std::fs::read(file)
                .with_context(|| format!("--image {}: cannot read", file.display()))?;
            let (sop, px) = radfm_data::reader::dicom_pixels(&bytes)
                .map_err(|e| anyhow::anyhow!("--image {}: {e}", file.display()))?;
            let prep = m.preprocessing()?;
            let frames = prep
                .frames(&px)
                .map_err(|e| anyhow::anyhow!("--image {}: {e}", file.display()))?;
            let size = m.model.vision.config.image_size;
            let (h, w) = prep.output_size(size, size);
            let nf = frames.len();
            let x = Tensor::<4>::from_data(
                TensorData::new(frames.concat(), [nf, prep.channels, h, w]),
                &dev,
            );
            let mut e: Vec<f32> = m
                .embed(x, a.device)?
                .mean_dim(0)
                .into_data()
                .try_to_vec()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let d = e.len();
            normalize_rows(&mut e, d);
            let own = sop
                .as_deref()
                .and_then(|s| ix.items.iter().position(|it| it["id"] == s));
            // the file's own UIDs are not echoed: it need not be de-identified
            (e, json!({"image": file.display().to_string()}), own)
        }
        (_, _, Some(id)) => {
            let i = ix
                .items
                .iter()
                .position(|it| it["id"] == id.as_str())
                .with_context(|| {
                    format!(
                        "--id {id}: no such image in {} ({} indexed)",
                        a.index.display(),
                        ix.len()
                    )
                })?;
            (ix.row(i).to_vec(), json!({"id": id}), Some(i))
        }
        _ => bail!("give --text, --image or --id"),
    };
    let approximate = !a.exact && crate::commands::approx::exists(&a.index);
    let found = if approximate {
        let mut f = crate::commands::approx::search_saved(
            &a.index,
            std::slice::from_ref(&q),
            a.k + 1,
            crate::commands::approx::ef_for(a.k + 1),
        )?;
        for r in f.iter_mut() {
            r.retain(|x| Some(x.0) != own);
            r.truncate(a.k);
        }
        f
    } else {
        top_k(&ix.rows, ix.dim, &q, a.k, &|_, r| Some(r) == own)
    };
    let results: Vec<Value> = found[0]
        .iter()
        .enumerate()
        .map(|(rank, &(r, s))| {
            json!({"rank": rank + 1, "id": ix.items[r]["id"], "score": s, "metadata": ix.items[r]})
        })
        .collect();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "query": described,
                "index": a.index.display().to_string(),
                "model_sha256": ix.meta["model"]["sha256"],
                "search": if approximate { "approximate (HNSW)" } else { "exact" },
                "k": a.k,
                "results": results,
            }))?
        );
    } else {
        println!("rank  score    id  (patient, split, site, view; positive weak labels)");
        for (rank, &(r, s)) in found[0].iter().enumerate() {
            let it = &ix.items[r];
            let str_of = |k: &str| it[k].as_str().unwrap_or("-").to_string();
            println!(
                "{:>4}  {s:.4}  {}  ({}, {}, {}, {}; {})",
                rank + 1,
                str_of("id"),
                str_of("patient_id"),
                str_of("split"),
                str_of("site"),
                str_of("view"),
                positives(it).join(", ")
            );
        }
    }
    Ok(())
}

/// The chance that at least one of `m` relevant items among `n` lands in a
/// random top `k`.
fn chance_any(n: usize, m: usize, k: usize) -> f64 {
    if m == 0 {
        return 0.0;
    }
    let mut none = 1.0;
    for i in 0..k.min(n) {
        if n - i <= m {
            return 1.0;
        }
        none *= (n - m - i) as f64 / (n - i) as f64;
    }
    1.0 - none
}

fn eval(a: RetrieveEvalArgs) -> anyhow::Result<()> {
    let ix = Index::open(&a.index)?;
    let mut ks = a.k.clone();
    ks.sort_unstable();
    ks.dedup();
    let kmax = *ks.last().expect("at least one k");
    let test: Vec<usize> = (0..ix.len())
        .filter(|&i| ix.items[i]["split"] == "test")
        .collect();
    if test.len() < 2 {
        bail!(
            "{}: {} test-split images; `retrieve eval` needs the test split of a split dataset \
             (radfm split, then radfm retrieve index --split all or --split test)",
            a.index.display(),
            test.len()
        );
    }
    let patient = |i: usize| ix.items[i]["patient_id"].as_str().unwrap_or("").to_string();
    let pos: Vec<HashSet<String>> = test
        .iter()
        .map(|&i| positives(&ix.items[i]).into_iter().collect())
        .collect();
    let pats: Vec<String> = test.iter().map(|&i| patient(i)).collect();
    let rows: Vec<f32> = test.iter().flat_map(|&i| ix.row(i).to_vec()).collect();

    // image -> image: queries with at least one positive label, against the
    // test images of other patients
    let queries: Vec<usize> = (0..test.len()).filter(|&j| !pos[j].is_empty()).collect();
    let qrows: Vec<f32> = queries
        .iter()
        .flat_map(|&j| rows[j * ix.dim..(j + 1) * ix.dim].to_vec())
        .collect();
    let found = top_k(&rows, ix.dim, &qrows, kmax, &|qi, r| {
        pats[r] == pats[queries[qi]]
    });
    let relevant = |j: usize, r: usize| !pos[j].is_disjoint(&pos[r]);
    let mut precision = vec![0f64; ks.len()];
    let mut chance = 0f64;
    for (qi, &j) in queries.iter().enumerate() {
        for (p, &k) in precision.iter_mut().zip(&ks) {
            let hits = found[qi]
                .iter()
                .take(k)
                .filter(|(r, _)| relevant(j, *r))
                .count();
            *p += hits as f64 / k as f64;
        }
        let gallery: Vec<usize> = (0..test.len()).filter(|&r| pats[r] != pats[j]).collect();
        let rel = gallery.iter().filter(|&&r| relevant(j, r)).count();
        chance += rel as f64 / gallery.len().max(1) as f64;
    }
    let nq = queries.len().max(1) as f64;
    let image_to_image = json!({
        "queries": queries.len(),
        "left_out": {"no positive weak label": test.len() - queries.len()},
        "gallery": "the test split's images of other patients",
        "relevant": "sharing at least one positive weak label (the catalog's report labels)",
        "precision": ks.iter().zip(&precision).map(|(k, p)| json!({
            "k": k, "value": p / nq, "chance": chance / nq,
        })).collect::<Vec<_>>(),
    });

    // text -> image: each test study's report against every test image
    let data = a
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(ix.meta["dataset"]["path"].as_str().unwrap_or_default()));
    let catalog = radfm_data::catalog::Catalog::open(&data)
        .with_context(|| format!("the index's dataset {} (give --data)", data.display()))?;
    let mut reports: BTreeMap<String, String> = BTreeMap::new();
    for r in catalog.image_reports()? {
        if let Some(text) = r.report {
            reports.entry(r.study_uid).or_insert(text);
        }
    }
    let mut by_study: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (j, &i) in test.iter().enumerate() {
        if let Some(s) = ix.items[i]["study_instance_uid"].as_str() {
            by_study.entry(s.to_string()).or_default().push(j);
        }
    }
    let studies: Vec<(&String, &Vec<usize>, String)> = by_study
        .iter()
        .filter_map(|(s, imgs)| {
            reports
                .get(s)
                .map(|t| (s, imgs, crate::commands::pretrain::report_text(t)))
        })
        .collect();
    let text_to_image = if studies.is_empty() {
        json!({"queries": 0, "note": "the dataset has no reports for the test split's studies"})
    } else {
        let dev = radfm_model::device(a.device.as_str())?;
        let m = ix.model(None, &dev)?;
        let texts: Vec<&str> = studies.iter().map(|s| s.2.as_str()).collect();
        let t = m.embed_texts(&texts, "reports")?;
        let trows: Vec<f32> = t.concat();
        // the rank of each report's best-placed own image (1 = first), ties
        // counted against it
        let firsts: Vec<usize> = scan(&rows, ix.dim, &trows, &|qi, s| {
            let own = studies[qi].1;
            let best = own.iter().map(|&j| s[j]).fold(f32::NEG_INFINITY, f32::max);
            1 + s
                .iter()
                .enumerate()
                .filter(|(r, &v)| v >= best && !own.contains(r))
                .count()
        });
        let mut recall = vec![0f64; ks.len()];
        let mut chance = vec![0f64; ks.len()];
        let mut ranks = Vec::with_capacity(studies.len());
        for ((_, own, _), &first) in studies.iter().zip(&firsts) {
            ranks.push(first as f64);
            for ((r, c), &k) in recall.iter_mut().zip(chance.iter_mut()).zip(&ks) {
                *r += f64::from(first <= k);
                *c += chance_any(test.len(), own.len(), k);
            }
        }
        ranks.sort_by(f64::total_cmp);
        let nq = studies.len() as f64;
        json!({
            "queries": studies.len(),
            "candidates": test.len(),
            "query": "the study's report (findings and impression, as pretraining reads it)",
            "hit": "any image of the report's own study in the top k",
            "recall": ks.iter().enumerate().map(|(i, k)| json!({
                "k": k, "value": recall[i] / nq, "chance": chance[i] / nq,
            })).collect::<Vec<_>>(),
            "median_rank": ranks[ranks.len() / 2],
        })
    };
    let out = json!({
        "index": a.index.display().to_string(),
        "model": ix.meta["model"],
        "split": "test",
        "images": test.len(),
        "image_to_image": image_to_image,
        "text_to_image": text_to_image,
    });
    print_eval(&out);
    if let Some(p) = &a.out {
        radfm_core::atomic::write_atomic(p, serde_json::to_string_pretty(&out)?.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn print_eval(out: &Value) {
    println!("retrieval on {} test images", out["images"]);
    let table = |title: &str, v: &Value, key: &str| {
        if let Some(rows) = v[key].as_array() {
            println!("{title} ({} queries)", v["queries"]);
            for r in rows {
                println!(
                    "  @{:<3} {:.3}   chance {:.3}",
                    r["k"],
                    r["value"].as_f64().unwrap_or(f64::NAN),
                    r["chance"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    };
    table(
        "image -> image precision",
        &out["image_to_image"],
        "precision",
    );
    table(
        "report -> own image recall",
        &out["text_to_image"],
        "recall",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_exact_and_skips() {
        // 5 unit rows in 2-d at angles 0, 30, 60, 90, 180 degrees
        let ang = [0f32, 30.0, 60.0, 90.0, 180.0];
        let rows: Vec<f32> = ang
            .iter()
            .flat_map(|a| [a.to_radians().cos(), a.to_radians().sin()])
            .collect();
        let q = [1f32, 0.0, 0.0, 1.0];
        let r = top_k(&rows, 2, &q, 3, &|qi, row| qi == 0 && row == 0);
        let ids = |v: &Vec<(usize, f32)>| v.iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(ids(&r[0]), vec![1, 2, 3]);
        assert_eq!(ids(&r[1]), vec![3, 2, 1]);
        assert!((r[0][0].1 - 30f32.to_radians().cos()).abs() < 1e-6);
    }

    #[test]
    fn chance_of_any_own_image_in_the_top_k() {
        assert!((chance_any(10, 1, 1) - 0.1).abs() < 1e-12);
        assert!((chance_any(10, 2, 3) - (1.0 - 8.0 / 10.0 * 7.0 / 9.0 * 6.0 / 8.0)).abs() < 1e-12);
        assert_eq!(chance_any(10, 0, 3), 0.0);
        assert_eq!(chance_any(3, 1, 5), 1.0);
    }
}
