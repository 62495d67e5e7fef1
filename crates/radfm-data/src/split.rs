//! Patient-level splits: every patient goes to exactly one of train, val and
//! test, so no patient's images appear in two splits.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rusqlite::params;

use crate::catalog::Catalog;
use crate::DataError;

#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct SplitCounts {
    pub train: usize,
    pub val: usize,
    /// every test patient, the held-out site's included
    pub test: usize,
    /// the test patients of the held-out site (0 without one)
    pub held_out: usize,
}

/// Assign splits to all patients of the dataset (replacing earlier ones).
/// Patients are sorted by key, shuffled with `seed`, and cut at the fractions.
pub fn assign(
    dataset: &Path,
    train: f64,
    val: f64,
    test: f64,
    seed: u64,
) -> Result<SplitCounts, DataError> {
    assign_holding_out(dataset, train, val, test, seed, None)
}

/// As [`assign`], with every patient seen at `hold_out_site` (a site label of the
/// catalog) put in the test split first: an external test set from a site whose
/// images no training or validation patient shares. The other patients are cut
/// at the fractions as before.
pub fn assign_holding_out(
    dataset: &Path,
    train: f64,
    val: f64,
    test: f64,
    seed: u64,
    hold_out_site: Option<&str>,
) -> Result<SplitCounts, DataError> {
    let bad = |reason: String| DataError::Split { reason };
    for (n, f) in [("train", train), ("val", val), ("test", test)] {
        if !(0.0..=1.0).contains(&f) || !f.is_finite() {
            return Err(bad(format!("the {n} fraction {f} is not in [0, 1]")));
        }
    }
    let total = train + val + test;
    if (total - 1.0).abs() > 1e-6 {
        return Err(bad(format!("fractions sum to {total}, not 1")));
    }
    if !dataset.join(crate::catalog::FILE_NAME).exists() {
        return Err(bad(format!(
            "{} has no catalog (run `radfm ingest` first)",
            dataset.display()
        )));
    }
    let catalog = Catalog::open(dataset)?;
    let db = |e: rusqlite::Error| DataError::Catalog {
        path: dataset.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    };
    let mut keys: Vec<String> = {
        let mut st = catalog
            .conn
            .prepare("SELECT patient_key FROM patients ORDER BY patient_key")
            .map_err(db)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)?
    };
    let held: std::collections::BTreeSet<String> = match hold_out_site {
        None => Default::default(),
        Some(site) => {
            let mut st = catalog
                .conn
                .prepare("SELECT DISTINCT patient_key FROM studies WHERE site = ?1")
                .map_err(db)?;
            let rows = st.query_map([site], |r| r.get(0)).map_err(db)?;
            let held: std::collections::BTreeSet<String> =
                rows.collect::<rusqlite::Result<_>>().map_err(db)?;
            if held.is_empty() {
                let sites = catalog.sites().map_err(db)?;
                return Err(bad(format!(
                    "no study of site {site:?} in the catalog (its sites: {})",
                    sites.join(", ")
                )));
            }
            if held.len() == keys.len() {
                return Err(bad(format!(
                    "every patient was seen at site {site:?}: none would be left to train on"
                )));
            }
            keys.retain(|k| !held.contains(k));
            held
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    keys.shuffle(&mut rng);
    let n = keys.len();
    let n_train = (train * n as f64).round() as usize;
    let n_val = ((val * n as f64).round() as usize).min(n - n_train.min(n));
    let tx = catalog.conn.unchecked_transaction().map_err(db)?;
    let mut counts = SplitCounts {
        train: 0,
        val: 0,
        test: held.len(),
        held_out: held.len(),
    };
    for k in &held {
        tx.execute(
            "UPDATE patients SET split = 'test' WHERE patient_key = ?1",
            params![k],
        )
        .map_err(db)?;
    }
    for (i, k) in keys.iter().enumerate() {
        let s = if i < n_train {
            counts.train += 1;
            "train"
        } else if i < n_train + n_val {
            counts.val += 1;
            "val"
        } else {
            counts.test += 1;
            "test"
        };
        tx.execute(
            "UPDATE patients SET split = ?1 WHERE patient_key = ?2",
            params![s, k],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    crate::card::write(dataset, &catalog)?;
    Ok(counts)
}
