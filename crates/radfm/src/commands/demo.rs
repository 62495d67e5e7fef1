//! `radfm demo`: the whole lifecycle on a synthetic hospital, testing the
//! review's claims for foundation models.
//!
//! Every stage is a radfm command line, parsed by the same parser and run by
//! the same code as when a user types it; `DIR/commands.sh` lists them. The
//! stages' outputs stay in DIR. `DIR/demo-state.json` records the plan and
//! the finished stages: `--resume` skips those and continues the one that was
//! interrupted (pretraining and fine-tuning resume bit for bit from their
//! checkpoints, ingest from its catalog; the others are rerun). The claims are
//! computed from the predictions by `radfm_eval::paired`, and each verdict
//! follows from its interval by the rule its statement gives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use radfm_core::Observation;
use radfm_eval::evaluate::{join, Image, Line, OperatingPoint, Options, Unit};
use radfm_eval::paired::{self, Estimate, Settings};
use serde_json::{json, Value};

use crate::cli::{Cli, DemoArgs};

/// What a demo does: sizes and lengths. Part of the state, so that `--resume`
/// continues the same demo.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Plan {
    mode: String,
    patients: usize,
    seed: u64,
    synth_size: usize,
    ingest_size: usize,
    image_size: usize,
    patch: usize,
    depth: usize,
    batch: usize,
    mae_steps: u64,
    clip_steps: u64,
    lora_steps: u64,
    baseline_steps: u64,
    split: [f64; 3],
    checkpoint_every: u64,
    bootstrap: usize,
    /// positives (and negatives) an observation needs in each evaluated cohort
    min_positives: usize,
    /// per subgroup, for the fairness gaps
    min_group_positives: usize,
    cohort: Option<String>,
    text_model: Option<String>,
}

impl Plan {
    fn new(a: &DemoArgs, cohort: Option<PathBuf>, text_model: Option<PathBuf>) -> Plan {
        let (mode, patients, steps) = if a.smoke {
            ("smoke", 160, [30, 6, 4, 6])
        } else if a.quick {
            ("quick", 1000, [300, 300, 150, 400])
        } else {
            ("default", 3000, [1500, 2500, 500, 1500])
        };
        let smoke = a.smoke;
        Plan {
            mode: mode.into(),
            patients: a.patients.unwrap_or(patients),
            seed: a.seed,
            synth_size: if smoke { 64 } else { 256 },
            ingest_size: if smoke { 32 } else { 128 },
            image_size: if smoke { 32 } else { 64 },
            patch: 16,
            depth: if smoke { 1 } else { 6 },
            batch: if smoke { 16 } else { 64 },
            mae_steps: steps[0],
            clip_steps: steps[1],
            lora_steps: steps[2],
            baseline_steps: steps[3],
            split: [0.6, 0.1, 0.3],
            checkpoint_every: if smoke { 5 } else { 100 },
            bootstrap: if smoke { 50 } else { 1000 },
            min_positives: if smoke { 5 } else { 20 },
            min_group_positives: if smoke { 1 } else { 5 },
            cohort: cohort.map(|p| p.display().to_string()),
            text_model: text_model.map(|p| p.display().to_string()),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct State {
    plan: Option<Plan>,
    /// the held-out site, once the dataset exists
    site: Option<String>,
    /// finished stages and their seconds, in order
    done: Vec<(String, f64)>,
}

const STATE: &str = "demo-state.json";

/// The probe runs of each encoder, fewest labels first (the label-efficiency curve's x axis).
pub(crate) const PROBE_RUNS: [&str; 5] = [
    "probe-5shot",
    "probe-20shot",
    "probe-1%",
    "probe-10%",
    "probe-100%",
];

/// A stage: a name and the radfm command lines it runs.
struct Stage {
    name: &'static str,
    what: &'static str,
    commands: Vec<Vec<String>>,
}

fn s<T: ToString>(x: T) -> String {
    x.to_string()
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// The demo's paths, relative to DIR (commands run with DIR as given).
struct Paths {
    dir: PathBuf,
}

impl Paths {
    fn p(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

/// The encoder that stands for "the foundation model": the CLIP run when
/// there is a text tower (it is also the zero-shot model), else MAE.
fn fm_name(plan: &Plan) -> &'static str {
    if plan.text_model.is_some() {
        "clip"
    } else {
        "mae"
    }
}

fn stages(
    plan: &Plan,
    d: &Paths,
    site: Option<&str>,
    jobs: Option<usize>,
    quiet: bool,
) -> Vec<Stage> {
    let seed = s(plan.seed);
    let q = |mut v: Vec<String>| {
        if quiet {
            v.push("--quiet".into());
        }
        v
    };
    let j = |mut v: Vec<String>| {
        if let Some(n) = jobs {
            v.extend([s("--jobs"), s(n)]);
        }
        v
    };
    let mut out = Vec::new();
    let mut synth = args(&[
        "synth",
        "--out",
        &d.p("archive"),
        "--patients",
        &s(plan.patients),
        "--seed",
        &seed,
    ]);
    synth.extend(args(&["--size", &s(plan.synth_size)]));
    if let Some(c) = &plan.cohort {
        synth.extend(args(&["--cohort", c]));
    }
    out.push(Stage {
        name: "synth",
        what: "a synthetic hospital: three sites, drawn findings, reports, truth, PHI",
        commands: vec![q(j(synth))],
    });
    // one ingest worker: ingest numbers images in the order their files finish, so
    // parallel workers would order the dataset (and every training batch) differently
    // from run to run
    out.push(Stage {
        name: "ingest",
        what: "de-identified dataset with weak labels from the reports (one worker, for a reproducible image order)",
        commands: vec![q(args(&[
            "ingest",
            &d.p("archive/dicom"),
            "--reports",
            &d.p("archive/reports.jsonl"),
            "--truth",
            &d.p("archive/truth.jsonl"),
            "--out",
            &d.p("dataset"),
            "--key",
            &d.p("dataset.deid-key"),
            "--size",
            &s(plan.ingest_size),
            "--jobs",
            "1",
        ]))],
    });
    let site = site.unwrap_or("SITE");
    out.push(Stage {
        name: "split",
        what: "patients to train/val/test, one site held out entirely",
        commands: vec![args(&[
            "split",
            &d.p("dataset"),
            "--train",
            &s(plan.split[0]),
            "--val",
            &s(plan.split[1]),
            "--test",
            &s(plan.split[2]),
            "--seed",
            &seed,
            "--hold-out-site",
            site,
        ])],
    });
    let pretrain = |obj: &str, steps: u64, lr: &str| {
        let mut v = args(&[
            "pretrain",
            "--data",
            &d.p("dataset"),
            "--objective",
            obj,
            "--out",
            &d.p(&format!("runs/{obj}")),
            "--image-size",
            &s(plan.image_size),
            "--patch",
            &s(plan.patch),
            "--depth",
            &s(plan.depth),
            "--batch",
            &s(plan.batch),
            "--steps",
            &s(steps),
            "--lr",
            lr,
            "--seed",
            &seed,
            "--checkpoint-every",
            &s(plan.checkpoint_every),
        ]);
        if obj == "clip" {
            v.extend(args(&[
                "--text-model",
                plan.text_model.as_deref().unwrap_or(""),
            ]));
        }
        q(j(v))
    };
    out.push(Stage {
        name: "pretrain-mae",
        what: "masked-autoencoder pretraining on the training sites' images",
        commands: vec![pretrain("mae", plan.mae_steps, "1e-3")],
    });
    let encoders: Vec<&str> = if plan.text_model.is_some() {
        out.push(Stage {
            name: "pretrain-clip",
            what: "image-report CLIP pretraining against a frozen text tower",
            commands: vec![pretrain("clip", plan.clip_steps, "5e-4")],
        });
        vec!["mae", "clip"]
    } else {
        vec!["mae"]
    };
    out.push(Stage {
        name: "embed",
        what: "frozen embeddings of every image",
        commands: encoders
            .iter()
            .map(|e| {
                q(j(args(&[
                    "embed",
                    "--model",
                    &d.p(&format!("runs/{e}")),
                    "--data",
                    &d.p("dataset"),
                    "--out",
                    &d.p(&format!("emb/{e}")),
                ])))
            })
            .collect(),
    });
    let mut probes = Vec::new();
    for e in &encoders {
        probes.push(args(&[
            "probe",
            "--embeddings",
            &d.p(&format!("emb/{e}")),
            "--out",
            &d.p(&format!("probes/{e}")),
            "--fractions",
            "0.01,0.1,1",
            "--shots",
            "5,20",
            "--seed",
            &seed,
        ]));
        probes.push(args(&[
            "probe",
            "--embeddings",
            &d.p(&format!("emb/{e}")),
            "--out",
            &d.p(&format!("probes/{e}-truth")),
            "--labels",
            &d.p("dataset/truth.jsonl"),
            "--fractions",
            "1",
            "--seed",
            &seed,
        ]));
    }
    // the site probe is the shortcut check's; it runs in the claims stage
    out.push(Stage {
        name: "probe",
        what: "linear probes on 1%, 10%, 100% of the weak labels, 5 and 20 shots, and on the truth",
        commands: probes,
    });
    let fm = fm_name(plan);
    out.push(Stage {
        name: "lora",
        what: "LoRA fine-tuning of the foundation model's encoder on the weak labels",
        commands: vec![q(j(args(&[
            "finetune",
            "--model",
            &d.p(&format!("runs/{fm}")),
            "--data",
            &d.p("dataset"),
            "--out",
            &d.p("runs/lora"),
            "--method",
            "lora",
            "--steps",
            &s(plan.lora_steps),
            "--batch",
            &s(plan.batch),
            "--seed",
            &seed,
        ])))],
    });
    if plan.text_model.is_some() {
        out.push(Stage {
            name: "zeroshot",
            what: "zero-shot classification from CheXzero-style prompts",
            commands: vec![q(j(args(&[
                "zeroshot",
                "--model",
                &d.p("runs/clip"),
                "--data",
                &d.p("dataset"),
                "--split",
                "test",
                "--prompts",
                "chexzero",
                "--out",
                &d.p("preds/zeroshot.jsonl"),
            ])))],
        });
    }
    out.push(Stage {
        name: "baseline",
        what: "supervised baseline: the same ViT from random weights on 100% of the weak labels",
        commands: vec![q(j(args(&[
            "finetune",
            "--model",
            "vit-tiny",
            "--image-size",
            &s(plan.image_size),
            "--patch",
            &s(plan.patch),
            "--depth",
            &s(plan.depth),
            "--data",
            &d.p("dataset"),
            "--out",
            &d.p("runs/baseline"),
            "--method",
            "full",
            "--lr",
            "5e-4",
            "--steps",
            &s(plan.baseline_steps),
            "--batch",
            &s(plan.batch),
            "--seed",
            &seed,
        ])))],
    });
    let mut evals = Vec::new();
    for m in models(plan) {
        for (cohort, filter) in [
            ("internal", format!("site!={site}")),
            ("external", format!("site={site}")),
        ] {
            evals.push(args(&[
                "evaluate",
                "--pred",
                &d.p(&m.pred),
                "--truth",
                &d.p("dataset/truth.jsonl"),
                "--where",
                &filter,
                "--groups",
                "sex,age_band",
                "--bootstrap",
                &s(plan.bootstrap),
                "--seed",
                &seed,
                "--out",
                &d.p(&format!("eval/{}/{cohort}", m.name)),
                "--quiet",
            ]));
        }
    }
    out.push(Stage {
        name: "evaluate",
        what: "every model on the in-distribution test split and on the held-out site",
        commands: evals,
    });
    out
}

/// A model the demo evaluates: its prediction file (relative to DIR) and the run in it.
struct Model {
    name: String,
    pred: String,
    /// the "run" of the prediction lines that are this model's main result
    run: Option<&'static str>,
    foundation: bool,
    label: String,
}

fn models(plan: &Plan) -> Vec<Model> {
    let mut v = Vec::new();
    let mut encoders = vec!["mae"];
    if plan.text_model.is_some() {
        encoders.push("clip");
    }
    for e in &encoders {
        v.push(Model {
            name: format!("{e}-probe"),
            pred: format!("probes/{e}/pred.jsonl"),
            run: Some("probe-100%"),
            foundation: true,
            label: format!(
                "{} encoder, linear probe (weak labels; 1%, 10%, 100%, 5 and 20 shots)",
                e.to_uppercase()
            ),
        });
        v.push(Model {
            name: format!("{e}-probe-truth"),
            pred: format!("probes/{e}-truth/pred.jsonl"),
            run: Some("probe-100%"),
            foundation: true,
            label: format!(
                "{} encoder, linear probe on the truth labels",
                e.to_uppercase()
            ),
        });
    }
    v.push(Model {
        name: "lora".into(),
        pred: "runs/lora/pred.jsonl".into(),
        run: None,
        foundation: true,
        label: format!(
            "{} encoder, LoRA fine-tuned (weak labels)",
            fm_name(plan).to_uppercase()
        ),
    });
    if plan.text_model.is_some() {
        v.push(Model {
            name: "zeroshot".into(),
            pred: "preds/zeroshot.jsonl".into(),
            run: None,
            foundation: true,
            label: "CLIP zero-shot (chexzero prompts, no labels)".into(),
        });
    }
    v.push(Model {
        name: "baseline".into(),
        pred: "runs/baseline/pred.jsonl".into(),
        run: None,
        foundation: false,
        label: "supervised baseline: ViT from random weights, 100% of the weak labels".into(),
    });
    v
}

fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,%:+".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

fn write_commands(dir: &Path, stages: &[Stage], plan: &Plan) -> anyhow::Result<()> {
    let mut t = String::from("#!/bin/sh\n# The radfm commands `radfm demo` ran, stage by stage: rerun any of them, or swap\n# your own archive in for the synthetic one (ingest your DICOM folder and reports instead).\n");
    t.push_str(&format!(
        "# mode {}, {} patients, seed {}.\n",
        plan.mode, plan.patients, plan.seed
    ));
    t.push_str("# The demo's key: dataset.deid-key is derived from the seed so that reruns match; for a\n# real archive let `radfm ingest` create a random one. The claims are computed by `radfm demo`\n# itself from the predictions below (see claims.json).\nset -e\n");
    for st in stages {
        t.push_str(&format!("\n# {}: {}\n", st.name, st.what));
        for c in st.commands.iter() {
            let line: Vec<String> = c.iter().map(|a| shell_quote(a)).collect();
            t.push_str(&format!("radfm {}\n", line.join(" ")));
        }
    }
    radfm_core::write_atomic(&dir.join("commands.sh"), t.as_bytes())
        .with_context(|| format!("writing {}", dir.join("commands.sh").display()))?;
    Ok(())
}

fn save_state(dir: &Path, st: &State) -> anyhow::Result<()> {
    radfm_core::write_atomic(
        &dir.join(STATE),
        serde_json::to_string_pretty(st)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", dir.join(STATE).display()))
}

/// The demo's pseudonymisation key, derived from the seed: the same seed gives the same
/// pseudonyms, splits and claims. Only for the synthetic archive.
fn write_demo_key(path: &Path, seed: u64) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"radfm demo key (synthetic archives only)");
    h.update(seed.to_le_bytes());
    let key: [u8; 32] = h.finalize().into();
    radfm_data::key::create(path, &key)?;
    Ok(())
}

/// The site held out: the last of the dataset's sites by label (pseudonymous, fixed by the key).
fn pick_site(dataset: &Path) -> anyhow::Result<String> {
    let c = radfm_data::catalog::Catalog::open(dataset)?;
    let sites = c.sites()?;
    if sites.len() < 2 {
        bail!(
            "{}: {} site(s); the demo holds one out and needs two or more",
            dataset.display(),
            sites.len()
        );
    }
    Ok(sites.last().cloned().expect("two sites"))
}

fn run_command(argv: &[String]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("radfm".to_string()).chain(argv.iter().cloned()))
        .map_err(|e| anyhow::anyhow!("radfm {}: {e}", argv.join(" ")))?;
    super::run(cli).with_context(|| format!("radfm {}", argv.join(" ")))
}

/// Prepare a stage that did not finish for its rerun: stages that resume (ingest,
/// pretraining, fine-tuning) get --resume; the others start over.
fn prepare_rerun(d: &Paths, stage: &str, cmd: &mut Vec<String>) -> anyhow::Result<()> {
    let out_of = |cmd: &[String]| -> Option<PathBuf> {
        cmd.iter()
            .position(|a| a == "--out")
            .and_then(|i| cmd.get(i + 1))
            .map(PathBuf::from)
    };
    match stage {
        "synth" => {
            let a = d.dir.join("archive");
            if a.exists() {
                std::fs::remove_dir_all(&a).with_context(|| format!("removing {}", a.display()))?;
            }
        }
        "pretrain-mae" | "pretrain-clip" | "lora" | "baseline" => {
            if let Some(out) = out_of(cmd) {
                if out.join("config.json").exists() && !cmd.iter().any(|a| a == "--resume") {
                    cmd.push("--resume".into());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let dir = a.out.clone();
    let text_model = a
        .text_model
        .clone()
        .or_else(|| std::env::var_os("RADFM_MINILM_DIR").map(PathBuf::from));
    if let Some(t) = &text_model {
        if !t.join("config.json").is_file() {
            bail!("--text-model {}: no config.json (expected a BertModel directory such as all-MiniLM-L6-v2)", t.display());
        }
    }
    let cohort = a
        .cohort
        .clone()
        .or_else(|| std::env::var_os("RADFM_COHORT").map(PathBuf::from));
    if let Some(c) = &cohort {
        if !c.is_file() {
            bail!("--cohort {}: no such file", c.display());
        }
    }
    let plan = Plan::new(&a, cohort, text_model);
    let state_path = dir.join(STATE);
    let mut state = if state_path.exists() {
        if !a.resume {
            bail!(
                "--out {} already holds a demo: pass --resume to continue it, or choose another --out",
                dir.display()
            );
        }
        let st: State = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
            .with_context(|| format!("{}: unreadable demo state", state_path.display()))?;
        if st.plan.as_ref() != Some(&plan) {
            bail!(
                "--resume: {} was started with another plan ({}); pass the same flags, or choose another --out",
                dir.display(),
                serde_json::to_string(&st.plan)?
            );
        }
        st
    } else {
        if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
            bail!(
                "--out {} exists and is not empty: choose a new directory",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        State {
            plan: Some(plan.clone()),
            ..State::default()
        }
    };
    if let Some(j) = a.jobs {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build_global();
    }
    let d = Paths { dir: dir.clone() };
    if plan.text_model.is_none() {
        eprintln!("no text model (--text-model or RADFM_MINILM_DIR): CLIP pretraining and zero-shot are skipped, their claims will be inconclusive");
    }
    let t_all = Instant::now();
    let names: Vec<&str> = stages(&plan, &d, state.site.as_deref(), a.jobs, a.quiet)
        .iter()
        .map(|s| s.name)
        .collect();
    let total = names.len() + 1;
    for (k, name) in names.iter().enumerate() {
        // commands depend on the held-out site, known after ingest
        let all = stages(&plan, &d, state.site.as_deref(), a.jobs, a.quiet);
        write_commands(&dir, &all, &plan)?;
        if state.done.iter().any(|(n, _)| n == name) {
            eprintln!("[{}/{total}] {name}: done earlier", k + 1);
            continue;
        }
        let stage = all
            .into_iter()
            .find(|s| s.name == *name)
            .expect("the stage exists");
        eprintln!("[{}/{total}] {name}: {}", k + 1, stage.what);
        let t = Instant::now();
        if *name == "ingest" {
            write_demo_key(&dir.join("dataset.deid-key"), plan.seed)?;
        }
        for mut cmd in stage.commands {
            prepare_rerun(&d, name, &mut cmd)?;
            if !a.quiet {
                eprintln!("  radfm {}", cmd.join(" "));
            }
            run_command(&cmd)?;
        }
        if *name == "ingest" {
            state.site = Some(pick_site(&dir.join("dataset"))?);
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!("  {name} done in {secs:.1} s");
        state.done.push((name.to_string(), secs));
        save_state(&dir, &state)?;
    }
    let all = stages(&plan, &d, state.site.as_deref(), a.jobs, a.quiet);
    write_commands(&dir, &all, &plan)?;
    eprintln!("[{total}/{total}] claims: paired patient-bootstrap intervals, report");
    let t = Instant::now();
    let site = state.site.clone().context("the held-out site is unknown")?;
    let mut claims = claims(&plan, &dir, &site)?;
    let claim_secs = t.elapsed().as_secs_f64();
    let mut timings = serde_json::Map::new();
    for (n, secs) in &state.done {
        timings.insert(n.clone(), json!(round(*secs, 1)));
    }
    timings.insert("claims".into(), json!(round(claim_secs, 1)));
    let stage_total: f64 = state.done.iter().map(|x| x.1).sum::<f64>() + claim_secs;
    timings.insert("total".into(), json!(round(stage_total, 1)));
    claims["timings"] = Value::Object(timings);
    claims["versions"] = json!({
        "radfm": env!("CARGO_PKG_VERSION"),
        "burn": "0.22.1",
        "prompts": "chexzero (prompts/chexzero.json)",
        "state": "timings vary from run to run; every other field is a function of the plan and the seed on one machine",
    });
    let path = dir.join("claims.json");
    radfm_core::write_atomic(&path, serde_json::to_string_pretty(&claims)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let html = crate::commands::demo_report::page(&claims, &plan_summary(&plan, &site));
    radfm_core::write_atomic(&dir.join("report.html"), html.as_bytes())?;
    print_summary(&claims);
    eprintln!(
        "demo finished in {:.1} s (this invocation {:.1} s) -> {} and {}",
        stage_total,
        t_all.elapsed().as_secs_f64(),
        path.display(),
        dir.join("report.html").display()
    );
    Ok(())
}

fn plan_summary(plan: &Plan, site: &str) -> Value {
    json!({
        "mode": plan.mode, "patients": plan.patients, "seed": plan.seed,
        "held_out_site": site,
        "pretraining": format!("{}x{} px, patch {}, depth {}, batch {}; MAE {} steps, CLIP {}", plan.image_size, plan.image_size, plan.patch, plan.depth, plan.batch, plan.mae_steps, if plan.text_model.is_some() { format!("{} steps", plan.clip_steps) } else { "skipped (no text model)".into() }),
        "fine-tuning": format!("LoRA {} steps, baseline {} steps", plan.lora_steps, plan.baseline_steps),
        "cohort": if plan.cohort.is_some() { "NIH ChestX-ray14 label combinations" } else { "built-in prevalences" },
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn print_summary(claims: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<18} {:<13} {:>9} {:>22}",
        "claim", "verdict", "estimate", "95% CI"
    );
    for c in claims["claims"].as_array().into_iter().flatten() {
        let ci = match c["ci"].as_array() {
            Some(v) if v.len() == 2 => format!(
                "[{:.3}, {:.3}]",
                v[0].as_f64().unwrap_or(f64::NAN),
                v[1].as_f64().unwrap_or(f64::NAN)
            ),
            _ => "-".into(),
        };
        let est = c["estimate"]
            .as_f64()
            .map_or("-".into(), |e| format!("{e:.3}"));
        let _ = writeln!(
            out,
            "{:<18} {:<13} {:>9} {:>22}",
            c["id"].as_str().unwrap_or(""),
            c["verdict"].as_str().unwrap_or(""),
            est,
            ci
        );
    }
}

// ---------------------------------------------------------------- claims

/// Truth lines of one cohort (the held-out site, or every other site).
fn cohort_truth(truth: &[Line], site: &str, external: bool) -> Vec<Line> {
    truth
        .iter()
        .filter(|(_, v)| (v["site"].as_str() == Some(site)) == external)
        .cloned()
        .collect()
}

struct Scored {
    internal: Vec<Image>,
    external: Vec<Image>,
}

fn options(plan: &Plan) -> Options {
    Options {
        bootstrap: plan.bootstrap,
        seed: plan.seed,
        groups: vec!["sex".into(), "age_band".into()],
        operating_point: OperatingPoint::Youden,
        level: 0.95,
        uncertain: radfm_core::UncertainPolicy::Exclude,
        unit: Unit::Patient,
    }
}

/// One run's predictions joined to each cohort's truth.
fn scored(
    plan: &Plan,
    pred: &[Line],
    run: Option<&str>,
    internal: &[Line],
    external: &[Line],
) -> anyhow::Result<Scored> {
    let lines: Vec<Line> = pred
        .iter()
        .filter(|(_, v)| run.is_none() || v["run"].as_str() == run)
        .cloned()
        .collect();
    let ids = |t: &[Line]| -> BTreeSet<String> {
        t.iter()
            .filter_map(|(_, v)| v["id"].as_str().map(str::to_string))
            .collect()
    };
    let (ii, ei) = (ids(internal), ids(external));
    let pick = |set: &BTreeSet<String>| -> Vec<Line> {
        lines
            .iter()
            .filter(|(_, v)| v["id"].as_str().is_some_and(|i| set.contains(i)))
            .cloned()
            .collect()
    };
    let opts = options(plan);
    let j = |p: Vec<Line>, t: &[Line]| -> anyhow::Result<Vec<Image>> {
        join(&p, t, &opts.groups, &opts).map_err(|e| anyhow::anyhow!("{e}"))
    };
    Ok(Scored {
        internal: j(pick(&ii), internal)?,
        external: j(pick(&ei), external)?,
    })
}

fn verdict_of(held: bool, not_held: bool) -> &'static str {
    if held {
        "held"
    } else if not_held {
        "not_held"
    } else {
        "inconclusive"
    }
}

fn est_json(e: &Estimate) -> Value {
    json!({"estimate": round(e.estimate, 6), "ci": e.ci.map(|[l, h]| [round(l, 6), round(h, 6)]), "level": e.level, "resamples": e.resamples, "used": e.used})
}

fn claim(
    id: &str,
    statement: &str,
    verdict: &str,
    e: Option<&Estimate>,
    evidence: Value,
    reading: String,
) -> Value {
    json!({
        "id": id,
        "statement": statement,
        "verdict": verdict,
        "estimate": e.map(|e| round(e.estimate, 6)),
        "ci": e.and_then(|e| e.ci).map(|[l, h]| [round(l, 6), round(h, 6)]),
        "evidence": evidence,
        "reading": reading,
    })
}

fn inconclusive(id: &str, statement: &str, why: String) -> Value {
    claim(
        id,
        statement,
        "inconclusive",
        None,
        json!({"reason": why}),
        why,
    )
}

/// Observations with enough positives and negatives in both cohorts.
fn observations(plan: &Plan, s: &Scored) -> (Vec<String>, BTreeMap<String, String>, Value) {
    let count = |imgs: &[Image], o: &str| {
        let p = imgs
            .iter()
            .filter(|i| i.labels.get(o) == Some(&true))
            .count();
        let n = imgs
            .iter()
            .filter(|i| i.labels.get(o) == Some(&false))
            .count();
        (p, n)
    };
    let mut kept = Vec::new();
    let mut left = BTreeMap::new();
    let mut counts = serde_json::Map::new();
    for o in Observation::ALL {
        let o = o.as_str();
        let (pi, ni) = count(&s.internal, o);
        let (pe, ne) = count(&s.external, o);
        counts.insert(
            o.into(),
            json!({"internal": [pi, ni], "external": [pe, ne]}),
        );
        let m = plan.min_positives;
        if pi >= m && ni >= m && pe >= m && ne >= m {
            kept.push(o.to_string());
        } else {
            left.insert(
                o.to_string(),
                format!("{pi} positives in-distribution and {pe} at the held-out site (fewer than {m} in a cohort)"),
            );
        }
    }
    (
        kept,
        left,
        json!({"positives_negatives": counts, "min_positives": plan.min_positives}),
    )
}

fn claims(plan: &Plan, dir: &Path, site: &str) -> anyhow::Result<Value> {
    let truth = super::evaluate::jsonl(&dir.join("dataset/truth.jsonl"))?;
    let internal = cohort_truth(&truth, site, false);
    let external = cohort_truth(&truth, site, true);
    let set = Settings {
        resamples: plan.bootstrap,
        seed: plan.seed,
        level: 0.95,
    };
    let fm = fm_name(plan);
    let mut preds: HashMap<String, Vec<Line>> = HashMap::new();
    for m in models(plan) {
        preds.insert(m.name.clone(), super::evaluate::jsonl(&dir.join(&m.pred))?);
    }
    let get = |name: &str, run: Option<&str>| -> anyhow::Result<Scored> {
        scored(plan, &preds[name], run, &internal, &external)
            .with_context(|| format!("{name} {}", run.unwrap_or("")))
    };
    let fm_probe = format!("{fm}-probe");
    let fm100 = get(&fm_probe, Some("probe-100%"))?;
    let (obs, left_out, counts) = observations(plan, &fm100);
    let mut out = Vec::new();
    let mut models_json = Vec::new();
    // every model's macro AUROC in both cohorts, over the claims' observations
    let macro_of = |imgs: &[Image]| paired::macro_auroc_ci(imgs, &obs, set).ok();
    let point = |imgs: &[Image]| paired::macro_auroc_point(imgs, &obs);
    let mut fm_candidates: Vec<(String, f64)> = Vec::new();
    for m in models(plan) {
        let sc = get(&m.name, m.run)?;
        let (mi, me) = (macro_of(&sc.internal), macro_of(&sc.external));
        if m.foundation
            && m.name != "zeroshot"
            && !m.name.ends_with("-truth")
            && (m.name.starts_with(fm) || m.name == "lora")
        {
            if let Some(e) = &mi {
                fm_candidates.push((m.name.clone(), e.estimate));
            }
        }
        let mut runs = serde_json::Map::new();
        if m.name.ends_with("-probe") {
            for r in PROBE_RUNS {
                let sc = get(&m.name, Some(r))?;
                runs.insert(
                    r.into(),
                    json!({
                        "internal": macro_of(&sc.internal).map(|e| est_json(&e)),
                        "external": macro_of(&sc.external).map(|e| est_json(&e)),
                    }),
                );
            }
        }
        models_json.push(json!({
            "name": m.name, "label": m.label, "foundation": m.foundation, "pred": m.pred,
            "report_internal": format!("eval/{}/internal/report.html", m.name),
            "report_external": format!("eval/{}/external/report.html", m.name),
            "internal": mi.as_ref().map(est_json), "external": me.as_ref().map(est_json),
            "runs": runs,
        }));
    }
    let baseline = get("baseline", None)?;
    let no_obs = obs.is_empty();
    let why_no_obs = || {
        format!(
            "no observation has {} positives and negatives in both cohorts: {left_out:?}",
            plan.min_positives
        )
    };

    // label efficiency
    let st = "A foundation-model probe trained on 10% of the labels is no worse than the supervised baseline trained on 100% (macro AUROC, in-distribution test): held when the lower bound of the 95% CI of the difference (probe - baseline) is above -0.02, not held when its upper bound is below -0.02.";
    out.push(if no_obs {
        inconclusive("label_efficiency", st, why_no_obs())
    } else {
        let p10 = get(&fm_probe, Some("probe-10%"))?;
        match paired::paired_difference(&p10.internal, &baseline.internal, &obs, set) {
            Ok(e) => {
                let (held, not) = match e.ci {
                    Some([lo, hi]) => (lo > -0.02, hi < -0.02),
                    None => (false, false),
                };
                let probe100 = point(&fm100.internal);
                let base = point(&baseline.internal);
                let p10m = point(&p10.internal);
                let reading = if held {
                    format!("the {fm} probe on 10% of the labels ({}) matches or beats the baseline trained on all of them ({})", fmt3(p10m), fmt3(base))
                } else {
                    format!(
                        "the {fm} encoder's probe reaches {} on 100% of the labels against the baseline's {}, but {} on 10%: after {} pretraining steps ({} patients, a {}-block ViT at {} px) its features do not let a linear probe learn the findings from a tenth of the training patients {}; longer pretraining on more images is what the claim needs",
                        fmt3(probe100), fmt3(base), fmt3(p10m),
                        if fm == "clip" { plan.clip_steps } else { plan.mae_steps },
                        plan.patients, plan.depth, plan.image_size,
                        if not { "as well as the baseline learns them from all" } else { "clearly as well as the baseline learns them from all (the interval straddles the margin)" }
                    )
                };
                claim("label_efficiency", st, verdict_of(held, not), Some(&e),
                    json!({"probe": format!("{fm_probe} probe-10%"), "baseline": "baseline (100%)", "probe_10": p10m, "probe_100": probe100, "baseline_100": base, "observations": obs, "interval": est_json(&e)}),
                    reading)
            }
            Err(e) => inconclusive("label_efficiency", st, e),
        }
    });

    // zero-shot
    let st = "Zero-shot classification from text prompts works: held when the macro AUROC's 95% CI lower bound is above 0.5 and the point estimate is at least 0.85; not held when the point estimate is below 0.85.";
    out.push(if plan.text_model.is_none() {
        inconclusive("zero_shot", st, "no text model was given (--text-model or RADFM_MINILM_DIR), so no CLIP model was pretrained".into())
    } else if no_obs {
        inconclusive("zero_shot", st, why_no_obs())
    } else {
        let zs = get("zeroshot", None)?;
        match paired::macro_auroc_ci(&zs.internal, &obs, set) {
            Ok(e) => {
                let lo = e.ci.map_or(f64::NAN, |c| c[0]);
                let held = lo > 0.5 && e.estimate >= 0.85;
                let not = e.estimate < 0.85;
                let probe = point(&fm100.internal);
                let reading = if held {
                    "prompts alone separate the findings at the 0.85 bar".to_string()
                } else {
                    format!(
                        "zero-shot reaches {:.3}{}, while a linear probe on the same CLIP encoder reaches {}: the image features carry the findings, but {} CLIP steps against a frozen general-domain sentence encoder (MiniLM) do not align short prompts with them well enough; more pretraining and a radiology text tower are what the claim needs",
                        e.estimate,
                        if lo > 0.5 { " (above chance)" } else { "" },
                        fmt3(probe), plan.clip_steps
                    )
                };
                claim("zero_shot", st, verdict_of(held, not), Some(&e), json!({"model": "zeroshot", "prompts": "chexzero", "probe_same_encoder": probe, "observations": obs}), reading)
            }
            Err(e) => inconclusive("zero_shot", st, e),
        }
    });

    // site shift
    let st = "A foundation model is more robust to a new site: its macro-AUROC drop from the in-distribution test split to the held-out site, minus the supervised baseline's drop. Held when the 95% CI's upper bound is below 0 (it drops less), not held when the lower bound is above 0.";
    out.push(if no_obs {
        inconclusive("site_shift", st, why_no_obs())
    } else {
        match paired::drop_difference(&fm100.internal, &baseline.internal, &fm100.external, &baseline.external, &obs, set) {
            Ok(e) => {
                let (held, not) = match e.ci {
                    Some([lo, hi]) => (hi < 0.0, lo > 0.0),
                    None => (false, false),
                };
                let m = |x: &[Image]| point(x);
                let (fi, fe, bi, be) = (m(&fm100.internal), m(&fm100.external), m(&baseline.internal), m(&baseline.external));
                let reading = format!(
                    "{fm} probe {} in-distribution and {} at the held-out site; baseline {} and {}. {}",
                    fmt3(fi), fmt3(fe), fmt3(bi), fmt3(be),
                    if held { "The pretrained model loses less." } else if not { "The pretrained model loses more: its features encode the training sites' acquisition (see the shortcut check)." } else { "The interval contains 0: at this size the evidence cannot tell the drops apart (the synthetic sites differ in detector, VOI and noise, which both models partly absorb)." }
                );
                claim("site_shift", st, verdict_of(held, not), Some(&e), json!({"foundation_model": format!("{fm_probe} probe-100%"), "baseline": "baseline", "held_out_site": site, "fm_internal": fi, "fm_external": fe, "baseline_internal": bi, "baseline_external": be, "observations": obs}), reading)
            }
            Err(e) => inconclusive("site_shift", st, e),
        }
    });

    // fairness
    fm_candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    let best = fm_candidates.first().map(|x| x.0.clone());
    for (id, field, what) in [
        ("fairness_sex", "sex", "sex"),
        ("fairness_age", "age_band", "age band"),
    ] {
        let st = format!(
            "The best foundation model (highest in-distribution macro AUROC among its probe and LoRA) performs alike across {what} groups: the largest gap in macro AUROC between two groups, with a 95% CI made simultaneous over every pair of groups. Held (no gap) when the CI contains 0, not held when it excludes 0."
        );
        let Some(best) = &best else {
            out.push(inconclusive(id, &st, why_no_obs()));
            continue;
        };
        let run = if best.ends_with("-probe") {
            Some("probe-100%")
        } else {
            None
        };
        let sc = get(best, run)?;
        out.push(match paired::subgroup_gap(&sc.internal, field, &obs, plan.min_group_positives, set) {
            Ok(g) => {
                let (held, not) = match g.gap.ci {
                    Some([lo, hi]) => (lo <= 0.0 && hi >= 0.0, lo > 0.0),
                    None => (false, false),
                };
                let reading = format!(
                    "{} {:.3} against {} {:.3}{}",
                    g.best, g.groups.iter().find(|x| x.value == g.best).map_or(f64::NAN, |x| x.macro_auroc),
                    g.worst, g.groups.iter().find(|x| x.value == g.worst).map_or(f64::NAN, |x| x.macro_auroc),
                    if not { ": a real gap. The synthetic findings do not depend on sex or age, so a gap here comes from how they are drawn (older patients' follow-ups and devices) and from group sizes" } else { ": the interval contains 0" }
                );
                let e = g.gap.clone();
                claim(id, &st, verdict_of(held, not), Some(&e), json!({"model": best, "gap": g}), reading)
            }
            Err(e) => inconclusive(id, &st, e),
        });
    }

    // weak supervision
    let st = "Report-derived weak labels are nearly free supervision: a probe trained on the report labeler's labels against the same probe trained on the truth labels (macro AUROC difference, weak - truth). Held when the 95% CI's lower bound is above -0.02, not held when its upper bound is below -0.02.";
    out.push(if no_obs {
        inconclusive("weak_supervision", st, why_no_obs())
    } else {
        let t = get(&format!("{fm}-probe-truth"), Some("probe-100%"))?;
        match paired::paired_difference(&fm100.internal, &t.internal, &obs, set) {
            Ok(e) => {
                let (held, not) = match e.ci {
                    Some([lo, hi]) => (lo > -0.02, hi < -0.02),
                    None => (false, false),
                };
                let agree = label_agreement(dir, &obs).unwrap_or(Value::Null);
                let cost = -e.estimate;
                let reading = if held {
                    format!("weak labels cost {cost:.3} macro AUROC here, within the 0.02 margin")
                } else if not {
                    format!("weak labels cost {cost:.3} macro AUROC: the labeler's labels disagree with the truth on some images (the synthetic reports hedge, negate and sometimes disagree with the image, as real ones do; evidence.weak_label_agreement gives the agreement per observation), and the probe pays for it")
                } else {
                    format!("weak labels cost {cost:.3} macro AUROC; the interval straddles the 0.02 margin, so this size cannot say whether the cost is small (evidence.weak_label_agreement gives the labeler's agreement with the truth per observation)")
                };
                claim("weak_supervision", st, verdict_of(held, not), Some(&e), json!({"weak": format!("{fm_probe} probe-100%"), "truth": format!("{fm}-probe-truth probe-100%"), "weak_label_agreement": agree, "observations": obs}), reading)
            }
            Err(e) => inconclusive("weak_supervision", st, e),
        }
    });

    // shortcut
    out.push(shortcut(plan, dir, site, fm, &fm100, &obs, set)?);

    Ok(json!({
        "claims": out,
        "observations": {"used": obs, "left_out": left_out, "counts": counts},
        "models": models_json,
        "held_out_site": site,
        "plan": plan,
    }))
}

fn fmt3(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Agreement of the weak labels (the embed index's) with the truth on the training images.
fn label_agreement(dir: &Path, obs: &[String]) -> anyhow::Result<Value> {
    let truth = super::evaluate::jsonl(&dir.join("dataset/truth.jsonl"))?;
    let t: HashMap<String, &Value> = truth
        .iter()
        .filter_map(|(_, v)| Some((v["id"].as_str()?.to_string(), v)))
        .collect();
    let index = super::evaluate::jsonl(&dir.join("emb/mae/index.jsonl"))?;
    let mut out = serde_json::Map::new();
    for o in obs {
        let (mut agree, mut n) = (0usize, 0usize);
        for (_, v) in &index {
            if v["split"].as_str() != Some("train") || v["labeled"].as_bool() == Some(false) {
                continue;
            }
            let Some(tv) = v["id"].as_str().and_then(|i| t.get(i)) else {
                continue;
            };
            let truth_y = tv["labels"][o.as_str()].as_f64();
            let weak = v["labels"][o.as_str()].as_f64().unwrap_or(0.0); // unmentioned: negative
            if let Some(y) = truth_y {
                n += 1;
                agree += usize::from((weak > 0.5) == (y > 0.5));
            }
        }
        if n > 0 {
            out.insert(o.clone(), json!(round(agree as f64 / n as f64, 4)));
        }
    }
    Ok(Value::Object(out))
}

/// The shortcut check: how well the foundation model's embeddings predict the site
/// (an L2 logistic regression on the training patients, C = 1, scored on the
/// in-distribution test images), against how well its probe predicts the findings.
fn shortcut(
    plan: &Plan,
    dir: &Path,
    site: &str,
    fm: &str,
    fm100: &Scored,
    obs: &[String],
    set: Settings,
) -> anyhow::Result<Value> {
    let st = "The review's shortcut warning: the foundation model's embeddings predict the acquisition site far more readily than the findings. Estimate: the site probe's AUROC minus the findings probe's macro AUROC on the same in-distribution test images. Held (a shortcut risk) when the 95% CI's lower bound is above 0.1, not held when its upper bound is below 0.1.";
    let emb = dir.join(format!("emb/{fm}"));
    let npy = radfm_core::npy::Npy::read(
        &std::fs::read(emb.join("embeddings.npy"))
            .with_context(|| format!("reading {}", emb.display()))?[..],
    )?;
    let (n, dim) = (npy.shape[0], npy.shape[1]);
    let x = npy.to_f32();
    let index = super::evaluate::jsonl(&emb.join("index.jsonl"))?;
    if index.len() != n {
        bail!(
            "{}: {} index lines for {n} embeddings",
            emb.display(),
            index.len()
        );
    }
    let mut sites: Vec<String> = index
        .iter()
        .filter_map(|(_, v)| v["site"].as_str())
        .filter(|s| *s != site)
        .map(str::to_string)
        .collect();
    sites.sort();
    sites.dedup();
    if sites.len() < 2 {
        return Ok(inconclusive(
            "site_shortcut",
            st,
            format!("{} training site(s): nothing to tell apart", sites.len()),
        ));
    }
    // one-vs-rest for each training site; the site "observation" is the first's
    let feats =
        radfm_adapt::logistic::Features::new(&x, n, dim).map_err(|e| anyhow::anyhow!("{e}"))?;
    let train: Vec<usize> = (0..n)
        .filter(|&i| index[i].1["split"].as_str() == Some("train"))
        .collect();
    let target = sites[0].clone();
    let y: Vec<bool> = train
        .iter()
        .map(|&i| index[i].1["site"].as_str() == Some(&target))
        .collect();
    let w = vec![1.0; train.len()];
    let fit = radfm_adapt::logistic::fit(
        &feats,
        radfm_adapt::logistic::Rows {
            index: &train,
            y: &y,
            weight: &w,
        },
        &radfm_adapt::logistic::Settings::new(1.0),
        None,
    )
    .map_err(|e| anyhow::anyhow!("site probe: {e}"))?;
    let by_id: HashMap<&str, usize> = index
        .iter()
        .enumerate()
        .filter_map(|(i, (_, v))| Some((v["id"].as_str()?, i)))
        .collect();
    // the findings probe's images, with the site as one more observation
    let mut imgs = fm100.internal.clone();
    for im in &mut imgs {
        let Some(&row) = by_id.get(im.id.as_str()) else {
            bail!("{}: no embedding for {}", emb.display(), im.id);
        };
        let is = index[row].1["site"].as_str() == Some(&target);
        im.labels.insert("__site".into(), is);
        im.scores
            .insert("__site".into(), fit.model.proba(feats.row(row)));
    }
    let site_obs = vec!["__site".to_string()];
    if obs.is_empty() {
        return Ok(inconclusive(
            "site_shortcut",
            st,
            "no observation has enough positives".into(),
        ));
    }
    let (site_auc, e) = match (
        paired::macro_auroc_ci(&imgs, &site_obs, set),
        paired::macro_difference(&imgs, &site_obs, obs, set),
    ) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return Ok(inconclusive("site_shortcut", st, e)),
    };
    let (held, not) = match e.ci {
        Some([lo, hi]) => (lo > 0.1, hi < 0.1),
        None => (false, false),
    };
    let findings = paired::macro_auroc_point(&imgs, obs);
    let reading = format!(
        "the site ({target} against the other training site) is predicted with AUROC {:.3}, the findings with {}{}",
        site_auc.estimate,
        fmt3(findings),
        if held { ": the embeddings carry the acquisition site far more plainly than the disease, the shortcut the review warns of (the synthetic sites differ in detector, bit depth, VOI and noise)" } else { "" }
    );
    let _ = plan;
    Ok(claim(
        "site_shortcut",
        st,
        verdict_of(held, not),
        Some(&e),
        json!({"site_auroc": est_json(&site_auc), "findings_macro_auroc": findings, "sites": sites, "probe": "L2 logistic regression, C = 1, on the training patients' embeddings", "flag": held}),
        reading,
    ))
}
