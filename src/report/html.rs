//! `report.html`: one self-contained page — styles inline, charts as inline SVG (plotters), no
//! network, fonts or external scripts — with the verdict matrix, fleet coverage, charts by class
//! and device, every scorecard, and the measurements. Verdicts and results are written in words
//! (and marked with symbols), so the page reads the same without colour.

use super::charts;
use super::measurements::Row;
use super::scorecard::{Outcome, Verdict};
use super::{Exporter, Report, human, human_unit};

pub struct Html;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; color: #1a1a1a; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.v-on { background: #d8f5d0; } .v-hybrid { background: #fff2c2; } .v-cloud { background: #ffd9d6; } .v-none { background: #e4e4e4; }
.r-PASS { background: #e6f7e1; } .r-FAIL { background: #ffe3e0; font-weight: bold; } .r-NA { color: #555; } .noisy { color: #8a4b00; }
.meta { color: #444; } .chart { margin: 0.6rem 0; } .chart svg { max-width: 100%; height: auto; } .small { font-size: 0.8rem; color: #555; }
ul.reasons { margin-top: 0.2rem; }
"#;

/// Filters the measurements table by a typed word; nothing else runs.
const SCRIPT: &str = r#"
document.getElementById('filter').addEventListener('input', function (e) {
  var word = e.target.value.toLowerCase();
  document.querySelectorAll('#measurements tbody tr').forEach(function (tr) {
    tr.style.display = tr.textContent.toLowerCase().indexOf(word) >= 0 ? '' : 'none';
  });
});
"#;

fn verdict_cell(v: Verdict, score: Option<f64>, coverage_pct: f64) -> String {
    let (class, mark) = match v {
        Verdict::OnDeviceFirst => ("v-on", "✔"),
        Verdict::Hybrid => ("v-hybrid", "◐"),
        Verdict::CloudOnly => ("v-cloud", "✖"),
        Verdict::InsufficientEvidence => ("v-none", "?"),
    };
    format!(
        "<td class=\"{class}\">{mark} {}{} <span class=\"small\">{coverage_pct:.0} % measured</span></td>",
        v.text(),
        score.map_or(String::new(), |p| format!(" ({p:.0} %)"))
    )
}

fn chart(svg: Result<String, String>) -> String {
    match svg {
        Ok(s) => format!("<div class=\"chart\">{s}</div>\n"),
        Err(e) => format!("<p class=\"small\">chart not drawn: {}</p>\n", esc(&e)),
    }
}

fn label(r: &Row) -> String {
    format!(
        "{} · {} · {}",
        r.class.as_deref().unwrap_or("unclassified"),
        r.device,
        r.model.trim_start_matches("synthetic:")
    )
}

fn charts_section(r: &Report) -> String {
    let mut out = String::from("<h2>Charts</h2>\n");
    let w = &r.scoring.workload;
    // The rows the scorecards read: per device and model, scorecard::main_row's choice.
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<&Row>> = Default::default();
    for row in &r.rows {
        groups
            .entry((row.device.as_str(), row.model.as_str()))
            .or_default()
            .push(row);
    }
    let mut mains: Vec<&Row> = groups
        .values()
        .filter(|rows| rows.iter().any(|r| r.is_tensor() == w.tensor))
        .filter_map(|rows| {
            if w.tensor {
                super::scorecard::main_tensor_row(rows)
            } else {
                super::scorecard::main_row(rows, w)
            }
        })
        .collect();
    mains.sort_by_key(|m| (m.class.clone(), m.model.clone(), m.device.clone()));
    let items = |metric: &str| -> Vec<(String, f64)> {
        mains
            .iter()
            .filter_map(|m| m.get(metric).map(|v| (label(m), v)))
            .collect()
    };
    if w.tensor {
        // A tensor workload's figures: the frame's compute, the paced run's misses and duty.
        for (title, unit, metric) in [
            (
                "Inference latency by device class (p99)",
                "ms",
                "inference_ms_p99",
            ),
            (
                "Frames missing their deadline at the input rate",
                "%",
                "frame_deadline_miss_pct",
            ),
            (
                "CPU duty cycle at the input rate",
                "% of a core",
                "cpu_duty_pct",
            ),
        ] {
            out.push_str(&chart(charts::bars(title, unit, &items(metric))));
        }
        return out;
    }
    out.push_str(&chart(charts::bars(
        "Time to first token by device class (p95 over repetitions)",
        "ms",
        &items("ttft_ms_p95"),
    )));
    // A prompt-length sweep: TTFT against prompt length per class, with the budget line (what
    // `odai route build` solves).
    let curves = super::routing::curves(&r.rows);
    let budget = super::routing::ttft_budget(w);
    let mut classes: Vec<&String> = curves.keys().map(|k| &k.0).collect();
    classes.dedup();
    for class in classes {
        let series: Vec<(String, Vec<(f64, f64)>)> = curves
            .iter()
            .filter(|((c, _, _), pts)| c == class && pts.len() >= 2)
            .map(|((_, m, rt), pts)| {
                (
                    format!("{} on {rt}", m.trim_start_matches("synthetic:")),
                    pts.iter()
                        .map(|p| (f64::from(p.prompt_tokens), p.ttft_ms_p95))
                        .collect(),
                )
            })
            .collect();
        if !series.is_empty() {
            out.push_str(&chart(charts::ttft_curve(
                &format!("TTFT p95 against prompt length: {class} (worst device)"),
                &series,
                budget,
            )));
        }
    }
    // Decode speed against the context it runs at (depth + prompt), per class: how a model
    // slows as the conversation grows — llama-bench's `tg128 @ dD` as a curve.
    for (class, series) in depth_curves(&r.rows) {
        out.push_str(&chart(charts::depth_curve(
            &format!("Decode speed against context: {class} (worst device)"),
            &series,
        )));
    }
    out.push_str(&chart(charts::bars(
        "Decode speed by device class (mean over repetitions)",
        "tok/s",
        &items("decode_tps_mean"),
    )));
    for m in mains.iter().filter(|m| !m.token_ms.is_empty()).take(8) {
        out.push_str(&chart(charts::latency_histogram(
            &format!("Per-token latency: {}", label(m)),
            &m.token_ms,
        )));
    }
    for (rec, row) in r.set.records.iter().zip(&r.rows) {
        let Some(s) = rec.report.as_ref().and_then(|x| x.sustained.as_ref()) else {
            continue;
        };
        let points: Vec<(f64, f64, Option<f64>)> = s
            .windows
            .iter()
            .map(|w| (w.t_s, w.decode_tps, w.max_temp_c))
            .collect();
        if points.len() >= 2 {
            out.push_str(&chart(charts::sustained(
                &format!(
                    "Sustained decode and temperature: {} ({:.0} s)",
                    label(row),
                    s.duration_s
                ),
                &points,
            )));
        }
    }
    out
}

pub fn render(r: &Report) -> String {
    let s = &r.scoring;
    let w = &s.workload;
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>odai readiness: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&w.label)
    );
    out.push_str(&format!(
        "<h1>Readiness: {}</h1>\n<p>{}</p>\n<p class=\"meta\">Results <code>{}</code>, {} cells; profile <code>{}</code>; {}.</p>\n",
        esc(&w.label),
        esc(&w.description),
        esc(&r.set.dir.display().to_string()),
        r.rows.len(),
        esc(&w.source),
        esc(&crate::provenance::Provenance::now().line())
    ));
    // Verdict matrix.
    let classes = s.classes();
    out.push_str("<h2>Verdicts</h2>\n<table id=\"verdicts\">\n<thead><tr><th>model</th>");
    for (_, l) in &classes {
        out.push_str(&format!("<th>{}</th>", esc(l)));
    }
    out.push_str("<th>fleet on-device first</th><th>hybrid or better</th><th>fleet measured</th></tr></thead>\n<tbody>\n");
    for cov in &s.coverage {
        out.push_str(&format!("<tr><td>{}</td>", esc(&cov.model)));
        for (id, _) in &classes {
            match s
                .scorecards
                .iter()
                .find(|c| c.class == *id && c.model == cov.model)
            {
                Some(c) => out.push_str(&verdict_cell(c.verdict, c.score_pct, c.coverage_pct)),
                None => out.push_str("<td>—</td>"),
            }
        }
        out.push_str(&format!(
            "<td>{:.0} %</td><td>{:.0} %</td><td>{:.0} %</td></tr>\n",
            cov.on_device_share * 100.0,
            cov.hybrid_or_better_share * 100.0,
            cov.measured_share * 100.0
        ));
    }
    out.push_str("</tbody></table>\n<p class=\"small\">✔ on-device first · ◐ hybrid · ✖ cloud-only · ? insufficient evidence (less of the profile's weight measured than its min_coverage); the score is the passed share of the measured criteria' weight, ‘measured’ the share of the profile's weight with a measurement behind it.</p>\n");
    if !r.set.warnings.is_empty() {
        out.push_str("<h2>Left out</h2>\n<ul>\n");
        for w in &r.set.warnings {
            out.push_str(&format!("<li>{}</li>\n", esc(w)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str(&charts_section(r));
    if !r.set.quality.is_empty() {
        // Every odai quality record, used by a criterion or not: measured quality is shown.
        out.push_str("<h2>Quality (odai quality)</h2>\n<table><thead><tr><th>model</th><th>runtime</th><th>device</th><th>perplexity</th><th>ppl Δ vs reference</th><th>KLD mean</th><th>KLD p99</th><th>top-1 agreement</th><th>task accuracy</th></tr></thead><tbody>\n");
        let f = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), human);
        for q in &r.set.quality {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&q.model),
                esc(&q.runtime.runtime),
                esc(&q.device),
                f(q.perplexity.as_ref().map(|p| p.ppl)),
                q.kld.as_ref().map_or("—".into(), |k| format!("{:+.2} %", k.ppl_delta_pct)),
                f(q.kld.as_ref().map(|k| k.summary.kld_mean)),
                f(q.kld.as_ref().map(|k| k.summary.kld_p99)),
                q.kld.as_ref().map_or("—".into(), |k| format!("{:.1} %", k.summary.top1_agreement_pct)),
                q.tasks.as_ref().map_or("—".into(), |t| format!("{:.1} % ({}/{})", t.accuracy_pct, t.correct, t.tasks)),
            ));
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("<h2>Scorecards</h2>\n");
    for c in &s.scorecards {
        out.push_str(&format!(
            "<h3>{} on {}: {}</h3>\n<p class=\"meta\">Devices: {}. Fleet share: {}. Evidence: {:.0} % of the profile's weight measured (min_coverage {:.0} %); quality {}.</p>\n",
            esc(&c.model),
            esc(&c.class_label),
            c.verdict.text(),
            esc(&c.devices.join(", ")),
            c.fleet_share
                .map_or("not set".into(), |f| format!("{:.0} %", f * 100.0)),
            c.coverage_pct,
            c.min_coverage_pct,
            c.quality_source
        ));
        out.push_str("<table class=\"scorecard\"><thead><tr><th>criterion</th><th>measured</th><th>threshold</th><th>weight</th><th>result</th><th>note</th></tr></thead><tbody>\n");
        for k in &c.criteria {
            let (cls, mark) = match k.outcome {
                Outcome::Pass => ("r-PASS", "✔ PASS"),
                Outcome::Fail => ("r-FAIL", "✖ FAIL"),
                Outcome::NotApplicable => ("r-NA", "– N/A"),
                Outcome::DoesNotApply => ("r-NA", "○ does not apply"),
            };
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td class=\"{cls}\">{mark}</td><td>{}</td></tr>\n",
                k.criterion.name(),
                k.measured.map_or("—".into(), |v| esc(&human_unit(v, k.unit))),
                k.op,
                esc(&human_unit(k.threshold, k.unit)),
                human(k.weight),
                if k.warnings.is_empty() {
                    esc(&k.reason)
                } else {
                    format!(
                        "{} <span class=\"noisy\">⚠ noisy: {}</span>",
                        esc(&k.reason),
                        esc(&k.warnings.join("; "))
                    )
                }
            ));
        }
        out.push_str("</tbody></table>\n<ul class=\"reasons\">\n");
        for why in &c.reasons {
            out.push_str(&format!("<li>{}</li>\n", esc(why)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Measurements</h2>\n<p><label>Filter rows: <input id=\"filter\" type=\"search\" placeholder=\"device, model, status…\"></label></p>\n");
    out.push_str("<table id=\"measurements\"><thead><tr><th>device</th><th>class</th><th>model</th><th>threads</th><th>p</th><th>n</th><th>status</th><th>TTFT p95 ms</th><th>decode tok/s</th><th>token p99 ms</th><th>peak RSS MiB</th><th>note</th></tr></thead><tbody>\n");
    for row in &r.rows {
        let v = |m: &str| row.get(m).map_or("—".into(), human);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&row.device),
            esc(row.class.as_deref().unwrap_or("—")),
            esc(&row.model),
            row.threads,
            row.prompt_tokens,
            row.gen_tokens,
            esc(&row.status),
            v("ttft_ms_p95"),
            v("decode_tps_mean"),
            v("token_ms_p99"),
            v("peak_rss_mib"),
            esc(row.reason.as_deref().unwrap_or(""))
        ));
    }
    out.push_str("</tbody></table>\n");
    out.push_str(&format!("<script>{SCRIPT}</script>\n</body>\n</html>\n"));
    out
}

impl Exporter for Html {
    fn files(&self, r: &Report) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![("report.html", render(r).into_bytes())])
    }
}

/// A named line of (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// Per class, each model × runtime × KV cache type's decode tok/s (mean) at each context it
/// decoded at — depth plus prompt — the class's slowest device at each point; series of two
/// points or more. Cold, sustained, loaded, tensor and endpoint cells are left out.
fn depth_curves(
    rows: &[super::measurements::Row],
) -> std::collections::BTreeMap<String, Vec<Series>> {
    use std::collections::BTreeMap;
    let mut by: BTreeMap<(String, String), BTreeMap<u32, f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r.is_ok()
            && !r.is_tensor()
            && r.runtime != "openai"
            && !r.cold
            && r.sustained_s.is_none()
            && r.load == "none"
    }) {
        let Some(tps) = r.get("decode_tps_mean") else {
            continue;
        };
        let class = r.class.clone().unwrap_or_else(|| "unclassified".into());
        let kv = r
            .kv_cache
            .as_ref()
            .map_or_else(String::new, |k| format!(", {k} cache"));
        let name = format!(
            "{} on {}{kv}",
            r.model.trim_start_matches("synthetic:"),
            r.runtime
        );
        let at = by
            .entry((class, name))
            .or_default()
            .entry(r.depth + r.prompt_tokens)
            .or_insert(f64::INFINITY);
        *at = at.min(tps);
    }
    let mut out: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for ((class, name), pts) in by {
        if pts.len() >= 2 {
            out.entry(class).or_default().push((
                name,
                pts.into_iter().map(|(x, y)| (f64::from(x), y)).collect(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::routing::tests::row;

    /// Decode speed against the context it ran at: one series per model × runtime × cache type,
    /// the class's slowest device at each context (depth + prompt), single points left out.
    #[test]
    fn depth_curves_follow_the_decode_context_and_the_slowest_device() {
        let at = |device: &str, p: u32, depth: u32, tps: f64, kv: Option<&str>| {
            let mut r = row("phone", device, p, 100.0, 10.0, 300.0);
            r.depth = depth;
            r.kv_cache = kv.map(str::to_owned);
            let i = super::super::measurements::METRICS
                .iter()
                .position(|m| *m == "decode_tps_mean")
                .unwrap();
            r.values[i] = Some(tps);
            r
        };
        let rows = [
            at("a", 512, 0, 20.0, Some("f16")),
            at("b", 512, 0, 18.0, Some("f16")),
            at("a", 512, 4096, 12.0, Some("f16")),
            at("a", 512, 4096, 14.0, Some("q8_0")),
        ];
        let c = depth_curves(&rows);
        assert_eq!(
            c["phone"],
            [(
                "m.gguf on odai, f16 cache".to_owned(),
                vec![(512.0, 18.0), (4608.0, 12.0)]
            )]
        );
    }
}
