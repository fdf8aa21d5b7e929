//! What the coordinator checks in a device's answer before recording it: a worker on a farm
//! device is another machine's process, and its figures decide verdicts. A report for another
//! shape than the cell asked, or with a latency, a rate, a size or an energy that is negative or
//! not finite, is recorded as a failed cell with the reason — never as figures a criterion can
//! pass on.

use crate::bench::cell::Report;

use super::spec::Cell;

/// Why `report` cannot be `cell`'s figures, or `None` when it can.
pub fn check(report: &Report, cell: &Cell) -> Option<String> {
    let p = &report.provenance;
    let shape = [
        ("prompt_tokens", p.prompt_tokens, cell.prompt_tokens),
        ("gen_tokens", p.gen_tokens, cell.gen_tokens),
    ];
    for (what, got, asked) in shape {
        if got != asked {
            return Some(format!("a report for {what} {got}, not the {asked} asked"));
        }
    }
    // 0 threads is `auto`: the device picks.
    if cell.threads != 0 && p.threads != cell.threads {
        return Some(format!(
            "a report for {} threads, not the {} asked",
            p.threads, cell.threads
        ));
    }
    if report.reps.len() > cell.reps as usize {
        return Some(format!(
            "{} measured repetitions for the {} asked",
            report.reps.len(),
            cell.reps
        ));
    }
    for (i, rep) in report.reps.iter().enumerate() {
        let why = non_negative_metrics()
            .find_map(|(name, get)| get(rep).and_then(|x| bad(x).then(|| format!("{name} is {x}"))))
            .or_else(|| {
                rep.token_ms
                    .iter()
                    .position(|&x| bad(x))
                    .map(|k| format!("token_ms[{k}] is {}", rep.token_ms[k]))
            });
        if let Some(why) = why {
            return Some(format!("repetition {}: {why}", i + 1));
        }
    }
    for (metric, _) in non_negative_metrics() {
        let Some(s) = report.summary.get(metric) else {
            continue;
        };
        for (what, x) in [
            ("mean", s.mean),
            ("median", s.median),
            ("min", s.min),
            ("max", s.max),
        ] {
            if bad(x) {
                return Some(format!("the summary's {metric} {what} is {x}"));
            }
        }
    }
    None
}

/// Every repetition metric (the figures criteria read, [`crate::bench::cell::METRICS`]) but
/// power, which may be negative where a meter counts charge flowing in: times, rates, shares,
/// sizes and energy cannot be.
fn non_negative_metrics()
-> impl Iterator<Item = (&'static str, fn(&crate::protocol::RepResult) -> Option<f64>)> {
    crate::bench::cell::METRICS
        .iter()
        .filter(|(name, _, _)| *name != "mean_power_w")
        .map(|(name, _, get)| (*name, *get))
}

/// A figure no measurement gives: negative, or not finite.
fn bad(x: f64) -> bool {
    !x.is_finite() || x < 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::results::Record;

    /// A real record of the report fixture (tests/fixtures/results/three-classes).
    fn record() -> Record {
        let line = include_str!("../../tests/fixtures/results/three-classes/results.jsonl")
            .lines()
            .next()
            .unwrap();
        crate::sysroot::from_contract_json(serde_json::from_str(line).unwrap()).unwrap()
    }

    #[test]
    fn regression_a_worker_reporting_impossible_figures_is_not_recorded_as_ok() {
        // Found in review: a worker reporting negative latencies, or provenance for another
        // shape than the cell asked, was recorded and could pass criteria.
        let r = record();
        let (report, cell) = (r.report.as_ref().unwrap(), &r.cell);
        assert_eq!(check(report, cell), None);

        let mut bad = serde_json::to_value(report).unwrap();
        bad["reps"][1]["ttft_ms"] = serde_json::json!(-5.0);
        let bad: Report = serde_json::from_value(bad).unwrap();
        assert_eq!(check(&bad, cell).unwrap(), "repetition 2: ttft_ms is -5");

        let mut other = serde_json::to_value(report).unwrap();
        other["provenance"]["prompt_tokens"] = serde_json::json!(8);
        let other: Report = serde_json::from_value(other).unwrap();
        assert_eq!(
            check(&other, cell).unwrap(),
            "a report for prompt_tokens 8, not the 32 asked"
        );
    }
}
