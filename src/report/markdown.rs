//! `report.md`: the readiness summary for a pull-request comment — the verdict matrix (classes ×
//! models, in words), fleet coverage, then each scorecard's criteria and reasons.

use super::scorecard::{Outcome, Scorecard};
use super::{Exporter, Report, human, human_unit};

pub struct Markdown;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

/// The verdict matrix and coverage, shared by the Markdown report and the terminal summary.
pub fn verdict_matrix(r: &Report) -> String {
    let s = &r.scoring;
    let classes = s.classes();
    let mut out = format!(
        "| model | {} | fleet on-device first | hybrid or better | measured |\n|---|{}---|---|---|\n",
        classes
            .iter()
            .map(|(_, l)| cell(l))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(classes.len())
    );
    for cov in &s.coverage {
        let verdicts: Vec<String> = classes
            .iter()
            .map(|(id, _)| {
                s.scorecards
                    .iter()
                    .find(|c| c.class == *id && c.model == cov.model)
                    .map_or("—".into(), |c| {
                        format!(
                            "**{}**{}, {:.0} % measured",
                            c.verdict.text(),
                            c.score_pct
                                .map_or(String::new(), |p| format!(" ({p:.0} %)")),
                            c.coverage_pct
                        )
                    })
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&cov.model),
            verdicts.join(" | "),
            pct(cov.on_device_share),
            pct(cov.hybrid_or_better_share),
            pct(cov.measured_share)
        ));
    }
    out
}

fn scorecard(s: &Scorecard) -> String {
    let mut out = format!(
        "### {} on {}: {}\n\n",
        cell(&s.model),
        cell(&s.class_label),
        s.verdict.text()
    );
    out.push_str(&format!(
        "Devices: {}. Score: {}. Fleet share: {}. Evidence: {:.0} % of the profile's weight \
         measured (min_coverage {:.0} %); quality {}.\n\n",
        s.devices.join(", "),
        s.score_pct
            .map_or("not measured".into(), |p| format!("{p:.0} %")),
        s.fleet_share.map_or("not set".into(), pct),
        s.coverage_pct,
        s.min_coverage_pct,
        s.quality_source
    ));
    out.push_str("| criterion | measured | threshold | weight | result | note |\n|---|---|---|---|---|---|\n");
    for c in &s.criteria {
        out.push_str(&format!(
            "| {} | {} | {} {} | {} | {} | {} |\n",
            c.criterion.name(),
            c.measured.map_or("—".into(), |v| human_unit(v, c.unit)),
            c.op,
            human_unit(c.threshold, c.unit),
            human(c.weight),
            match c.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => "**FAIL**",
                Outcome::NotApplicable => "N/A",
                Outcome::DoesNotApply => "does not apply",
            },
            if c.warnings.is_empty() {
                cell(&c.reason)
            } else {
                cell(&format!("{} ⚠ noisy: {}", c.reason, c.warnings.join("; ")))
            }
        ));
    }
    out.push('\n');
    for why in &s.reasons {
        out.push_str(&format!("- {}\n", cell(why)));
    }
    out.push('\n');
    out
}

pub fn render(r: &Report) -> String {
    let w = &r.scoring.workload;
    let mut out = format!(
        "# odai readiness: {}\n\n{}\n\nResults: `{}` — {} devices, {} cells (odai {}). Profile: `{}`.\n\n",
        cell(&w.label),
        w.description,
        r.set.dir.display(),
        r.rows
            .iter()
            .map(|x| &x.device)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        r.rows.len(),
        env!("CARGO_PKG_VERSION"),
        w.source
    );
    // Its own line: a review diffing two reports sees the figures change, not this.
    out.push_str(&format!(
        "_{}._\n\n",
        crate::provenance::Provenance::now().line()
    ));
    out.push_str("## Verdicts\n\n");
    out.push_str(&verdict_matrix(r));
    out.push('\n');
    if let Some(b) = &r.scoring.baseline {
        let f = |v: Option<f64>, unit: &str| {
            v.map_or_else(|| "not measured".into(), |x| human_unit(x, unit))
        };
        out.push_str(&format!(
            "## Cloud baseline\n\n`{}` (results `{}`): TTFT p95 {}, decode {}, token p99 {}, failed requests {}.\n\n",
            cell(&b.endpoint),
            b.source,
            f(b.ttft_ms_p95, "ms"),
            f(b.decode_tps_mean, "tok/s"),
            f(b.token_ms_p99, "ms"),
            f(b.failure_rate_pct, "%"),
        ));
    }
    if !r.set.warnings.is_empty() {
        out.push_str("## Left out\n\n");
        for w in &r.set.warnings {
            out.push_str(&format!("- {}\n", cell(w)));
        }
        out.push('\n');
    }
    out.push_str(&quality_section(r));
    out.push_str("## Scorecards\n\n");
    for s in &r.scoring.scorecards {
        out.push_str(&scorecard(s));
    }
    out
}

/// Every `odai quality` record of the results (quality.jsonl), whether or not a criterion of the
/// profile uses it: measured quality is shown, never dropped. Empty when there is none.
pub fn quality_section(r: &Report) -> String {
    if r.set.quality.is_empty() {
        return String::new();
    }
    let f = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), human);
    let mut out = String::from(
        "## Quality (odai quality)\n\n| model | runtime | device | perplexity | ppl Δ vs reference | \
         KLD mean | KLD p99 | top-1 agreement | task accuracy |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for q in &r.set.quality {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&q.model),
            cell(&q.runtime.runtime),
            cell(&q.device),
            f(q.perplexity.as_ref().map(|p| p.ppl)),
            q.kld
                .as_ref()
                .map_or("—".into(), |k| format!("{:+.2} %", k.ppl_delta_pct)),
            f(q.kld.as_ref().map(|k| k.summary.kld_mean)),
            f(q.kld.as_ref().map(|k| k.summary.kld_p99)),
            q.kld.as_ref().map_or("—".into(), |k| format!(
                "{:.1} %",
                k.summary.top1_agreement_pct
            )),
            q.tasks.as_ref().map_or("—".into(), |t| format!(
                "{:.1} % ({}/{})",
                t.accuracy_pct, t.correct, t.tasks
            )),
        ));
    }
    out.push('\n');
    out
}

impl Exporter for Markdown {
    fn files(&self, r: &Report) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![("report.md", render(r).into_bytes())])
    }
}
