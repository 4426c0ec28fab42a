//! The run report: `runs/NAME/report.html`, one self-contained page (every image inlined as a
//! base64 data URI, no script, no external resource) with the latest numbers, health warnings,
//! loss and metric curves (drawn with plotters as SVG), the sample grids over time and the
//! configuration.
//!
//! It is built from the run folder alone (`config.json`, `metrics.jsonl`, `samples/`), so
//! `gan-cli report RUN_DIR` can rebuild it for any run, and [`crate::monitor::RunMonitor`]
//! rewrites it during training.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine;
use plotters::prelude::*;
use serde_json::Value;

use crate::class_eval::ClassReport;
use crate::cyclegan_run::TranslationScores;
use crate::engine::Signals;
use crate::error::{ModelError, Result};
use crate::evaluator::EvalReport;
use crate::health::{HealthMonitor, Warning};
use crate::registry::RunConfig;
use crate::run::{write_atomic, RunDir};

/// At most this many sample grids are shown (evenly spaced, the last always).
pub const MAX_GRIDS: usize = 12;

/// What the report shows, read from the run folder.
#[derive(Clone, Debug, Default)]
pub struct RunHistory {
    /// The step lines of `metrics.jsonl` (numeric fields only), in order.
    pub steps: Vec<(u64, Vec<(String, f64)>)>,
    /// The evaluations, in order.
    pub evals: Vec<(u64, EvalReport)>,
    /// The per-class evaluations of a class-conditional run, in order.
    pub class_evals: Vec<(u64, ClassReport)>,
    /// The evaluations of a translation model's two directions (CycleGAN), in order.
    pub translation_evals: Vec<(u64, TranslationScores)>,
    /// The warnings logged during training.
    pub warnings: Vec<Warning>,
}

/// Reads `metrics.jsonl`; a malformed line is an error naming the file and the line.
pub fn read_history(run: &RunDir) -> Result<RunHistory> {
    let path = run.metrics_path();
    let mut h = RunHistory::default();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(h),
        Err(e) => return Err(ModelError::io(&path, e)),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| ModelError::Json {
            path: path.clone(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let step = v
            .get("step")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no \"step\"".into()))?;
        if let Some(e) = v.get("eval") {
            let r: EvalReport =
                serde_json::from_value(e.clone()).map_err(|e| bad(format!("eval: {e}")))?;
            h.evals.push((step, r));
        } else if let Some(t) = v.get("translation_eval") {
            let r: TranslationScores = serde_json::from_value(t.clone())
                .map_err(|e| bad(format!("translation_eval: {e}")))?;
            h.translation_evals.push((step, r));
        } else if let Some(c) = v.get("class_eval") {
            let r: ClassReport =
                serde_json::from_value(c.clone()).map_err(|e| bad(format!("class_eval: {e}")))?;
            h.class_evals.push((step, r));
        } else if let Some(w) = v.get("warning") {
            let w: Warning =
                serde_json::from_value(w.clone()).map_err(|e| bad(format!("warning: {e}")))?;
            h.warnings.push(w);
        } else if let Some(obj) = v.as_object() {
            let fields = obj
                .iter()
                .filter(|(k, _)| k.as_str() != "step" && k.as_str() != "epoch")
                // serde_json writes NaN and infinities as null: read them back as NaN, so that
                // the health replay sees the divergence.
                .filter_map(|(k, x)| {
                    x.as_f64()
                        .or(x.is_null().then_some(f64::NAN))
                        .map(|f| (k.clone(), f))
                })
                .collect();
            h.steps.push((step, fields));
        }
    }
    Ok(h)
}

impl RunHistory {
    /// The series of one step field.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.steps
            .iter()
            .filter_map(|(s, f)| {
                f.iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| (*s as f64, *v))
            })
            .filter(|(_, v)| v.is_finite())
            .collect()
    }

    /// The warnings to show: those logged during training, and those a replay of the logged
    /// lines through a [`HealthMonitor`] finds of kinds not logged (for runs trained without the
    /// monitor).
    pub fn all_warnings(&self) -> Vec<Warning> {
        let mut out = self.warnings.clone();
        let mut h = HealthMonitor::default();
        let mut replayed = Vec::new();
        let get =
            |f: &[(String, f64)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| *v as f32);
        let mut evals = self.evals.iter().peekable();
        for (step, f) in &self.steps {
            while let Some((es, r)) = evals.next_if(|(es, _)| es <= step) {
                replayed.extend(h.observe_eval(*es, r));
            }
            // The objective by the fields it logs: a critic's Wasserstein estimate, a
            // discriminator's probabilities, or losses only.
            let signals = match (get(f, "wasserstein"), get(f, "d_x"), get(f, "d_g_z1")) {
                (Some(w), _, _) => Signals::Critic {
                    wasserstein: w,
                    penalty: get(f, "penalty").unwrap_or(0.0),
                },
                (None, Some(d_x), Some(d_g_z)) => Signals::Probabilities { d_x, d_g_z },
                _ => Signals::Losses,
            };
            let values: Vec<(&str, f32)> = f.iter().map(|(k, v)| (k.as_str(), *v as f32)).collect();
            if values.is_empty() {
                continue;
            }
            replayed.extend(h.observe(*step, &values, signals));
        }
        for (es, r) in evals {
            replayed.extend(h.observe_eval(*es, r));
        }
        for w in replayed {
            if !out.iter().any(|o| o.kind == w.kind) {
                out.push(w);
            }
        }
        out.sort_by_key(|w| w.step);
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Colours of the curves, in order.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A line chart of named series as an SVG document (axes, ticks and legend as SVG text).
pub fn line_chart_svg(
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<String> {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let err = |e: &dyn std::fmt::Display| ModelError::Image {
        path: PathBuf::from(format!("<chart {title}>")),
        reason: e.to_string(),
    };
    let (mut x0, mut x1, mut y0, mut y1) = pts.iter().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if pts.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    let (y0, y1) = (y0 - pad, y1 + pad);
    crate::plot::register_font().map_err(|e| err(&e))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, s)) in series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            let s: Vec<(f64, f64)> = s
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let marker = s.len() <= 40;
            chart
                .draw_series(LineSeries::new(s.clone(), c.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            if marker {
                chart
                    .draw_series(s.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(|e| err(&e))?;
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

fn chart_img(title: &str, y_label: &str, series: Vec<(String, Vec<(f64, f64)>)>) -> Result<String> {
    let series: Vec<_> = series.into_iter().filter(|(_, s)| !s.is_empty()).collect();
    if series.is_empty() {
        return Ok(String::new());
    }
    let svg = line_chart_svg(title, y_label, &series)?;
    Ok(format!(
        "<figure class=\"chart\"><img alt=\"{}\" src=\"{}\"></figure>\n",
        escape(title),
        data_uri("image/svg+xml", svg.as_bytes())
    ))
}

/// The sample grids of the run, `(step, path)`, sorted by step.
pub fn sample_grids(run: &RunDir) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(run.samples_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?.to_string();
            let step = name
                .strip_prefix("step-")?
                .strip_suffix(".png")?
                .parse()
                .ok()?;
            Some((step, p))
        })
        .collect();
    out.sort();
    out
}

/// Picks at most `max` items evenly, always keeping the first and the last.
fn spread<T: Clone>(items: &[T], max: usize) -> Vec<T> {
    if items.len() <= max || max < 2 {
        return items.to_vec();
    }
    (0..max)
        .map(|i| items[i * (items.len() - 1) / (max - 1)].clone())
        .collect()
}

fn eval_table(step: u64, r: &EvalReport) -> String {
    let rows = std::iter::once(("step".to_string(), step.to_string())).chain(r.rows());
    let mut s = String::from("<table class=\"numbers\">\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    s.push_str("</table>\n");
    s
}

fn class_table(step: u64, r: &ClassReport) -> String {
    let mut s = format!(
        "<h3>Per class (step {step}, evaluator {})</h3>\n<table class=\"numbers\">\n\
         <tr><th>class</th><th>accuracy</th><th>FID</th><th>samples</th></tr>\n",
        escape(&r.evaluator)
    );
    for c in &r.per_class {
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td>{:.1}%</td><td>{:.3}</td><td>{}</td></tr>",
            escape(&c.class),
            100.0 * c.accuracy,
            c.fid,
            c.samples
        );
    }
    let _ = writeln!(
        s,
        "<tr><th>all</th><td>{:.1}%</td><td>{:.3} (intra-class)</td><td>{}</td></tr>",
        100.0 * r.accuracy,
        r.intra_fid,
        r.per_class.iter().map(|c| c.samples).sum::<usize>()
    );
    s.push_str("</table>\n");
    s
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.5em}\
table.numbers{border-collapse:collapse}table.numbers th{text-align:left;padding:.2em 1em .2em 0;font-weight:normal;color:#555}\
table.numbers td{font-family:monospace}.charts{display:flex;flex-wrap:wrap;gap:8px}\
figure{margin:0}figure.chart img{width:560px;height:320px;border:1px solid #eee}\
.grids{display:flex;flex-wrap:wrap;gap:12px}.grids figure{text-align:center}\
.grids img{image-rendering:pixelated;width:236px;border:1px solid #ccc}\
.warn{background:#fff3f3;border:1px solid #e0a0a0;padding:.5em 1em}.ok{color:#2a7a2a}\
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}";

/// Renders the report of `run` as HTML.
pub fn render_report(run: &RunDir) -> Result<String> {
    let config: Value = run.config()?;
    let h = read_history(run)?;
    let name = run
        .root()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.root().display().to_string());
    let (model, data) = match RunConfig::from_value(config.clone(), &run.root().join("config.json"))
    {
        Ok(c) => (c.model().to_string(), c.data_name()),
        Err(_) => (
            config
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("unknown model")
                .to_string(),
            config
                .pointer("/data/source")
                .and_then(Value::as_str)
                .unwrap_or("unknown data")
                .to_string(),
        ),
    };
    let total = config.pointer("/schedule/steps").and_then(Value::as_u64);
    let last_step = h.steps.last().map(|(s, _)| *s).unwrap_or(0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t} — run report</title><style>{STYLE}</style></head><body>\n\
         <h1>Run report: {t}</h1>\n<p>{m} on {d}; step {last_step}{of}. \
         Rebuild with <code>gan-cli report {p}</code>.</p>\n",
        t = escape(&name),
        m = escape(&model),
        d = escape(&data),
        of = total.map(|t| format!(" of {t}")).unwrap_or_default(),
        p = escape(&run.root().display().to_string()),
    );

    out.push_str("<h2>Latest numbers</h2>\n");
    if let Some((step, fields)) = h.steps.last() {
        out.push_str("<table class=\"numbers\">\n");
        let _ = writeln!(out, "<tr><th>step</th><td>{step}</td></tr>");
        for (k, v) in fields {
            let _ = writeln!(out, "<tr><th>{}</th><td>{v:.4}</td></tr>", escape(k));
        }
        out.push_str("</table>\n");
    } else {
        out.push_str("<p>No step logged yet.</p>\n");
    }
    match (h.evals.last(), h.translation_evals.last()) {
        (Some((step, r)), _) => {
            out.push_str("<h3>Latest evaluation</h3>\n");
            out.push_str(&eval_table(*step, r));
        }
        (None, Some((step, t))) => {
            out.push_str("<h3>Latest evaluation: G(testA) against the real testB</h3>\n");
            out.push_str(&eval_table(*step, &t.a2b));
            out.push_str("<h3>Latest evaluation: F(testB) against the real testA</h3>\n");
            out.push_str(&eval_table(*step, &t.b2a));
        }
        (None, None) => out.push_str(
            "<p>No evaluation yet (train with <code>--eval-every N</code> or run \
             <code>gan-cli eval</code>).</p>\n",
        ),
    }

    if let Some((step, r)) = h.class_evals.last() {
        out.push_str(&class_table(*step, r));
    }

    out.push_str("<h2>Health</h2>\n");
    let warnings = h.all_warnings();
    if warnings.is_empty() {
        out.push_str(
            "<p class=\"ok\">No warning: no non-finite loss, no saturated discriminator, no \
             drop in class coverage.</p>\n",
        );
    } else {
        out.push_str("<div class=\"warn\"><ul>\n");
        for w in &warnings {
            let _ = writeln!(
                out,
                "<li><b>step {}</b>: {}</li>",
                w.step,
                escape(&w.message)
            );
        }
        out.push_str("</ul></div>\n");
    }

    out.push_str("<h2>Curves</h2>\n<div class=\"charts\">\n");
    let keys: Vec<String> = {
        let mut k: Vec<String> = Vec::new();
        for (_, f) in &h.steps {
            for (name, _) in f {
                if !k.contains(name) {
                    k.push(name.clone());
                }
            }
        }
        k
    };
    let named = |ks: &[&String]| -> Vec<(String, Vec<(f64, f64)>)> {
        ks.iter().map(|k| (k.to_string(), h.series(k))).collect()
    };
    // Charts by the objective's own quantities: a cross-entropy discriminator's probabilities
    // (d_*), a critic's raw scores (critic_*) and its Wasserstein estimate; never a critic score
    // on a probability axis.
    let losses: Vec<&String> = keys.iter().filter(|k| k.starts_with("loss")).collect();
    let d_out: Vec<&String> = keys.iter().filter(|k| k.starts_with("d_")).collect();
    let is_score = |k: &str| k == "critic_real" || k == "critic_fake";
    let critic: Vec<&String> = keys.iter().filter(|k| is_score(k)).collect();
    let others: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with("loss") && !k.starts_with("d_") && !is_score(k))
        .collect();
    if !losses.is_empty() {
        out.push_str(&chart_img("Losses", "loss", named(&losses))?);
    }
    if !d_out.is_empty() {
        out.push_str(&chart_img(
            "Discriminator outputs (probabilities)",
            "mean D",
            named(&d_out),
        )?);
    }
    if !critic.is_empty() {
        out.push_str(&chart_img(
            "Critic scores (raw, not probabilities)",
            "mean f",
            named(&critic),
        )?);
    }
    for k in others {
        let title = match k.as_str() {
            "wasserstein" => "Wasserstein estimate: mean f(x) − mean f(G(z)) (should fall)",
            "penalty" => "Gradient penalty λ·(‖∇f‖ − 1)²",
            "grad_norm" => "Mean ‖∇x̂ f(x̂)‖ (the penalty pulls it to 1)",
            other => other,
        };
        out.push_str(&chart_img(title, k, named(&[k]))?);
    }
    if !h.evals.is_empty() {
        let ev = |f: &dyn Fn(&EvalReport) -> Option<f64>| -> Vec<(f64, f64)> {
            h.evals
                .iter()
                .filter_map(|(s, r)| f(r).map(|v| (*s as f64, v)))
                .collect()
        };
        let n = h.evals.last().map(|(_, r)| r.samples).unwrap_or(0);
        out.push_str(&chart_img(
            &format!("FID ({n} samples)"),
            "FID",
            vec![("FID".into(), ev(&|r| Some(r.fid)))],
        )?);
        out.push_str(&chart_img(
            "Inception Score analogue",
            "IS",
            vec![("IS".into(), ev(&|r| r.inception_score.map(|s| s.mean)))],
        )?);
        out.push_str(&chart_img(
            "Class coverage",
            "classes",
            vec![(
                "covered classes".into(),
                ev(&|r| r.coverage.as_ref().map(|c| c.covered as f64)),
            )],
        )?);
        out.push_str(&chart_img(
            "Class KL vs uniform",
            "nats",
            vec![(
                "KL".into(),
                ev(&|r| r.coverage.as_ref().map(|c| c.kl_uniform)),
            )],
        )?);
        out.push_str(&chart_img(
            "Precision and recall (k = 3)",
            "share",
            vec![
                (
                    "precision".into(),
                    ev(&|r| Some(r.precision_recall.precision)),
                ),
                ("recall".into(), ev(&|r| Some(r.precision_recall.recall))),
            ],
        )?);
        out.push_str(&chart_img(
            "Density and coverage (k = 3)",
            "value",
            vec![
                (
                    "density".into(),
                    ev(&|r| r.density_coverage.map(|d| d.density)),
                ),
                (
                    "coverage".into(),
                    ev(&|r| r.density_coverage.map(|d| d.coverage)),
                ),
            ],
        )?);
    }
    if !h.translation_evals.is_empty() {
        let ev = |f: &dyn Fn(&TranslationScores) -> Option<f64>| -> Vec<(f64, f64)> {
            h.translation_evals
                .iter()
                .filter_map(|(s, r)| f(r).map(|v| (*s as f64, v)))
                .filter(|(_, v)| v.is_finite())
                .collect()
        };
        out.push_str(&chart_img(
            "FID of the translations (evaluator features)",
            "FID",
            vec![
                ("G(testA) vs testB".into(), ev(&|t| Some(t.a2b.fid))),
                ("F(testB) vs testA".into(), ev(&|t| Some(t.b2a.fid))),
            ],
        )?);
        out.push_str(&chart_img(
            "KID of the translations (mean over subsets)",
            "KID",
            vec![
                (
                    "G(testA) vs testB".into(),
                    ev(&|t| t.a2b.kid.map(|k| k.mean)),
                ),
                (
                    "F(testB) vs testA".into(),
                    ev(&|t| t.b2a.kid.map(|k| k.mean)),
                ),
            ],
        )?);
    }
    if !h.class_evals.is_empty() {
        let ev = |f: &dyn Fn(&ClassReport) -> f64| -> Vec<(f64, f64)> {
            h.class_evals
                .iter()
                .map(|(s, r)| (*s as f64, f(r)))
                .collect()
        };
        out.push_str(&chart_img(
            "Accuracy on the class asked for (overall and the lowest class)",
            "share",
            vec![
                ("overall".into(), ev(&|r| r.accuracy)),
                (
                    "lowest class".into(),
                    ev(&|r| r.per_class.iter().map(|c| c.accuracy).fold(1.0, f64::min)),
                ),
            ],
        )?);
        out.push_str(&chart_img(
            "Intra-class FID (mean of the per-class FIDs)",
            "FID",
            vec![("intra-class FID".into(), ev(&|r| r.intra_fid))],
        )?);
    }
    out.push_str("</div>\n");

    out.push_str("<h2>Samples over time</h2>\n");
    let grids = sample_grids(run);
    if grids.is_empty() {
        out.push_str("<p>No sample grid yet.</p>\n");
    } else {
        let shown = spread(&grids, MAX_GRIDS);
        let _ = writeln!(
            out,
            "<p>The same fixed noise at every step ({} of {} grids shown).</p>\n<div class=\"grids\">",
            shown.len(),
            grids.len()
        );
        for (step, p) in shown {
            let bytes = std::fs::read(&p).map_err(|e| ModelError::io(&p, e))?;
            let _ = writeln!(
                out,
                "<figure><img alt=\"samples at step {step}\" src=\"{}\"><figcaption>step {step}</figcaption></figure>",
                data_uri("image/png", &bytes)
            );
        }
        out.push_str("</div>\n");
    }

    out.push_str("<h2>Configuration</h2>\n<pre>");
    let pretty = serde_json::to_string_pretty(&config).unwrap_or_default();
    out.push_str(&escape(&pretty));
    out.push_str("</pre>\n</body></html>\n");
    Ok(out)
}

/// The path of a run's report.
pub fn report_path(run: &RunDir) -> PathBuf {
    run.root().join("report.html")
}

/// Renders the report and writes it atomically to `RUN/report.html`; returns the path.
pub fn write_report(run: &RunDir) -> Result<PathBuf> {
    let html = render_report(run)?;
    let path = report_path(run);
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Whether `path` looks like a report written by [`write_report`] (for tests and tools).
pub fn is_report(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|s| s.starts_with("<!DOCTYPE html>") && s.contains("Run report"))
}
