//! The approximate retrieval index, for collections where exact search is too
//! slow (beyond about a million images): an HNSW graph (Malkov and Yashunin)
//! from the `hnsw_rs` crate over the index's normalised embeddings, stored in
//! `INDEX/hnsw/`. Its recall against the exact search is what `radfm bench
//! retrieval --approximate` measures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hnsw_rs::prelude::*;

/// Cosine distance of unit vectors, `1 - a.b`, clamped at 0 (rounding can
/// put a vector's product with itself just above 1).
#[derive(Default, Clone, Copy)]
pub struct Cosine;

impl Distance<f32> for Cosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        (1.0 - dot).max(0.0)
    }
}

/// Neighbours kept per node and layer (HNSW's M).
pub const CONNECTIONS: usize = 24;
/// Candidates explored while building (efConstruction).
pub const EF_CONSTRUCTION: usize = 200;
const LAYERS: usize = 16;
pub const DIR: &str = "hnsw";
const BASE: &str = "graph";

/// The graph over `rows` (`n x dim`, unit vectors), built on all cores.
pub fn build(rows: &[f32], dim: usize) -> Hnsw<'static, f32, Cosine> {
    let n = rows.len() / dim;
    let h = Hnsw::<f32, Cosine>::new(CONNECTIONS, n.max(1), LAYERS, EF_CONSTRUCTION, Cosine);
    let data: Vec<(&[f32], usize)> = rows
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, r)| (r, i))
        .collect();
    h.parallel_insert_slice(&data);
    h
}

/// The search breadth for `k` results (efSearch): wider than k, at least 64.
pub fn ef_for(k: usize) -> usize {
    (4 * k).max(64)
}

/// The `k` nearest rows of each query by the graph, as (row, cosine), best first.
pub fn search(
    h: &Hnsw<'_, f32, Cosine>,
    queries: &[Vec<f32>],
    k: usize,
    ef: usize,
) -> Vec<Vec<(usize, f32)>> {
    h.parallel_search(queries, k, ef.max(k))
        .into_iter()
        .map(|found| {
            let mut v: Vec<(usize, f32)> = found
                .into_iter()
                .map(|n| (n.d_id, 1.0 - n.distance))
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        })
        .collect()
}

/// Build the graph of an index's rows and store it in `INDEX/hnsw/`
/// (written beside, then renamed into place).
pub fn save(index: &Path, rows: &[f32], dim: usize) -> anyhow::Result<PathBuf> {
    let h = build(rows, dim);
    let dir = index.join(DIR);
    let tmp = index.join(format!("{DIR}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let name = h
        .file_dump(&tmp, BASE)
        .with_context(|| format!("writing the HNSW graph in {}", tmp.display()))?;
    anyhow::ensure!(
        name == BASE,
        "the HNSW dump took the name {name}, not {BASE}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).with_context(|| format!("moving {} into place", dir.display()))?;
    Ok(dir)
}

/// Whether an index has a stored graph.
pub fn exists(index: &Path) -> bool {
    index.join(DIR).join(format!("{BASE}.hnsw.graph")).is_file()
}

/// Search an index's stored graph.
pub fn search_saved(
    index: &Path,
    queries: &[Vec<f32>],
    k: usize,
    ef: usize,
) -> anyhow::Result<Vec<Vec<(usize, f32)>>> {
    let dir = index.join(DIR);
    let io = HnswIo::new(&dir, BASE);
    let h: Hnsw<'_, f32, Cosine> = io
        .load_hnsw_with_dist(Cosine)
        .with_context(|| format!("reading the HNSW graph in {}", dir.display()))?;
    Ok(search(&h, queries, k, ef))
}

/// Mean fraction of the exact top k that the approximate top k finds.
pub fn recall(exact: &[Vec<(usize, f32)>], approx: &[Vec<(usize, f32)>], k: usize) -> f64 {
    let mut total = 0.0;
    for (e, a) in exact.iter().zip(approx) {
        let want: std::collections::HashSet<usize> = e.iter().take(k).map(|x| x.0).collect();
        let got = a.iter().take(k).filter(|x| want.contains(&x.0)).count();
        total += got as f64 / want.len().max(1) as f64;
    }
    total / exact.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn unit_rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n * d).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for r in v.chunks_exact_mut(d) {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    #[test]
    fn the_graph_finds_the_exact_neighbours_and_survives_a_reload() {
        let (n, d, k) = (3000, 24, 10);
        let rows = unit_rows(n, d, 1);
        let qs = unit_rows(200, d, 2);
        let queries: Vec<Vec<f32>> = qs.chunks_exact(d).map(<[f32]>::to_vec).collect();
        let exact = crate::commands::retrieve::top_k(&rows, d, &qs, k, &|_, _| false);
        let h = build(&rows, d);
        let approx = search(&h, &queries, k, ef_for(k));
        let r = recall(&exact, &approx, k);
        assert!(r >= 0.95, "recall@10 {r}");
        // scores are the cosines
        let (row, s) = approx[0][0];
        let dot: f32 = rows[row * d..(row + 1) * d]
            .iter()
            .zip(&queries[0])
            .map(|(a, b)| a * b)
            .sum();
        assert!((s - dot).abs() < 1e-5);
        // an indexed vector finds itself, at cosine 1, without tripping on rounding
        let me = search(&h, &[rows[..d].to_vec()], 1, 64);
        assert_eq!(me[0][0].0, 0);
        // stored and read back, the same answers
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &rows, d).unwrap();
        assert!(exists(dir.path()));
        let again = search_saved(dir.path(), &queries, k, ef_for(k)).unwrap();
        assert!(recall(&exact, &again, k) >= 0.95);
    }
}
