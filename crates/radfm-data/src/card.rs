//! The dataset card (`card.json` and `card.md`): what is in the dataset, by
//! modality, view, sex, age band, site and split, and what was excluded and why.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::DataError;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Card {
    pub patients: i64,
    pub studies: i64,
    pub images: i64,
    pub volumes: i64,
    pub reports: i64,
    pub by_modality: BTreeMap<String, i64>,
    pub by_view: BTreeMap<String, i64>,
    pub by_sex: BTreeMap<String, i64>,
    pub by_age_band: BTreeMap<String, i64>,
    pub by_site: BTreeMap<String, i64>,
    pub by_split: BTreeMap<String, i64>,
    pub inputs: BTreeMap<String, i64>,
    pub excluded: BTreeMap<String, i64>,
    pub deidentification: String,
}

/// Collapse a reason into its category (text before the first ':').
fn reason_category(r: &str) -> String {
    r.split(':').next().unwrap_or(r).trim().to_string()
}

pub fn build(catalog: &Catalog) -> rusqlite::Result<Card> {
    let c = &catalog.conn;
    let mut card = Card {
        patients: catalog.count("patients")?,
        studies: catalog.count("studies")?,
        reports: catalog.count("reports")?,
        deidentification: crate::ingest::policy_text(
            catalog.meta(crate::ingest::META_POLICY)?.as_deref() != Some("identified"),
        )
        .into(),
        ..Default::default()
    };
    let mut st = c.prepare(
        "SELECT i.kind, i.modality, i.view_position, i.sex, i.age_years, i.site, p.split
         FROM images i JOIN patients p ON p.patient_key = i.patient_key",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<f64>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
        ))
    })?;
    let inc = |m: &mut BTreeMap<String, i64>, k: Option<String>| {
        *m.entry(k.unwrap_or_else(|| "unknown".into())).or_default() += 1;
    };
    for row in rows {
        let (kind, modality, view, sex, age, site, split) = row?;
        if kind == "volume" {
            card.volumes += 1;
        } else {
            card.images += 1;
        }
        inc(&mut card.by_modality, modality);
        inc(&mut card.by_view, view);
        inc(&mut card.by_sex, sex);
        inc(
            &mut card.by_age_band,
            Some(radfm_core::AgeBand::label(age).to_string()),
        );
        inc(&mut card.by_site, site);
        inc(
            &mut card.by_split,
            Some(split.unwrap_or_else(|| "unassigned".into())),
        );
    }
    for s in catalog.sources()? {
        *card.inputs.entry(s.status.clone()).or_default() += 1;
        if s.status != "ok" {
            let k = format!(
                "{}: {}",
                s.status,
                reason_category(s.reason.as_deref().unwrap_or(""))
            );
            *card.excluded.entry(k).or_default() += 1;
        }
    }
    Ok(card)
}

fn table(md: &mut String, title: &str, m: &BTreeMap<String, i64>) {
    if m.is_empty() {
        return;
    }
    md.push_str(&format!(
        "\n## {title}\n\n| {title} | count |\n|---|---:|\n"
    ));
    for (k, v) in m {
        md.push_str(&format!("| {k} | {v} |\n"));
    }
}

pub fn to_markdown(card: &Card) -> String {
    let mut md = String::from("# Dataset card\n\n");
    md.push_str(&format!(
        "{} patients, {} studies, {} images, {} volumes, {} reports.\n\nDe-identification: {}.\n",
        card.patients, card.studies, card.images, card.volumes, card.reports, card.deidentification
    ));
    table(&mut md, "Modality", &card.by_modality);
    table(&mut md, "View", &card.by_view);
    table(&mut md, "Sex", &card.by_sex);
    table(&mut md, "Age band", &card.by_age_band);
    table(&mut md, "Site", &card.by_site);
    table(&mut md, "Split", &card.by_split);
    table(&mut md, "Input files", &card.inputs);
    table(&mut md, "Excluded (status: reason)", &card.excluded);
    md
}

/// Rebuild and write `card.json` and `card.md` atomically.
pub fn write(dataset: &Path, catalog: &Catalog) -> Result<Card, DataError> {
    let card = build(catalog).map_err(|e| DataError::Catalog {
        path: dataset.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    })?;
    let w = |name: &str, bytes: &[u8]| {
        let p = dataset.join(name);
        radfm_core::write_atomic(&p, bytes).map_err(|e| DataError::Write { path: p, source: e })
    };
    w(
        "card.json",
        &serde_json::to_vec_pretty(&card).expect("json"),
    )?;
    w("card.md", to_markdown(&card).as_bytes())?;
    Ok(card)
}
