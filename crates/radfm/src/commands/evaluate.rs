//! `radfm evaluate`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use radfm_eval::evaluate::{
    evaluate, join, EvalError, Line, OperatingPoint, Options, Source, Unit,
};

use radfm_eval::report::Cell;

use crate::cli::{EvalUnit, EvaluateArgs};

/// The non-blank lines of a JSONL file, with their 1-based line numbers.
pub(crate) fn jsonl(path: &Path) -> anyhow::Result<Vec<Line>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push((
            n + 1,
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?,
        ));
    }
    Ok(out)
}

/// A line's id as text (a number id as its digits), as `join` reads it.
fn id_text(v: &serde_json::Value) -> Option<String> {
    match v.get("id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `--where FIELD=VALUE` or `FIELD!=VALUE` on truth lines (a missing field is no value:
/// `=` drops the line, `!=` keeps it).
struct Filter {
    field: String,
    value: String,
    equal: bool,
}

impl Filter {
    fn parse(s: &str) -> anyhow::Result<Filter> {
        let (field, value, equal) = if let Some((f, v)) = s.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = s.split_once('=') {
            (f, v, true)
        } else {
            anyhow::bail!("--where {s:?}: expected FIELD=VALUE or FIELD!=VALUE");
        };
        let field = field.trim();
        if field.is_empty() {
            anyhow::bail!("--where {s:?}: no field name");
        }
        Ok(Filter {
            field: field.to_string(),
            value: value.trim().to_string(),
            equal,
        })
    }

    fn keeps(&self, v: &serde_json::Value) -> bool {
        let got = match v.get(&self.field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        (got.as_deref() == Some(self.value.as_str())) == self.equal
    }
}

pub fn run(a: EvaluateArgs) -> anyhow::Result<()> {
    let op: OperatingPoint = a
        .operating_point
        .parse()
        .map_err(|e| anyhow::anyhow!("--operating-point {e}"))?;
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let opts = Options {
        bootstrap: a.bootstrap,
        seed: a.seed,
        groups: groups.clone(),
        operating_point: op,
        level: 0.95,
        uncertain: a.uncertain,
        unit: match a.unit {
            EvalUnit::Patient => Unit::Patient,
            EvalUnit::Image => Unit::Image,
        },
    };
    let mut truth = jsonl(&a.truth)?;
    let mut pred = jsonl(&a.pred)?;
    if !a.filters.is_empty() {
        let filters = a
            .filters
            .iter()
            .map(|f| Filter::parse(f))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let n = truth.len();
        let mut dropped = std::collections::HashSet::new();
        truth.retain(|(_, v)| {
            let keep = filters.iter().all(|f| f.keeps(v));
            if !keep {
                if let Some(id) = id_text(v) {
                    dropped.insert(id);
                }
            }
            keep
        });
        if truth.is_empty() {
            anyhow::bail!(
                "{}: no truth line matches --where {} (of {n})",
                a.truth.display(),
                a.filters.join(" --where ")
            );
        }
        let before = pred.len();
        pred.retain(|(_, v)| id_text(v).is_none_or(|id| !dropped.contains(&id)));
        if !a.quiet {
            eprintln!(
                "--where {}: {} of {n} truth lines and {} of {before} predictions kept",
                a.filters.join(" --where "),
                truth.len(),
                pred.len()
            );
        }
    }
    // name the file an input error is about
    let in_file = |e: EvalError, pred: &Path, run: &str| -> anyhow::Error {
        let file = match e.source_file() {
            Some(Source::Truth) => a.truth.display().to_string(),
            _ => pred.display().to_string(),
        };
        let hint = match &e {
            EvalError::ReadLine { reason, .. } if reason.contains("patient_id") => {
                " (or pass --unit image)"
            }
            _ => "",
        };
        anyhow::anyhow!("{file}{run}: {e}{hint}")
    };
    // prediction lines may carry a "run" (e.g. probe-1%, probe-10%, site-C): group them, in file order
    let mut runs: Vec<(String, Vec<Line>)> = Vec::new();
    for line in pred {
        let r = line
            .1
            .get("run")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        match runs.iter_mut().find(|x| x.0 == r) {
            Some(x) => x.1.push(line),
            None => runs.push((r, vec![line])),
        }
    }
    let mut joined = Vec::new();
    for (r, lines) in &runs {
        let run = if r.is_empty() {
            String::new()
        } else {
            format!(" (run {r})")
        };
        let imgs = join(lines, &truth, &groups, &opts).map_err(|e| in_file(e, &a.pred, &run))?;
        joined.push((r.clone(), imgs));
    }
    // the main report describes the last run (the whole file when there are no runs)
    let images = joined.last().map(|x| x.1.clone()).unwrap_or_default();
    let other = match &a.compare {
        Some(p) => Some(join(&jsonl(p)?, &truth, &groups, &opts).map_err(|e| in_file(e, p, ""))?),
        None => None,
    };
    let t = Instant::now();
    let mut report = evaluate(&images, other.as_deref(), &opts)?;
    if joined.len() > 1 {
        report.runs = Some(radfm_eval::evaluate::per_run(&joined, &opts));
        report.main_run = joined.last().map(|x| x.0.clone());
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let path = a.out.join("metrics.json");
    radfm_core::atomic::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let curves = radfm_eval::evaluate::curves(&images, &opts);
    let html = a.out.join("report.html");
    let page = radfm_eval::html::page(&serde_json::to_value(&report)?, &curves);
    radfm_core::atomic::write_atomic(&html, page.as_bytes())
        .with_context(|| format!("cannot write {}", html.display()))?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        writeln!(out, "-> {} and {}", path.display(), html.display())?;
        return Ok(());
    }
    writeln!(
        out,
        "{} images, {} patients; {} bootstrap resamples of patients in {:.1} s",
        report.n_images,
        report.n_patients,
        a.bootstrap,
        t.elapsed().as_secs_f64()
    )?;
    writeln!(
        out,
        "{:<28} {:>22} {:>22}",
        "observation", "AUROC [95% CI]", "AUPRC [95% CI]"
    )?;
    let fmt = |c: Option<&Cell>| match c.map(|c| (c.value, c.ci, c.reason)) {
        Some((Some(v), Some([lo, hi]), _)) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
        Some((Some(v), None, _)) => format!("{v:.3} [-]"),
        Some((None, _, why)) => format!("- ({})", why.unwrap_or("undefined")),
        None => "-".into(),
    };
    for (o, m) in &report.observations {
        writeln!(
            out,
            "{o:<28} {:>22} {:>22}",
            fmt(m.metric("auroc")),
            fmt(m.metric("auprc"))
        )?;
    }
    for (name, per) in &report.subgroup_gaps {
        for (o, gap) in per.iter().filter(|(_, g)| g.flag) {
            writeln!(
                out,
                "gap flagged: {o} AUROC, {name} {:?} vs {:?}: {:.3} (CI excludes 0)",
                gap.best, gap.worst, gap.gap
            )?;
        }
    }
    writeln!(out, "-> {} and {}", path.display(), html.display())?;
    Ok(())
}
