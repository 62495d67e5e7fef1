//! `radfm reports label|sections|scrub|score|bench`.
//!
//! Every output is written atomically (a temporary file renamed into place),
//! so a killed run leaves the previous output or none, never half a file;
//! rerunning is the resume (labelling runs at tens of thousands of reports
//! per second). A report that cannot be read is reported on stderr with its
//! name and reason, and the rest continue.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use radfm_core::atomic::AtomicFile;
use radfm_report::input::{read_reports, Report};
use radfm_report::labeler::{char_offset, Hedges, LabelOptions, Labeler, NoFindingRule};
use radfm_report::sections::NAMES;
use serde_json::json;

use crate::cli::{HedgesArg, NoFindingArg, ReportsCommand};

pub fn run(c: ReportsCommand) -> anyhow::Result<()> {
    match c {
        ReportsCommand::Label {
            data: Some(data),
            all,
            ..
        } => label_dataset(&data, all),
        ReportsCommand::Label {
            input,
            out,
            sections,
            no_finding,
            hedges,
            ..
        } => {
            let (Some(input), Some(out)) = (input, out) else {
                bail!("reports label: give INPUT and --out, or --data DATASET");
            };
            label(&input, &out, &sections, no_finding, hedges)
        }
        ReportsCommand::Sections { input, out } => sections(&input, &out),
        ReportsCommand::Scrub {
            input,
            out,
            surrogates,
            key,
        } => scrub(&input, &out, surrogates.then_some(key).flatten().as_deref()),
        ReportsCommand::Score {
            pred,
            reference,
            out,
        } => score(&pred, &reference, out.as_deref()),
        ReportsCommand::Bench {
            input,
            gold,
            errors,
            repeat,
            hedges,
        } => bench(&input, gold.as_deref(), errors.as_deref(), repeat, hedges),
    }
}

/// Stream every report of `input` through `f`, writing its JSON lines to `out` atomically.
fn each_report(
    input: &Path,
    out: &Path,
    mut f: impl FnMut(&Report) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<(usize, usize)> {
    let mut file =
        AtomicFile::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let (mut ok, mut bad) = (0usize, 0usize);
    let mut write_err: Option<anyhow::Error> = None;
    read_reports(input, |r| {
        if write_err.is_some() {
            return;
        }
        match r {
            Ok(rep) => {
                let line = f(&rep).and_then(|v| {
                    serde_json::to_writer(&mut file, &v)?;
                    file.write_all(b"\n")?;
                    Ok(())
                });
                match line {
                    Ok(()) => ok += 1,
                    Err(e) => write_err = Some(e.context(format!("writing {}", out.display()))),
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("warning: skipped {e}");
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if ok == 0 {
        bail!("{}: no readable reports ({bad} failed)", input.display());
    }
    file.commit()
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "{ok} reports -> {}{}",
        out.display(),
        if bad > 0 {
            format!(" ({bad} skipped, see warnings)")
        } else {
            String::new()
        }
    );
    Ok((ok, bad))
}

fn check_sections(names: &[String]) -> anyhow::Result<Vec<&str>> {
    names
        .iter()
        .map(|n| {
            let n = n.trim();
            NAMES
                .iter()
                .copied()
                .find(|k| k.eq_ignore_ascii_case(n))
                .with_context(|| {
                    format!(
                        "--sections: unknown section {n:?} (known: {})",
                        NAMES.join(", ")
                    )
                })
        })
        .collect()
}

fn label_json(id: &str, text: &str, labeler: &Labeler, opts: LabelOptions) -> serde_json::Value {
    let l = labeler.label_with(text, opts);
    let labels: serde_json::Map<String, serde_json::Value> = l
        .iter()
        .map(|(o, s)| (o.to_string(), json!(s.as_str())))
        .collect();
    let other: serde_json::Map<String, serde_json::Value> = l
        .other()
        .map(|(o, s)| (o.to_string(), json!(s.as_str())))
        .collect();
    let evidence: Vec<serde_json::Value> = l
        .evidence
        .iter()
        .map(|e| {
            let mut v = json!({
                "observation": e.observation,
                "status": e.status.as_str(),
                "start": char_offset(text, e.start),
                "end": char_offset(text, e.end),
                "text": &text[e.start..e.end],
            });
            if e.weak {
                v["weak"] = json!(true);
            }
            v
        })
        .collect();
    json!({"id": id, "labels": labels, "other_findings": other, "evidence": evidence})
}

fn label(
    input: &Path,
    out: &Path,
    sections: &[String],
    no_finding: NoFindingArg,
    hedges: HedgesArg,
) -> anyhow::Result<()> {
    let names = check_sections(sections)?;
    let opts = LabelOptions {
        no_finding: match no_finding {
            NoFindingArg::Normal => NoFindingRule::Normal,
            NoFindingArg::Chexpert => NoFindingRule::Chexpert,
        },
        hedges: parse_hedges(hedges),
    };
    let labeler = Labeler::builtin();
    each_report(input, out, |r| {
        Ok(label_json(&r.id, &r.select(&names), labeler, opts))
    })?;
    Ok(())
}

/// Weak labels into a dataset's catalog.
fn label_dataset(data: &Path, all: bool) -> anyhow::Result<()> {
    if !data.join(radfm_data::catalog::FILE_NAME).is_file() {
        bail!(
            "{}: not a dataset (no {}); make one with `radfm ingest`",
            data.display(),
            radfm_data::catalog::FILE_NAME
        );
    }
    let catalog = radfm_data::catalog::Catalog::open(data)?;
    let bar = crate::progress::bar(0, "reports");
    let summary = radfm_data::labels::label_dataset(&catalog, all, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("labelling the reports of {}", data.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "{}: labelled {} reports ({} had labels from other rules); {} already labelled by {}",
        data.display(),
        summary.labeled,
        summary.relabeled,
        summary.current,
        radfm_data::labels::labeler_version()
    );
    Ok(())
}

fn parse_hedges(hedges: HedgesArg) -> Hedges {
    match hedges {
        HedgesArg::Probable => Hedges::Probable,
        HedgesArg::All => Hedges::All,
    }
}

fn sections(input: &Path, out: &Path) -> anyhow::Result<()> {
    each_report(input, out, |r| {
        let mut joined: BTreeMap<&str, String> = BTreeMap::new();
        let mut spans = Vec::new();
        for s in &r.sections {
            let e = joined.entry(s.name).or_default();
            if !e.is_empty() {
                e.push_str("\n\n");
            }
            e.push_str(&s.text);
            spans.push(json!({
                "section": s.name,
                "heading": s.heading,
                "start": char_offset(&r.text, s.start),
                "end": char_offset(&r.text, s.end),
            }));
        }
        Ok(json!({"id": r.id, "sections": joined, "spans": spans}))
    })?;
    Ok(())
}

fn scrub(input: &Path, out: &Path, surrogate_key: Option<&Path>) -> anyhow::Result<()> {
    use radfm_report::scrub::{self, Known, Patient, Replacement, Surrogates};
    let surrogates = match surrogate_key {
        Some(k) => {
            let (key, created) = radfm_data::key::load_or_create(k, out)?;
            if created {
                eprintln!(
                    "created surrogate key {} (mode 0600): keep it secret",
                    k.display()
                );
            }
            Some(Surrogates::new(key))
        }
        None => None,
    };
    let known = Known::default();
    each_report(input, out, |r| {
        let spans = scrub::find(&r.text, &known);
        let how = match &surrogates {
            Some(s) => Replacement::Surrogates(
                s,
                Patient {
                    id: &r.id,
                    date_offset_days: s.date_offset_days(&r.id),
                },
            ),
            None => Replacement::Placeholders,
        };
        let text = scrub::replace(&r.text, &spans, how);
        let kinds: Vec<&str> = spans.iter().map(|s| s.kind.as_str()).collect();
        let offsets: Vec<serde_json::Value> = spans
            .iter()
            .map(|s| {
                json!([
                    char_offset(&r.text, s.start),
                    char_offset(&r.text, s.end),
                    s.kind.as_str()
                ])
            })
            .collect();
        Ok(json!({"id": r.id, "text": text, "phi": kinds, "spans": offsets}))
    })?;
    Ok(())
}

fn read_by_id(path: &Path, what: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    let mut dup = Vec::new();
    let mut bad = 0;
    read_reports(path, |r| match r {
        Ok(r) => {
            if m.insert(r.id.clone(), r.text).is_some() {
                dup.push(r.id);
            }
        }
        Err(e) => {
            bad += 1;
            eprintln!("warning: {what}: skipped {e}");
        }
    })?;
    if !dup.is_empty() {
        bail!(
            "{}: duplicate ids, e.g. {:?}",
            path.display(),
            &dup[..dup.len().min(5)]
        );
    }
    if bad > 0 {
        bail!(
            "{}: {bad} unreadable lines; metrics need every pair",
            path.display()
        );
    }
    Ok(m)
}

/// Fails when some ids of `a` are not in `b`, naming a few.
fn only_in(
    a: &HashMap<String, String>,
    b: &HashMap<String, String>,
    what: &str,
) -> anyhow::Result<()> {
    let mut ids: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    ids.sort();
    if !ids.is_empty() {
        bail!("{} {what}, e.g. {:?}", ids.len(), &ids[..ids.len().min(5)]);
    }
    Ok(())
}

fn score(pred: &Path, reference: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let p = read_by_id(pred, "--pred")?;
    let r = read_by_id(reference, "--ref")?;
    only_in(&p, &r, "predictions have no reference")?;
    only_in(&r, &p, "references have no prediction")?;
    let mut ids: Vec<&String> = p.keys().collect();
    ids.sort();
    let preds: Vec<&str> = ids.iter().map(|i| p[*i].as_str()).collect();
    let refs: Vec<&str> = ids.iter().map(|i| r[*i].as_str()).collect();
    let s = radfm_report::metrics::score(&preds, &refs, Labeler::builtin());
    println!("pairs       {}", s.n);
    println!(
        "BLEU-1..4   {:.4} {:.4} {:.4} {:.4}",
        s.bleu1, s.bleu2, s.bleu3, s.bleu4
    );
    println!(
        "ROUGE-L     P {:.4}  R {:.4}  F1 {:.4}",
        s.rouge_l_precision, s.rouge_l_recall, s.rouge_l_f1
    );
    println!(
        "CheXpert F1 14: micro {:.4} macro {:.4}   5: micro {:.4} macro {:.4}",
        s.chexpert_micro_f1_14,
        s.chexpert_macro_f1_14,
        s.chexpert_micro_f1_5,
        s.chexpert_macro_f1_5
    );
    if let Some(out) = out {
        let per: serde_json::Map<String, serde_json::Value> = s
            .chexpert_per_observation
            .iter()
            .map(|(o, p)| (o.to_string(), json!(p)))
            .collect();
        let mut v = serde_json::to_value(&s)?;
        v["chexpert_per_observation"] = json!(per);
        radfm_core::atomic::write_atomic(out, serde_json::to_string_pretty(&v)?.as_bytes())
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// Peak resident memory of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn bench(
    input: &Path,
    gold: Option<&Path>,
    errors: Option<&Path>,
    repeat: usize,
    hedges: HedgesArg,
) -> anyhow::Result<()> {
    let hedges = parse_hedges(hedges);
    let opts = LabelOptions {
        hedges,
        ..LabelOptions::default()
    };
    let mut reports = Vec::new();
    read_reports(input, |r| match r {
        Ok(r) => reports.push(r),
        Err(e) => eprintln!("warning: skipped {e}"),
    })?;
    let texts: Vec<String> = reports
        .iter()
        .map(|r| r.select(&radfm_report::iu::SCORED_SECTIONS))
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let labeler = Labeler::builtin();
    let (nm, nt) = labeler.rule_counts();
    // one thread: this loop is the whole measurement
    let t = Instant::now();
    let mut mentions = 0usize;
    for _ in 0..repeat.max(1) {
        for text in &texts {
            mentions += labeler.label_with(text, opts).evidence.len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let n = texts.len() * repeat.max(1);
    println!("labeler: {nm} mention rules, {nt} triggers");
    println!(
        "label: {n} reports ({:.1} KiB each on average) in {secs:.3} s on one thread: {:.0} reports/s, {:.1} MB/s; {} mentions",
        bytes as f64 / texts.len().max(1) as f64 / 1024.0,
        n as f64 / secs,
        (bytes * repeat.max(1)) as f64 / 1e6 / secs,
        mentions / repeat.max(1)
    );
    if let Some(m) = peak_rss_mib() {
        println!(
            "peak resident memory: {m:.1} MiB (all {} reports held in memory)",
            texts.len()
        );
    }
    if let Some(gold) = gold {
        let map = radfm_report::iu::GoldMap::from_json(
            &std::fs::read_to_string(gold)
                .with_context(|| format!("cannot read {}", gold.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", gold.display()))?;
        let s = radfm_report::iu::score(labeler, opts, &reports, &map);
        println!(
            "\nscored {} reports against MeSH gold ({} not scored), --hedges {}",
            s.scored,
            s.skipped,
            hedges.as_str()
        );
        println!("positive or uncertain counted as positive (primary); last column: F1 counting positive only");
        println!(
            "{:<28} {:>9} {:>9} {:>7} {:>8} {:>7}",
            "observation", "precision", "recall", "F1", "support", "F1(pos)"
        );
        for ((o, p), (_, q)) in s.per_observation.iter().zip(&s.per_observation_strict) {
            println!(
                "{o:<28} {:>9.3} {:>9.3} {:>7.3} {:>8} {:>7.3}",
                p.precision, p.recall, p.f1, p.support, q.f1
            );
        }
        println!(
            "macro-F1 over {} observations with support >= 20: {:.4} (positive only: {:.4})",
            s.macro_observations.len(),
            s.macro_f1,
            s.macro_f1_strict
        );
        let other = match hedges {
            Hedges::Probable => Hedges::All,
            Hedges::All => Hedges::Probable,
        };
        let o = radfm_report::iu::score(
            labeler,
            LabelOptions {
                hedges: other,
                ..opts
            },
            &reports,
            &map,
        );
        println!(
            "with --hedges {}: macro-F1 {:.4} (positive only: {:.4})",
            other.as_str(),
            o.macro_f1,
            o.macro_f1_strict
        );
        if let Some(path) = errors {
            let mut f = AtomicFile::create(path)?;
            for d in &s.disagreements {
                serde_json::to_writer(&mut f, d)?;
                f.write_all(b"\n")?;
            }
            f.commit()?;
        }
    }
    Ok(())
}
