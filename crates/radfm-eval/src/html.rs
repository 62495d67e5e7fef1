//! A self-contained HTML report with hand-written inline SVG: no scripts, no
//! network. Every plot has a title, labelled axes, a text alternative and
//! colours that stay distinguishable in greyscale.

use serde_json::Value as Json;

/// Curves of one observation, computed on all evaluated images.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Curves {
    /// (false positive rate, true positive rate)
    pub roc: Vec<(f64, f64)>,
    /// on a fixed FPR grid: (fpr, lower, upper) of the bootstrap TPR band
    pub roc_band: Vec<(f64, f64, f64)>,
    /// (recall, precision)
    pub pr: Vec<(f64, f64)>,
    /// on a fixed recall grid: (recall, lower, upper) of the bootstrap precision band
    pub pr_band: Vec<(f64, f64, f64)>,
    /// reliability: (mean predicted, observed frequency, count) per non-empty bin
    pub reliability: Vec<(f64, f64, usize)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 330.0;
const H: f64 = 260.0;
const M: f64 = 44.0; // margin

fn x(v: f64) -> f64 {
    M + v * (W - M - 10.0)
}

fn y(v: f64) -> f64 {
    H - M + 10.0 - v * (H - M - 20.0)
}

/// A unit-square plot frame with axes, ticks and labels.
fn frame(title: &str, xl: &str, yl: &str, body: &str, alt: &str) -> String {
    framed(title, xl, yl, body, alt, true)
}

/// [`frame`], with the numeric x tick labels left out when the caller labels a categorical axis.
fn framed(title: &str, xl: &str, yl: &str, body: &str, alt: &str, x_ticks: bool) -> String {
    let mut s = format!(
        r#"<svg role="img" aria-labelledby="t" width="{W}" height="{H}" viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg"><title>{}</title><desc>{}</desc>"#,
        esc(title),
        esc(alt)
    );
    s += &format!(
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#333"/>"##,
        x(0.0),
        y(1.0),
        x(1.0) - x(0.0),
        y(0.0) - y(1.0)
    );
    for k in 0..=4 {
        let t = k as f64 / 4.0;
        s += &format!(
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>"##,
            x(t),
            y(0.0),
            x(t),
            y(1.0)
        );
        s += &format!(
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>"##,
            x(0.0),
            y(t),
            x(1.0),
            y(t)
        );
        if x_ticks {
            s += &format!(
                r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{t:.2}</text>"#,
                x(t),
                y(0.0) + 14.0
            );
        }
        s += &format!(
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{t:.2}</text>"#,
            x(0.0) - 4.0,
            y(t) + 4.0
        );
    }
    s += body;
    s += &format!(
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        (x(0.0) + x(1.0)) / 2.0,
        H - 4.0,
        esc(xl)
    );
    s += &format!(
        r#"<text x="12" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"#,
        (y(0.0) + y(1.0)) / 2.0,
        (y(0.0) + y(1.0)) / 2.0,
        esc(yl)
    );
    s += &format!(
        r#"<text x="{}" y="14" font-size="12" font-weight="bold" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    s + "</svg>"
}

fn polyline(pts: &[(f64, f64)], colour: &str, dash: &str) -> String {
    let p: Vec<String> = pts
        .iter()
        .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
        .collect();
    format!(
        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
        p.join(" ")
    )
}

fn roc_svg(name: &str, c: &Curves, auc: &str) -> String {
    let mut body = String::new();
    if !c.roc_band.is_empty() {
        let up: Vec<String> = c
            .roc_band
            .iter()
            .map(|(f, _, u)| format!("{:.1},{:.1}", x(*f), y(*u)))
            .collect();
        let lo: Vec<String> = c
            .roc_band
            .iter()
            .rev()
            .map(|(f, l, _)| format!("{:.1},{:.1}", x(*f), y(*l)))
            .collect();
        body += &format!(
            r##"<polygon fill="#9ecae1" fill-opacity="0.6" points="{} {}"/>"##,
            up.join(" "),
            lo.join(" ")
        );
    }
    body += &polyline(&[(0.0, 0.0), (1.0, 1.0)], "#888", "4 3");
    body += &polyline(&c.roc, "#08519c", "");
    frame(
        &format!("{name}: ROC (AUROC {auc})"),
        "false positive rate (1 - specificity)",
        "true positive rate (sensitivity)",
        &body,
        &format!("ROC curve of {name}, AUROC {auc}, with a shaded 95% patient-bootstrap band"),
    )
}

fn pr_svg(name: &str, c: &Curves, ap: &str, prevalence: f64) -> String {
    let mut body = String::new();
    if !c.pr_band.is_empty() {
        let up: Vec<String> = c
            .pr_band
            .iter()
            .map(|(r, _, u)| format!("{:.1},{:.1}", x(*r), y(*u)))
            .collect();
        let lo: Vec<String> = c
            .pr_band
            .iter()
            .rev()
            .map(|(r, l, _)| format!("{:.1},{:.1}", x(*r), y(*l)))
            .collect();
        body += &format!(
            r##"<polygon fill="#fdae6b" fill-opacity="0.55" points="{} {}"/>"##,
            up.join(" "),
            lo.join(" ")
        );
    }
    body += &polyline(&[(0.0, prevalence), (1.0, prevalence)], "#888", "4 3");
    body += &polyline(&c.pr, "#a63603", "");
    frame(
        &format!("{name}: PR (AP {ap})"),
        "recall (sensitivity)",
        "precision (PPV)",
        &body,
        &format!(
            "Precision-recall curve of {name}, average precision {ap}; dashed line: prevalence"
        ),
    )
}

fn reliability_svg(name: &str, c: &Curves, ece: &str) -> String {
    let mut body = polyline(&[(0.0, 0.0), (1.0, 1.0)], "#888", "4 3");
    let total: usize = c.reliability.iter().map(|r| r.2).sum::<usize>().max(1);
    for (p, o, n) in &c.reliability {
        let r = 3.0 + 9.0 * (*n as f64 / total as f64).sqrt();
        body += &format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="{r:.1}" fill="#31a354" fill-opacity="0.7" stroke="#006d2c"><title>mean predicted {p:.3}, observed {o:.3}, {n} images</title></circle>"##,
            x(*p),
            y(*o)
        );
    }
    let pts: Vec<(f64, f64)> = c.reliability.iter().map(|r| (r.0, r.1)).collect();
    body += &polyline(&pts, "#006d2c", "");
    frame(
        &format!("{name}: reliability (ECE {ece})"),
        "mean predicted probability",
        "observed frequency",
        &body,
        &format!("Reliability diagram of {name}: observed frequency against mean predicted probability per bin; ECE {ece}"),
    )
}

/// A forest plot of one metric across the values of a subgroup.
fn forest_svg(title: &str, rows: &[(String, f64, Option<(f64, f64)>)]) -> String {
    let h = 40.0 + 22.0 * rows.len() as f64;
    let (x0, x1) = (150.0, 560.0);
    // AUROC from 0.5 to 1
    let pxs = |v: f64| x0 + ((v - 0.5) * 2.0).clamp(0.0, 1.0) * (x1 - x0);
    let mut s = format!(
        r#"<svg role="img" width="600" height="{h}" viewBox="0 0 600 {h}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        esc(title)
    );
    s += &format!(
        r#"<text x="300" y="14" font-size="13" font-weight="bold" text-anchor="middle">{}</text>"#,
        esc(title)
    );
    for k in 0..=4 {
        let t = 0.5 + k as f64 / 8.0;
        s += &format!(
            r##"<line x1="{0}" y1="22" x2="{0}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" font-size="11" text-anchor="middle">{t:.3}</text>"##,
            pxs(t),
            h - 16.0,
            h - 4.0
        );
    }
    for (i, (label, v, ci)) in rows.iter().enumerate() {
        let yy = 34.0 + 22.0 * i as f64;
        s += &format!(
            r#"<text x="140" y="{}" font-size="12" text-anchor="end">{}</text>"#,
            yy + 4.0,
            esc(label)
        );
        if let Some((lo, hi)) = ci {
            s += &format!(
                r##"<line x1="{:.1}" y1="{yy}" x2="{:.1}" y2="{yy}" stroke="#333" stroke-width="2"/>"##,
                pxs(*lo),
                pxs(*hi)
            );
        }
        s += &format!(
            r##"<rect x="{:.1}" y="{}" width="8" height="8" fill="#08519c"><title>{} {v:.3}</title></rect>"##,
            pxs(*v) - 4.0,
            yy - 4.0,
            esc(label)
        );
    }
    s + "</svg>"
}

/// One run's point on the by-run plot: its draw (x category), its place
/// among that draw's repeats, the AUROC and its CI.
struct RunPoint<'a> {
    run: &'a str,
    draw: usize,
    slot: usize,
    slots: usize,
    auroc: f64,
    ci: Option<(f64, f64)>,
}

/// AUROC with CI bars against run (categorical x axis in file order). The
/// repeats of a draw stand side by side at the draw's place, and the line
/// joins the draws' mean AUROCs.
fn run_svg(name: &str, draws: &[&str], pts: &[RunPoint]) -> String {
    let n = draws.len().max(2) as f64;
    let xr = |k: usize| 0.05 + 0.9 * k as f64 / (n - 1.0);
    let slot_w = 0.5 * 0.9 / (n - 1.0);
    let at = |p: &RunPoint| {
        let spread = slot_w * (p.slots.saturating_sub(1)) as f64 / p.slots.max(1) as f64;
        let off = if p.slots > 1 {
            -spread / 2.0 + spread * p.slot as f64 / (p.slots - 1) as f64
        } else {
            0.0
        };
        xr(p.draw) + off
    };
    let yr = |v: f64| v.clamp(0.0, 1.0);
    let mut body = String::new();
    for p in pts {
        if let Some((lo, hi)) = p.ci {
            body += &format!(
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#333" stroke-width="{3}"/>"##,
                x(at(p)),
                y(yr(lo)),
                y(yr(hi)),
                if p.slots > 1 { 1 } else { 2 }
            );
        }
        body += &format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="#08519c"><title>{} AUROC {:.3}</title></circle>"##,
            x(at(p)),
            y(yr(p.auroc)),
            if p.slots > 1 { 3 } else { 4 },
            esc(p.run),
            p.auroc
        );
    }
    let line: Vec<(f64, f64)> = (0..draws.len())
        .filter_map(|d| {
            let v: Vec<f64> = pts
                .iter()
                .filter(|p| p.draw == d)
                .map(|p| p.auroc)
                .collect();
            (!v.is_empty()).then(|| (xr(d), yr(v.iter().sum::<f64>() / v.len() as f64)))
        })
        .collect();
    body += &polyline(&line, "#08519c", "");
    // the axis names the draws without the prefix they share (`probe-`)
    let shared = draws
        .first()
        .and_then(|d| d.find('-').map(|i| &d[..=i]))
        .filter(|p| draws.len() > 1 && draws.iter().all(|d| d.starts_with(p) && d.len() > p.len()))
        .map_or(0, str::len);
    for (k, r) in draws.iter().enumerate() {
        body += &format!(
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            x(xr(k)),
            y(0.0) + 14.0,
            esc(&r[shared..])
        );
    }
    framed(
        &format!("{name}: AUROC by run"),
        &if shared > 0 {
            format!("run ({}...)", &draws[0][..shared])
        } else {
            "run".to_string()
        },
        "AUROC",
        &body,
        &format!(
            "AUROC of {name} with 95% CIs for each run{}: {}",
            if pts.iter().any(|p| p.slots > 1) {
                ", repeats of a draw side by side, the line through their means"
            } else {
                ""
            },
            draws.join(", ")
        ),
        false,
    )
}

fn num(v: &Json) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.3}"))
}

fn cell(c: &Json) -> String {
    match (c["value"].as_f64(), c["ci"].as_array()) {
        (Some(v), Some(ci)) => format!("{v:.3} <small>[{}, {}]</small>", num(&ci[0]), num(&ci[1])),
        (Some(v), None) => format!("{v:.3}"),
        _ => format!(
            "<span title=\"{}\">n/a</span>",
            esc(c["reason"].as_str().unwrap_or("undefined"))
        ),
    }
}

/// The page, from the metrics JSON and the curves per observation.
pub fn page(report: &Json, curves: &std::collections::BTreeMap<String, Curves>) -> String {
    let mut h = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>radfm evaluation report</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1100px}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:right}th:first-child,td:first-child{text-align:left}small{color:#555}
.plots{display:flex;flex-wrap:wrap;gap:12px}.flag{color:#b30000;font-weight:bold}h2{margin-top:32px}</style></head><body>"#,
    );
    h += "<h1>Evaluation report</h1>";
    let bs = &report["bootstrap"];
    h += &format!(
        "<p>{} images of {} patients. 95% confidence intervals: percentile bootstrap over {} resamples of <b>patients</b> (seed {}). Operating point: {}. Validation images (calibration only): {}.</p>",
        report["n_images"], report["n_patients"], bs["resamples"], bs["seed"], esc(report["operating_point"].as_str().unwrap_or("")),
        report["n_validation_images"]
    );
    let metrics = &crate::evaluate::METRICS[..9]; // all but the equal-mass ECE
    h += "<h2>Per observation</h2><table><tr><th>observation</th><th>n</th><th>prevalence</th>";
    for m in metrics.iter() {
        h += &format!("<th>{m}</th>");
    }
    h += "</tr>";
    if let Some(obs) = report["observations"].as_object() {
        for (o, m) in obs {
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td>",
                esc(o),
                m["n"],
                num(&m["prevalence"])
            );
            for k in metrics.iter() {
                h += &format!("<td>{}</td>", cell(&m[k]));
            }
            h += "</tr>";
        }
        h += "</table>";
        for (o, m) in obs {
            let Some(c) = curves.get(o) else { continue };
            h += &format!("<h3>{}</h3><div class=\"plots\">", esc(o));
            h += &roc_svg(o, c, &num(&m["auroc"]["value"]));
            h += &pr_svg(
                o,
                c,
                &num(&m["auprc"]["value"]),
                m["prevalence"].as_f64().unwrap_or(0.0),
            );
            if !c.reliability.is_empty() {
                h += &reliability_svg(o, c, &num(&m["ece"]["value"]));
            }
            h += "</div>";
        }
    }
    // calibration fits
    if let Some(cal) = report["calibration"].as_object() {
        h += "<h2>Calibration</h2>";
        if let Some(r) = cal.get("reason").and_then(Json::as_str) {
            h += &format!("<p>{}</p>", esc(r));
        } else {
            h += "<table><tr><th>observation</th><th>T</th><th>Platt a, b</th><th>ECE before</th><th>after T</th><th>after Platt</th><th>Brier before</th><th>after T</th><th>after Platt</th></tr>";
            for (o, c) in cal {
                h += &format!(
                    "<tr><td>{}</td><td>{}</td><td>{}, {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(o), num(&c["temperature"]), num(&c["platt"]["a"]), num(&c["platt"]["b"]),
                    num(&c["before"]["ece"]), num(&c["after_temperature"]["ece"]), num(&c["after_platt"]["ece"]),
                    num(&c["before"]["brier"]), num(&c["after_temperature"]["brier"]), num(&c["after_platt"]["brier"])
                );
            }
            h += "</table>";
        }
    }
    // subgroups
    if let Some(gaps) = report["subgroup_gaps"].as_object() {
        for (g, per) in gaps {
            h += &format!("<h2>Subgroups: {}</h2>", esc(g));
            h += "<p>The best and worst groups are picked from the data, so the gap's CI is \
                  simultaneous over all pairs of groups (Bonferroni). A gap is flagged when that CI \
                  excludes 0 and it survives Holm's correction across the observations.</p>";
            h += "<table><tr><th>observation</th><th>best</th><th>worst</th><th>AUROC gap [CI]</th><th>CI level</th><th>p (Holm)</th><th></th></tr>";
            for (o, gp) in per.as_object().into_iter().flatten() {
                let ci = gp["ci"]
                    .as_array()
                    .map_or("-".into(), |c| format!("[{}, {}]", num(&c[0]), num(&c[1])));
                let flag = if gp["flag"] == true {
                    "<span class=\"flag\">gap</span>"
                } else {
                    ""
                };
                h += &format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {ci}</td><td>{}</td><td>{}</td><td>{flag}</td></tr>",
                    esc(o),
                    esc(gp["best"].as_str().unwrap_or("")),
                    esc(gp["worst"].as_str().unwrap_or("")),
                    num(&gp["gap"]),
                    gp["ci_level"].as_f64().map_or("-".into(), |l| format!("{:.1}%", 100.0 * l)),
                    gp["p_holm"].as_f64().map_or("-".into(), |p| if p < 0.001 {
                        "&lt;0.001".into()
                    } else {
                        format!("{p:.3}")
                    }),
                );
            }
            h += "</table><div class=\"plots\">";
            if let Some(vals) = report["subgroups"][g].as_object() {
                if let Some(obs) = report["observations"].as_object() {
                    for o in obs.keys() {
                        let rows: Vec<(String, f64, Option<(f64, f64)>)> = vals
                            .iter()
                            .filter_map(|(v, m)| {
                                let c = &m[o]["auroc"];
                                let ci = c["ci"]
                                    .as_array()
                                    .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
                                Some((v.clone(), c["value"].as_f64()?, ci))
                            })
                            .collect();
                        if rows.len() >= 2 {
                            h += &forest_svg(&format!("{o}: AUROC by {g}"), &rows);
                        }
                    }
                }
            }
            h += "</div>";
        }
    }
    // metrics against run (label efficiency, shift)
    if let (Some(order), Some(per)) = (
        report["runs"]["order"].as_array(),
        report["runs"]["metrics"].as_object(),
    ) {
        h += &format!(
            "<h2>Metrics against run</h2><p>The tables above describe run <b>{}</b>.</p><div class=\"plots\">",
            esc(report["main_run"].as_str().unwrap_or(""))
        );
        let names: Vec<&str> = order.iter().filter_map(Json::as_str).collect();
        let repeats = report["runs"]["repeats"]
            .as_object()
            .is_some_and(|r| !r.is_empty());
        let mut draws: Vec<&str> = Vec::new();
        let mut place: Vec<(usize, usize)> = Vec::new(); // per run: (draw, slot)
        for r in &names {
            let d = if repeats {
                crate::evaluate::draw_of(r).unwrap_or(r)
            } else {
                r
            };
            let k = match draws.iter().position(|x| *x == d) {
                Some(k) => k,
                None => {
                    draws.push(d);
                    draws.len() - 1
                }
            };
            place.push((k, place.iter().filter(|p| p.0 == k).count()));
        }
        let slots = |k: usize| place.iter().filter(|p| p.0 == k).count();
        let obs: std::collections::BTreeSet<&String> = per
            .values()
            .filter_map(Json::as_object)
            .flat_map(|m| m.keys())
            .collect();
        for o in obs {
            let pts: Vec<RunPoint> = names
                .iter()
                .zip(&place)
                .filter_map(|(r, &(draw, slot))| {
                    let c = &per[*r][o]["auroc"];
                    let ci = c["ci"]
                        .as_array()
                        .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
                    Some(RunPoint {
                        run: r,
                        draw,
                        slot,
                        slots: slots(draw),
                        auroc: c["value"].as_f64()?,
                        ci,
                    })
                })
                .collect();
            h += &run_svg(o, &draws, &pts);
        }
        h += "</div>";
        // repeated draws: the spread is part of the answer
        if let Some(rep) = report["runs"]["repeats"].as_object() {
            h += "<h3>Across repeated draws</h3><p>AUROC over the repeats of each draw \
                  (runs named <code>DRAW-r0</code>, <code>DRAW-r1</code>, ...): mean, standard \
                  deviation and range.</p><table><tr><th>draw</th><th>observation</th><th>repeats</th>\
                  <th>mean</th><th>sd</th><th>min</th><th>max</th></tr>";
            let mut by_order: Vec<(&String, &Json)> = rep.iter().collect();
            by_order.sort_by_key(|(d, _)| draws.iter().position(|x| x == d).unwrap_or(usize::MAX));
            for (draw, obs) in by_order {
                for (o, v) in obs.as_object().into_iter().flatten() {
                    let f = |k: &str| v[k].as_f64().map_or("".into(), |x| format!("{x:.3}"));
                    h += &format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(draw),
                        esc(o),
                        v["n"],
                        f("mean"),
                        f("sd"),
                        f("min"),
                        f("max")
                    );
                }
            }
            h += "</table>";
        }
    }
    if let Some(cmp) = report["compare"].as_object() {
        h += "<h2>Comparison with the second model (DeLong)</h2><table><tr><th>observation</th><th>AUROC A</th><th>AUROC B</th><th>difference [bootstrap 95% CI]</th><th>z</th><th>p</th></tr>";
        for (o, d) in cmp {
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(o),
                num(&d["auc_a"]),
                num(&d["auc_b"]),
                match d["difference_ci"].as_array() {
                    Some(ci) => format!(
                        "{} <small>[{}, {}]</small>",
                        num(&d["difference"]),
                        num(&ci[0]),
                        num(&ci[1])
                    ),
                    None => num(&d["difference"]),
                },
                num(&d["z"]),
                num(&d["p"])
            );
        }
        h += "</table>";
    }
    h += "<p><small>Made by radfm evaluate. Self-contained: no scripts, no network.</small></p></body></html>\n";
    h
}
