//! `radfm demo`'s report.html: one self-contained page (inline CSS and SVG, no
//! script, nothing fetched) with the claims table first, then the models, the
//! label-efficiency curve, the shift comparison, the fairness gaps and the
//! shortcut check.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.3}"))
}

fn ci(v: &Value) -> String {
    match v.as_array() {
        Some(a) if a.len() == 2 => format!("[{}, {}]", num(&a[0]), num(&a[1])),
        _ => "-".into(),
    }
}

/// "0.712 [0.690, 0.733]" of an estimate object {estimate, ci}.
fn est(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    format!("{} <small>{}</small>", num(&v["estimate"]), ci(&v["ci"]))
}

fn verdict(v: &str) -> String {
    let (class, text) = match v {
        "held" => ("held", "held"),
        "not_held" => ("not", "not held"),
        _ => ("inc", "inconclusive"),
    };
    format!("<span class=\"{class}\">{text}</span>")
}

/// An SVG line chart of macro AUROC against the label budget for each probe,
/// with the baseline's 100% as a dashed line.
fn label_curve(models: &[Value]) -> String {
    let runs = super::demo::PROBE_RUNS;
    let (w, h, l, r, t, b) = (560.0, 300.0, 50.0, 150.0, 16.0, 40.0);
    let (lo, hi) = (0.4f64, 1.0f64);
    let x = |i: usize| l + (w - l - r) * i as f64 / (runs.len() - 1) as f64;
    let y = |v: f64| t + (h - t - b) * (hi - v.clamp(lo, hi)) / (hi - lo);
    let mut s = format!("<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"label efficiency\">");
    for k in 0..=6 {
        let v = lo + (hi - lo) * k as f64 / 6.0;
        let (x2, yy) = (w - r, y(v));
        s += &format!("<line x1=\"{l}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.1}</text>", l - 4.0, yy + 4.0);
    }
    for (i, name) in runs.iter().enumerate() {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - b + 16.0,
            name.trim_start_matches("probe-")
        );
    }
    s += &format!("<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">labels used (k-shot per observation, or % of the training patients)</text>", (l + w - r) / 2.0, h - 6.0);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut legend = 0;
    for m in models.iter() {
        let Some(rs) = m["runs"].as_object().filter(|o| !o.is_empty()) else {
            continue;
        };
        let c = colours[legend % colours.len()];
        let pts: Vec<(f64, f64)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((x(i), y(rs.get(*r)?["internal"]["estimate"].as_f64()?))))
            .collect();
        let path: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        s += &format!(
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (a, b) in &pts {
            s += &format!("<circle cx=\"{a:.1}\" cy=\"{b:.1}\" r=\"3\" fill=\"{c}\"/>");
        }
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{c}\">{} probe</text>",
            w - r + 8.0,
            t + 14.0 + 16.0 * legend as f64,
            esc(m["name"].as_str().unwrap_or("").trim_end_matches("-probe"))
        );
        legend += 1;
    }
    if let Some(base) = models
        .iter()
        .find(|m| m["name"] == "baseline")
        .and_then(|m| m["internal"]["estimate"].as_f64())
    {
        let (x2, yy) = (w - r, y(base));
        s += &format!("<line x1=\"{l}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>");
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#555\">baseline, 100%</text>",
            w - r + 8.0,
            t + 14.0 + 16.0 * legend as f64
        );
    }
    s += "</svg>";
    s
}

pub fn page(claims: &Value, plan: &Value) -> String {
    let mut h = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>radfm demo: the review's claims</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1150px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #bbb;padding:4px 7px;text-align:left;vertical-align:top}td.n{text-align:right;white-space:nowrap}small{color:#555}
.held{background:#d9f2d9;color:#0a5a0a;font-weight:bold;padding:1px 6px;border-radius:3px}.not{background:#f8d7d7;color:#8a0000;font-weight:bold;padding:1px 6px;border-radius:3px}
.inc{background:#eee;color:#444;font-weight:bold;padding:1px 6px;border-radius:3px}h2{margin-top:30px}.flag{color:#b30000;font-weight:bold}.stmt{max-width:420px}</style></head><body>"#,
    );
    h += "<h1>radfm demo: do the review's claims hold here?</h1>";
    h += &format!(
        "<p>A synthetic hospital whose truth is known: {} patients, {} mode, seed {}, {}; site <b>{}</b> held out entirely. Pretraining: {}; {}. Every interval is a 95% percentile bootstrap over patients; every verdict follows from its interval by the rule in its statement.</p>",
        plan["patients"], esc(plan["mode"].as_str().unwrap_or("")), plan["seed"], esc(plan["cohort"].as_str().unwrap_or("")),
        esc(plan["held_out_site"].as_str().unwrap_or("")), esc(plan["pretraining"].as_str().unwrap_or("")), esc(plan["fine-tuning"].as_str().unwrap_or(""))
    );
    h += "<h2 id=\"claims\">Claims</h2><table><tr><th>claim</th><th>verdict</th><th>estimate</th><th>95% CI</th><th>statement and rule</th><th>what the evidence says</th></tr>";
    for c in claims["claims"].as_array().into_iter().flatten() {
        h += &format!(
            "<tr><td><b>{}</b></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"stmt\">{}</td><td class=\"stmt\">{}</td></tr>",
            esc(c["id"].as_str().unwrap_or("")),
            verdict(c["verdict"].as_str().unwrap_or("")),
            num(&c["estimate"]),
            ci(&c["ci"]),
            esc(c["statement"].as_str().unwrap_or("")),
            esc(c["reading"].as_str().unwrap_or(""))
        );
    }
    h += "</table>";
    let obs = &claims["observations"];
    let used: Vec<&str> = obs["used"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    h += &format!("<p><small>Macro AUROC over {} observations with at least {} positives and negatives in each evaluated cohort: {}.", used.len(), obs["counts"]["min_positives"], esc(&used.join(", ")));
    if let Some(left) = obs["left_out"].as_object().filter(|m| !m.is_empty()) {
        h += " Left out: ";
        let parts: Vec<String> = left
            .iter()
            .map(|(o, why)| format!("{} ({})", esc(o), esc(why.as_str().unwrap_or(""))))
            .collect();
        h += &parts.join("; ");
        h += ".";
    }
    h += "</small></p>";

    let models: Vec<Value> = claims["models"].as_array().cloned().unwrap_or_default();
    h += "<h2 id=\"models\">Models</h2><table><tr><th>model</th><th>what</th><th>in-distribution test</th><th>held-out site</th><th>drop</th><th>evaluation reports</th></tr>";
    for m in &models {
        let drop = match (
            m["internal"]["estimate"].as_f64(),
            m["external"]["estimate"].as_f64(),
        ) {
            (Some(a), Some(b)) => format!("{:.3}", a - b),
            _ => "-".into(),
        };
        h += &format!(
            "<tr><td><b>{}</b></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{drop}</td><td><a href=\"{}\">in-distribution</a> · <a href=\"{}\">held-out site</a></td></tr>",
            esc(m["name"].as_str().unwrap_or("")),
            esc(m["label"].as_str().unwrap_or("")),
            est(&m["internal"]),
            est(&m["external"]),
            esc(m["report_internal"].as_str().unwrap_or("")),
            esc(m["report_external"].as_str().unwrap_or("")),
        );
    }
    h += "</table><p><small>Each model's <code>radfm evaluate</code> report has the per-observation metrics, calibration, operating points and subgroup tables.</small></p>";

    h += "<h2 id=\"label-efficiency\">Label efficiency</h2>";
    h += &label_curve(&models);
    h += "<table><tr><th>probe</th><th>5 shots</th><th>20 shots</th><th>1%</th><th>10%</th><th>100%</th></tr>";
    for m in models
        .iter()
        .filter(|m| m["runs"].as_object().is_some_and(|o| !o.is_empty()))
    {
        h += &format!("<tr><td>{}</td>", esc(m["name"].as_str().unwrap_or("")));
        for r in super::demo::PROBE_RUNS {
            h += &format!("<td class=\"n\">{}</td>", est(&m["runs"][r]["internal"]));
        }
        h += "</tr>";
    }
    h += "</table>";

    h += "<h2 id=\"shift\">Shift to the held-out site</h2><table><tr><th>model</th><th>in-distribution</th><th>held-out site</th><th>drop</th></tr>";
    for m in &models {
        let (a, b) = (
            m["internal"]["estimate"].as_f64(),
            m["external"]["estimate"].as_f64(),
        );
        h += &format!(
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(m["name"].as_str().unwrap_or("")),
            est(&m["internal"]),
            est(&m["external"]),
            match (a, b) {
                (Some(a), Some(b)) => format!("{:.3}", a - b),
                _ => "-".into(),
            }
        );
    }
    h += "</table>";

    h += "<h2 id=\"fairness\">Fairness gaps</h2>";
    for c in claims["claims"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"].as_str().is_some_and(|i| i.starts_with("fairness")))
    {
        let g = &c["evidence"]["gap"];
        h += &format!(
            "<h3>{} ({})</h3>",
            esc(c["id"].as_str().unwrap_or("")),
            esc(c["evidence"]["model"].as_str().unwrap_or(""))
        );
        if g.is_null() {
            h += &format!("<p>{}</p>", esc(c["reading"].as_str().unwrap_or("")));
            continue;
        }
        h += "<table><tr><th>group</th><th>images</th><th>patients</th><th>macro AUROC</th></tr>";
        for gr in g["groups"].as_array().into_iter().flatten() {
            h += &format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(gr["value"].as_str().unwrap_or("")), gr["images"], gr["patients"], num(&gr["macro_auroc"])
            );
        }
        h += &format!(
            "</table><p>Largest gap {} − {}: {} {} (CI simultaneous over {} pairs, level {}). {}</p>",
            esc(g["best"].as_str().unwrap_or("")), esc(g["worst"].as_str().unwrap_or("")), num(&g["gap"]["estimate"]), ci(&g["gap"]["ci"]), g["pairs"],
            num(&g["gap"]["level"]), verdict(c["verdict"].as_str().unwrap_or(""))
        );
        if let Some(d) = g["dropped_groups"].as_object().filter(|d| !d.is_empty()) {
            let named: Vec<String> = d
                .iter()
                .map(|(v, r)| format!("{} ({})", esc(v), esc(r.as_str().unwrap_or(""))))
                .collect();
            h += &format!("<p>Groups left out: {}.</p>", named.join("; "));
        }
    }

    h += "<h2 id=\"shortcut\">Shortcut check: is the site easier to read than the disease?</h2>";
    if let Some(c) = claims["claims"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == "site_shortcut")
    {
        let flag = c["evidence"]["flag"].as_bool() == Some(true);
        h += &format!(
            "<p>{}Site probe AUROC {} against the findings' macro AUROC {}. {}</p>",
            if flag {
                "<span class=\"flag\">FLAG: the embeddings encode the site far more plainly than the findings.</span> "
            } else {
                ""
            },
            est(&c["evidence"]["site_auroc"]),
            num(&c["evidence"]["findings_macro_auroc"]),
            esc(c["reading"].as_str().unwrap_or(""))
        );
    }

    h += "<h2 id=\"timings\">Stage timings</h2><table><tr><th>stage</th><th>seconds</th></tr>";
    if let Some(t) = claims["timings"].as_object() {
        for (k, v) in t {
            h += &format!("<tr><td>{}</td><td class=\"n\">{}</td></tr>", esc(k), v);
        }
    }
    h += "</table><p><small>The commands behind every stage are in <a href=\"commands.sh\">commands.sh</a>; the numbers are in <a href=\"claims.json\">claims.json</a>.</small></p></body></html>";
    h
}
