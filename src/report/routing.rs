//! Routing rules from evidence (`odai route build`): from a prompt-length sweep, TTFT as a
//! function of prompt length per device class × model × runtime, fitted by least squares as a
//! line (`ttft_ms_p95 ≈ a + b·p`: prefill's matrix products grow linearly with the prompt) or,
//! with four or more prompt lengths, a parabola (`a + b·p + c·p²`: attention's share grows with
//! the square) where the curvature is real — it must be upward and cut the line's RMSE by a
//! quarter, so three points never get an exact, meaningless fit. The form and its error are
//! written beside the rule, and the budgets are solved on it:
//!
//! - `prompt_tokens_max`: the largest prompt whose fitted TTFT p95, plus the fit's worst
//!   under-estimate on the measured cells, is within the TTFT budget — never past the longest
//!   prompt measured (a rule with no cell behind it is not written);
//! - `gen_tokens_max`: at the workload's prompt, the most tokens whose TTFT + (n − 1) × token
//!   latency p95 is within the total-latency budget;
//! - `headroom_bytes_min`: the largest peak memory a cell of the model needed on the class: with
//!   less free memory than that, the model no longer fits.
//!
//! The document (`routing.json`, docs/routing-json.md) is explicit, so a product can apply it
//! and support can say why a request went local or to the cloud (`odai route explain`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::measurements::Row;
use super::scorecard::is_endpoint;
use super::workload::{Criterion, Workload};

pub const SCHEMA_VERSION: u32 = 1;

/// The fewest distinct prompt lengths a TTFT fit is made from.
pub const MIN_PROMPT_LENGTHS: usize = 3;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Routing {
    pub schema_version: u32,
    pub odai_version: String,
    /// The results directory the evidence comes from.
    pub source: String,
    pub workload: WorkloadBudget,
    /// Per class, in order of preference (the longest prompt limit first): the first rule whose
    /// conditions all hold routes the request local.
    pub rules: Vec<Rule>,
    /// Class × model × runtime combinations no rule was written for, and why.
    pub not_written: Vec<NotWritten>,
    /// What happens when no rule fires.
    pub otherwise: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkloadBudget {
    pub id: String,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// The profile's ttft_ms_p95 threshold.
    pub ttft_budget_ms: f64,
    /// The profile's total_latency_ms, when it has one.
    pub total_budget_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub class: String,
    pub model: String,
    pub runtime: String,
    /// Route local when every condition holds.
    pub local_if: Conditions,
    /// The rule in words: "local if class = laptop and prompt_tokens ≤ 1130 and …".
    pub text: String,
    pub evidence: Evidence,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Conditions {
    pub prompt_tokens_max: u32,
    /// At the workload's prompt length; `odai route explain` solves it for the request's.
    pub gen_tokens_max: Option<u32>,
    pub headroom_bytes_min: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Evidence {
    pub ttft_fit: Fit,
    /// The worst per-token latency p95 among the class's cells of the model, ms (what the
    /// generation limit is solved with), and the cells it comes from.
    pub token_ms_p95: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// The longest generation measured among those cells: no generation limit goes past it
    /// (absent in files from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_tokens_measured: Option<u32>,
    pub notes: Vec<String>,
}

/// TTFT p95 against prompt length, least squares.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fit {
    pub form: String,
    pub intercept_ms: f64,
    pub ms_per_token: f64,
    /// The parabola's `c` (ms per token²); 0 for a line.
    #[serde(default)]
    pub ms_per_token2: f64,
    /// The fit's error on the measured points.
    pub rmse_ms: f64,
    /// The largest amount the fit under-estimates a measured point (0 if it never does): added
    /// to the fitted TTFT before it is compared with the budget.
    pub max_under_ms: f64,
    pub r2: Option<f64>,
    pub points: Vec<Point>,
}

impl Fit {
    /// The fitted TTFT p95 plus the fit's worst under-estimate, only inside the measured range:
    /// `None` past the longest prompt measured (no evidence there); below the shortest, the
    /// shortest's figure (TTFT grows with the prompt, so that bounds it); never negative.
    pub fn bound_at(&self, prompt_tokens: u32) -> Option<f64> {
        let lo = self.points.iter().map(|p| p.prompt_tokens).min()?;
        let hi = self.points.iter().map(|p| p.prompt_tokens).max()?;
        (prompt_tokens <= hi)
            .then(|| (self.at(f64::from(prompt_tokens.max(lo))) + self.max_under_ms).max(0.0))
    }

    pub fn at(&self, prompt_tokens: f64) -> f64 {
        self.intercept_ms
            + self.ms_per_token * prompt_tokens
            + self.ms_per_token2 * prompt_tokens * prompt_tokens
    }

    /// The largest prompt length whose fitted TTFT, plus `margin`, is within `budget`
    /// (infinite where TTFT does not grow with the prompt).
    pub fn solve(&self, budget: f64, margin: f64) -> f64 {
        let (a, b, c) = (
            self.intercept_ms + margin - budget,
            self.ms_per_token,
            self.ms_per_token2,
        );
        if c > 0.0 {
            let disc = b * b - 4.0 * c * a;
            if disc < 0.0 {
                return f64::NEG_INFINITY;
            }
            ((-b + disc.sqrt()) / (2.0 * c)).floor()
        } else if b > 0.0 {
            (-a / b).floor()
        } else {
            f64::INFINITY
        }
    }
}

/// The most tokens a request may generate when its first token takes `ttft_ms` and each further
/// one `token_ms`, within `total_ms`: TTFT + (n − 1) × token ≤ total (0 when TTFT alone is over).
pub fn gen_limit(total_ms: f64, ttft_ms: f64, token_ms: f64) -> u32 {
    (((total_ms - ttft_ms) / token_ms).floor() + 1.0).clamp(0.0, f64::from(u32::MAX)) as u32
}

/// A measured prompt length: the class's worst device there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    pub prompt_tokens: u32,
    pub ttft_ms_p95: f64,
    pub device: String,
    pub cell_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NotWritten {
    pub class: String,
    pub model: String,
    pub runtime: String,
    pub why: String,
}

/// Least squares of `y = a + b x`; `None` with fewer than two distinct x.
pub fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if points.len() < 2 || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

/// Least squares of `y = a + b x + c x²`, through the normal equations (Cramer's rule on the
/// 3×3 system, with x scaled to 1 for conditioning); `None` with fewer than four distinct x.
pub fn fit_parabola(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    if xs.len() < 4 {
        return None;
    }
    let scale = xs.last().copied().filter(|v| *v > 0.0)?;
    let mut s = [0.0f64; 5];
    let mut t = [0.0f64; 3];
    for &(x, y) in points {
        let u = x / scale;
        let mut pow = 1.0;
        for k in 0..5 {
            s[k] += pow;
            if k < 3 {
                t[k] += pow * y;
            }
            pow *= u;
        }
    }
    let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    if d.abs() < 1e-12 {
        return None;
    }
    let solve = |col: usize| {
        let mut mm = m;
        for (r, row) in mm.iter_mut().enumerate() {
            row[col] = t[r];
        }
        det(&mm) / d
    };
    let (a, b, c) = (solve(0), solve(1), solve(2));
    Some((a, b / scale, c / (scale * scale)))
}

/// The curves a report draws: per class × model × runtime, TTFT p95 at each measured prompt.
pub type Curves = BTreeMap<(String, String, String), Vec<Point>>;

/// Every class × model × runtime's measured TTFT p95 by prompt length: warm, unloaded,
/// successful language-model cells on devices (not endpoints); per prompt length the class's
/// worst device.
pub fn curves(rows: &[Row]) -> Curves {
    let mut by: Curves = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r.is_ok()
            && !r.is_tensor()
            && !is_endpoint(r)
            && !r.cold
            && r.sustained_s.is_none()
            && r.load == "none"
            // A prompt at a depth (`-d`) waits on the tokens before it: another curve.
            && r.depth == 0
    }) {
        let Some(ttft) = r.get("ttft_ms_p95") else {
            continue;
        };
        let key = (
            r.class.clone().unwrap_or_else(|| "unclassified".into()),
            r.model.clone(),
            r.runtime.clone(),
        );
        let pts = by.entry(key).or_default();
        match pts.iter_mut().find(|p| p.prompt_tokens == r.prompt_tokens) {
            Some(p) if p.ttft_ms_p95 >= ttft => {}
            Some(p) => {
                *p = Point {
                    prompt_tokens: r.prompt_tokens,
                    ttft_ms_p95: ttft,
                    device: r.device.clone(),
                    cell_id: r.cell_id.clone(),
                }
            }
            None => pts.push(Point {
                prompt_tokens: r.prompt_tokens,
                ttft_ms_p95: ttft,
                device: r.device.clone(),
                cell_id: r.cell_id.clone(),
            }),
        }
    }
    for pts in by.values_mut() {
        pts.sort_by_key(|p| p.prompt_tokens);
    }
    by
}

/// The TTFT budget a workload sets, if it sets one.
pub fn ttft_budget(w: &Workload) -> Option<f64> {
    w.thresholds
        .iter()
        .find(|t| t.criterion == Criterion::TtftMsP95)
        .map(|t| t.limit)
}

/// Builds the rules; errors only when the workload has no TTFT budget to solve for.
pub fn build(rows: &[Row], w: &Workload, source: &str) -> Result<Routing, String> {
    if w.tensor {
        return Err(format!(
            "{} is a tensor workload: routing rules solve a language workload's TTFT and latency \
             budgets",
            w.id
        ));
    }
    let budget = ttft_budget(w).ok_or_else(|| {
        format!(
            "the workload {} has no ttft_ms_p95 criterion: routing rules solve for a TTFT budget",
            w.id
        )
    })?;
    let mut rules = Vec::new();
    let mut not_written = Vec::new();
    for ((class, model, runtime), pts) in curves(rows) {
        let skip = |why: String| NotWritten {
            class: class.clone(),
            model: model.clone(),
            runtime: runtime.clone(),
            why,
        };
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (f64::from(p.prompt_tokens), p.ttft_ms_p95))
            .collect();
        // Two points always fit a line exactly (RMSE 0) and say nothing about its error: a
        // rule needs three prompt lengths at least.
        if pts.len() < MIN_PROMPT_LENGTHS {
            not_written.push(skip(format!(
                "{} prompt length(s) measured ({}): a fit needs cells at {MIN_PROMPT_LENGTHS} or \
                 more prompt_tokens (e.g. prompt_tokens = [128, 512, 1024] in the matrix)",
                pts.len(),
                pts.iter()
                    .map(|p| p.prompt_tokens.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            continue;
        }
        let Some((a, b)) = fit_line(&xy) else {
            continue;
        };
        if b <= 0.0 {
            not_written.push(skip(format!(
                "TTFT p95 does not increase with the prompt across the measured lengths ({}): \
                 the cells are noise-dominated; measure longer prompts or more repetitions",
                pts.iter()
                    .map(|p| format!("{} tokens {:.0} ms", p.prompt_tokens, p.ttft_ms_p95))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            continue;
        }
        let errors = |f: &dyn Fn(f64) -> f64| -> (Vec<f64>, f64) {
            let resid: Vec<f64> = xy.iter().map(|(x, y)| y - f(*x)).collect();
            let rmse = (resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64).sqrt();
            (resid, rmse)
        };
        let (line_resid, line_rmse) = errors(&|x| a + b * x);
        // A parabola only where the curvature is real: upward, and a quarter less error.
        let parabola = fit_parabola(&xy)
            .filter(|&(_, _, c)| c > 0.0)
            .and_then(|(qa, qb, qc)| {
                let (resid, rmse) = errors(&|x| qa + qb * x + qc * x * x);
                (rmse < 0.75 * line_rmse).then_some((qa, qb, qc, resid, rmse))
            });
        let (fa, fb, fc, resid, rmse, form) = match parabola {
            Some((qa, qb, qc, resid, rmse)) => (
                qa,
                qb,
                qc,
                resid,
                rmse,
                "ttft_ms_p95 = intercept_ms + ms_per_token × p + ms_per_token2 × p² (least \
                 squares; the line's RMSE was higher)",
            ),
            None => (
                a,
                b,
                0.0,
                line_resid,
                line_rmse,
                "ttft_ms_p95 = intercept_ms + ms_per_token × prompt_tokens (least squares)",
            ),
        };
        let max_under = resid.iter().copied().fold(0.0, f64::max);
        let my = xy.iter().map(|p| p.1).sum::<f64>() / xy.len() as f64;
        let sst: f64 = xy.iter().map(|p| (p.1 - my).powi(2)).sum();
        let r2 = (sst > 0.0).then(|| 1.0 - resid.iter().map(|r| r * r).sum::<f64>() / sst);
        let fit = Fit {
            form: form.into(),
            intercept_ms: fa,
            ms_per_token: fb,
            ms_per_token2: fc,
            rmse_ms: rmse,
            max_under_ms: max_under,
            r2,
            points: pts.clone(),
        };
        let longest = pts.iter().map(|p| p.prompt_tokens).max().unwrap_or(0);
        let mut notes = Vec::new();
        // The largest prompt the fit (made pessimistic by its worst under-estimate) allows.
        let solved = fit.solve(budget, max_under);
        let measured_ok: Vec<&Point> = pts.iter().filter(|p| p.ttft_ms_p95 <= budget).collect();
        if measured_ok.is_empty() || solved < f64::from(pts[0].prompt_tokens) {
            not_written.push(skip(format!(
                "TTFT p95 is over the {} ms budget at every measured prompt length (shortest {} \
                 tokens: {:.0} ms on {})",
                budget, pts[0].prompt_tokens, pts[0].ttft_ms_p95, pts[0].device
            )));
            continue;
        }
        let prompt_max = if solved >= f64::from(longest) {
            if solved.is_finite() {
                notes.push(format!(
                    "the fit allows {solved:.0} prompt tokens; capped at the longest prompt \
                     measured ({longest}): measure longer prompts to raise it"
                ));
            } else {
                notes.push(format!(
                    "TTFT does not grow with the prompt in the measured range; capped at the \
                     longest prompt measured ({longest})"
                ));
            }
            longest
        } else {
            solved as u32
        };
        let class_rows: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.is_ok()
                    && r.class.as_deref().unwrap_or("unclassified") == class
                    && r.model == model
                    && r.runtime == runtime
                    && !r.cold
                    && r.sustained_s.is_none()
                    && r.load == "none"
            })
            .collect();
        let token_ms_p95 = class_rows
            .iter()
            .filter_map(|r| {
                if r.token_ms.is_empty() {
                    None
                } else {
                    Some(crate::bench::stats::percentile(&r.token_ms, 95.0))
                }
            })
            .reduce(f64::max);
        let peak = class_rows
            .iter()
            .filter_map(|r| r.get("peak_rss_mib"))
            .reduce(f64::max)
            .map(|m| (m * 1048576.0) as u64);
        let gen_measured = class_rows.iter().map(|r| r.gen_tokens).max();
        let gen_max = match (
            w.total_latency_ms,
            token_ms_p95,
            fit.bound_at(w.prompt_tokens),
        ) {
            (Some(_), Some(_), None) => {
                notes.push(format!(
                    "the workload's {} prompt tokens are past the longest prompt measured \
                     ({longest}): the generation limit is not derived",
                    w.prompt_tokens
                ));
                None
            }
            (Some(total), Some(t), Some(ttft)) if t > 0.0 => {
                let mut n = gen_limit(total, ttft, t);
                if n == 0 {
                    notes.push(format!(
                        "at the workload's {} prompt tokens TTFT alone ({ttft:.0} ms) takes the \
                         {total} ms total budget",
                        w.prompt_tokens
                    ));
                }
                if let Some(m) = gen_measured.filter(|&m| n > m) {
                    notes.push(format!(
                        "the budget allows {n} generated tokens; capped at the longest generation \
                         measured ({m}): measure longer generations to raise it"
                    ));
                    n = m;
                }
                Some(n)
            }
            (Some(_), _, _) => {
                notes.push(
                    "no per-token latencies in the cells: the generation limit is not derived"
                        .into(),
                );
                None
            }
            (None, _, _) => {
                notes.push(
                    "the workload sets no total_latency_ms: the generation limit is not derived"
                        .into(),
                );
                None
            }
        };
        if gen_max == Some(0) {
            not_written.push(skip(notes.last().cloned().unwrap_or_default()));
            continue;
        }
        let mut text = format!("local if class = {class} and prompt_tokens ≤ {prompt_max}");
        if let Some(g) = gen_max {
            text.push_str(&format!(
                " and gen_tokens ≤ {g} (at {} prompt tokens)",
                w.prompt_tokens
            ));
        }
        if let Some(p) = peak {
            text.push_str(&format!(" and free memory ≥ {}", crate::units::bytes(p)));
        }
        text.push_str(&format!(" — {model} on {runtime}"));
        rules.push(Rule {
            class,
            model,
            runtime,
            local_if: Conditions {
                prompt_tokens_max: prompt_max,
                gen_tokens_max: gen_max,
                headroom_bytes_min: peak,
            },
            text,
            evidence: Evidence {
                ttft_fit: fit,
                token_ms_p95,
                peak_rss_bytes: peak,
                gen_tokens_measured: gen_measured,
                notes,
            },
        });
    }
    // Per class, the rule that takes the longest prompts first: explain tries them in order.
    rules.sort_by(|a, b| {
        a.class.cmp(&b.class).then(
            b.local_if
                .prompt_tokens_max
                .cmp(&a.local_if.prompt_tokens_max),
        )
    });
    Ok(Routing {
        schema_version: SCHEMA_VERSION,
        odai_version: env!("CARGO_PKG_VERSION").into(),
        source: source.to_owned(),
        workload: WorkloadBudget {
            id: w.id.clone(),
            prompt_tokens: w.prompt_tokens,
            gen_tokens: w.gen_tokens,
            ttft_budget_ms: budget,
            total_budget_ms: w.total_latency_ms,
        },
        rules,
        not_written,
        otherwise: "cloud".into(),
    })
}

/// A request to route.
pub struct Request<'a> {
    pub class: &'a str,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub headroom_bytes: Option<u64>,
}

/// Which way a request goes and why.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Decision {
    /// `local` or `cloud`.
    pub route: String,
    /// The rule that fired (its index in `rules`), when one did.
    pub rule: Option<usize>,
    pub model: Option<String>,
    pub runtime: Option<String>,
    /// Each rule of the class tried, with each condition's check.
    pub checks: Vec<String>,
}

impl Routing {
    /// The first rule of the request's class whose conditions all hold, or the cloud.
    pub fn explain(&self, q: &Request) -> Decision {
        let mut checks = Vec::new();
        for (i, r) in self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.class == q.class)
        {
            let c = &r.local_if;
            let fit = &r.evidence.ttft_fit;
            let ttft = fit.bound_at(q.prompt_tokens);
            let mut ok = true;
            let mut why = Vec::new();
            let p_ok = q.prompt_tokens <= c.prompt_tokens_max;
            ok &= p_ok;
            why.push(format!(
                "prompt_tokens {} {} {} ({})",
                q.prompt_tokens,
                if p_ok { "≤" } else { ">" },
                c.prompt_tokens_max,
                match ttft {
                    Some(t) => format!(
                        "fitted TTFT p95 {t:.0} ms {} the {} ms budget",
                        if t <= self.workload.ttft_budget_ms {
                            "within"
                        } else {
                            "over"
                        },
                        self.workload.ttft_budget_ms
                    ),
                    None => format!(
                        "past the longest prompt measured, {}: no TTFT evidence",
                        fit.points
                            .iter()
                            .map(|p| p.prompt_tokens)
                            .max()
                            .unwrap_or(0)
                    ),
                }
            ));
            if let (Some(_), Some(total), Some(t), Some(ttft)) = (
                c.gen_tokens_max,
                self.workload.total_budget_ms,
                r.evidence.token_ms_p95,
                ttft,
            ) {
                // The limit at this request's prompt length, not the workload's, and never past
                // the longest generation measured.
                let g = gen_limit(total, ttft, t)
                    .min(r.evidence.gen_tokens_measured.unwrap_or(u32::MAX));
                let g_ok = q.gen_tokens <= g;
                ok &= g_ok;
                why.push(format!(
                    "gen_tokens {} {} {g} (TTFT + (n − 1) × {:.1} ms per token within {} ms{})",
                    q.gen_tokens,
                    if g_ok { "≤" } else { ">" },
                    t,
                    total,
                    r.evidence
                        .gen_tokens_measured
                        .map_or(String::new(), |m| format!(", at most {m} as measured"))
                ));
            }
            if let (Some(need), Some(have)) = (c.headroom_bytes_min, q.headroom_bytes) {
                let m_ok = have >= need;
                ok &= m_ok;
                why.push(format!(
                    "free memory {} {} {} (the model's peak on this class)",
                    crate::units::bytes(have),
                    if m_ok { "≥" } else { "<" },
                    crate::units::bytes(need)
                ));
            }
            checks.push(format!(
                "rule {} ({} on {}): {} — {}",
                i + 1,
                r.model,
                r.runtime,
                if ok { "fires" } else { "does not fire" },
                why.join("; ")
            ));
            if ok {
                return Decision {
                    route: "local".into(),
                    rule: Some(i),
                    model: Some(r.model.clone()),
                    runtime: Some(r.runtime.clone()),
                    checks,
                };
            }
        }
        if checks.is_empty() {
            let mut classes: Vec<&str> = self.rules.iter().map(|r| r.class.as_str()).collect();
            classes.dedup();
            checks.push(format!(
                "no rule for class {:?} (rules cover: {})",
                q.class,
                if classes.is_empty() {
                    "none".to_owned()
                } else {
                    classes.join(", ")
                }
            ));
            for n in self.not_written.iter().filter(|n| n.class == q.class) {
                checks.push(format!("{} on {}: {}", n.model, n.runtime, n.why));
            }
        }
        Decision {
            route: self.otherwise.clone(),
            rule: None,
            model: None,
            runtime: None,
            checks,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::measurements::METRICS;

    #[test]
    fn the_generation_limit_counts_the_first_token_in_ttft() {
        // 1000 ms total, 200 ms to the first token, 100 ms a token: 1 + 8 tokens fit.
        assert_eq!(gen_limit(1000.0, 200.0, 100.0), 9);
        // TTFT alone within a token of the budget: only the first token.
        assert_eq!(gen_limit(1000.0, 950.0, 100.0), 1);
        // TTFT over the budget: nothing, never a negative count wrapped around.
        assert_eq!(gen_limit(1000.0, 1050.0, 100.0), 0);
        assert_eq!(gen_limit(1000.0, 5000.0, 100.0), 0);
    }

    /// A measured row of `m.gguf` on odai (other report tests build theirs from it).
    pub(crate) fn row(
        class: &str,
        device: &str,
        p: u32,
        ttft: f64,
        token_ms: f64,
        peak_mib: f64,
    ) -> Row {
        let mut values = vec![None; METRICS.len()];
        let mut set = |k: &str, v: f64| {
            values[METRICS.iter().position(|m| *m == k).unwrap()] = Some(v);
        };
        set("ttft_ms_p95", ttft);
        set("peak_rss_mib", peak_mib);
        Row {
            device: device.into(),
            class: Some(class.into()),
            cell_id: format!("m-p{p}"),
            model: "m.gguf".into(),
            quant: None,
            runtime: "odai".into(),
            runtime_version: String::new(),
            backend: String::new(),
            threads: 2,
            prompt_tokens: p,
            gen_tokens: 128,
            cold: false,
            sustained_s: None,
            load: "none".into(),
            reps: 3,
            status: "ok".into(),
            reason: None,
            values,
            missing: BTreeMap::new(),
            token_ms: vec![token_ms; 20],
            samples: BTreeMap::new(),
            odai_version: None,
            model_sha256: None,
            gpu_layers: None,
            kv_cache: None,
            depth: 0,
            n_batch: None,
            n_ubatch: None,
            mmap: None,
            offload: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_prompt_at_a_depth_is_not_a_point_of_the_ttft_curve() {
        let mut deep = row("phone", "a", 512, 9000.0, 50.0, 300.0);
        deep.depth = 4096;
        let rows = [row("phone", "a", 512, 800.0, 50.0, 300.0), deep];
        let c = curves(&rows);
        let pts: Vec<f64> = c.values().flatten().map(|p| p.ttft_ms_p95).collect();
        assert_eq!(pts, [800.0]);
    }

    fn workload(ttft: f64, total: Option<f64>) -> Workload {
        let mut w = Workload::resolve("chat-assistant").unwrap();
        w.thresholds
            .iter_mut()
            .filter(|t| t.criterion == Criterion::TtftMsP95)
            .for_each(|t| t.limit = ttft);
        w.total_latency_ms = total;
        w
    }

    #[test]
    fn rules_solve_the_fitted_line_for_the_budgets_from_the_worst_device() {
        // Two phones: at each prompt length the slower one counts. The worst points lie on
        // ttft = 100 + 2 p exactly.
        let rows = vec![
            row("phone", "a", 128, 356.0, 50.0, 300.0),
            row("phone", "b", 128, 300.0, 40.0, 280.0),
            row("phone", "a", 256, 612.0, 50.0, 310.0),
            row("phone", "b", 512, 1124.0, 40.0, 330.0),
            row("phone", "a", 512, 1000.0, 50.0, 320.0),
        ];
        let r = build(&rows, &workload(800.0, Some(4000.0)), "dir").unwrap();
        assert_eq!(r.rules.len(), 1, "{r:?}");
        let rule = &r.rules[0];
        let f = &rule.evidence.ttft_fit;
        assert!((f.intercept_ms - 100.0).abs() < 1e-6 && (f.ms_per_token - 2.0).abs() < 1e-9);
        assert!(f.rmse_ms < 1e-6 && f.max_under_ms < 1e-6);
        assert_eq!(
            f.points
                .iter()
                .map(|p| (p.prompt_tokens, p.device.as_str()))
                .collect::<Vec<_>>(),
            vec![(128, "a"), (256, "a"), (512, "b")]
        );
        // (800 − 100) / 2 = 350 prompt tokens.
        assert_eq!(rule.local_if.prompt_tokens_max, 350);
        // At the workload's 128 prompt tokens TTFT is 356 ms; (4000 − 356) / 50 + 1 = 73.
        assert_eq!(rule.evidence.token_ms_p95, Some(50.0));
        assert_eq!(rule.local_if.gen_tokens_max, Some(73));
        assert_eq!(rule.local_if.headroom_bytes_min, Some(330 * 1048576));
        assert_eq!(
            rule.text,
            "local if class = phone and prompt_tokens ≤ 350 and gen_tokens ≤ 73 (at 128 prompt \
             tokens) and free memory ≥ 330.0 MiB — m.gguf on odai"
        );

        let fire = r.explain(&Request {
            class: "phone",
            prompt_tokens: 300,
            gen_tokens: 64,
            headroom_bytes: Some(1 << 30),
        });
        assert_eq!((fire.route.as_str(), fire.rule), ("local", Some(0)));
        let long = r.explain(&Request {
            class: "phone",
            prompt_tokens: 900,
            gen_tokens: 64,
            headroom_bytes: None,
        });
        assert_eq!(long.route, "cloud");
        assert!(
            long.checks[0].starts_with(
                "rule 1 (m.gguf on odai): does not fire — prompt_tokens 900 > 350 (past the \
                 longest prompt measured, 512: no TTFT evidence)"
            ),
            "{long:?}"
        );
        let tight = r.explain(&Request {
            class: "phone",
            prompt_tokens: 100,
            gen_tokens: 64,
            headroom_bytes: Some(100 << 20),
        });
        assert_eq!(tight.route, "cloud", "too little free memory: {tight:?}");
        let other = r.explain(&Request {
            class: "laptop",
            prompt_tokens: 10,
            gen_tokens: 1,
            headroom_bytes: None,
        });
        assert_eq!(
            other.checks,
            vec!["no rule for class \"laptop\" (rules cover: phone)"]
        );
    }

    #[test]
    fn no_rule_without_a_sweep_or_within_budget_and_never_past_the_longest_prompt() {
        let one = vec![row("phone", "a", 128, 300.0, 50.0, 300.0)];
        let r = build(&one, &workload(800.0, None), "dir").unwrap();
        assert!(r.rules.is_empty());
        assert_eq!(
            r.not_written[0].why,
            "1 prompt length(s) measured (128): a fit needs cells at 3 or more prompt_tokens (e.g. \
             prompt_tokens = [128, 512, 1024] in the matrix)"
        );
        let slow = vec![
            row("phone", "a", 128, 900.0, 50.0, 300.0),
            row("phone", "a", 256, 1200.0, 50.0, 300.0),
            row("phone", "a", 512, 1800.0, 50.0, 300.0),
        ];
        let r = build(&slow, &workload(800.0, None), "dir").unwrap();
        assert!(r.rules.is_empty());
        assert!(
            r.not_written[0]
                .why
                .starts_with("TTFT p95 is over the 800 ms budget")
        );
        // A generous budget: the limit stops at the longest prompt measured, and says so.
        let r = build(
            &[
                row("phone", "a", 128, 300.0, 50.0, 300.0),
                row("phone", "a", 256, 400.0, 50.0, 300.0),
                row("phone", "a", 512, 600.0, 50.0, 300.0),
            ],
            &workload(5000.0, None),
            "dir",
        )
        .unwrap();
        assert_eq!(r.rules[0].local_if.prompt_tokens_max, 512);
        assert_eq!(r.rules[0].local_if.gen_tokens_max, None);
        assert!(
            r.rules[0].evidence.notes[0].starts_with("the fit allows 6144 prompt tokens; capped"),
            "{:?}",
            r.rules[0].evidence.notes
        );
        let bad = Workload::resolve("wake-word").unwrap();
        assert!(
            build(&[], &bad, "dir")
                .unwrap_err()
                .contains("tensor workload")
        );
    }

    #[test]
    fn a_real_curvature_gets_a_parabola_and_the_budget_is_solved_on_it() {
        // ttft = 50 + 1 p + 0.002 p² exactly, at five prompt lengths.
        let f = |p: f64| 50.0 + p + 0.002 * p * p;
        let rows: Vec<Row> = [64u32, 128, 256, 512, 1024]
            .iter()
            .map(|&p| row("laptop", "l", p, f(f64::from(p)), 20.0, 500.0))
            .collect();
        let r = build(&rows, &workload(2000.0, None), "dir").unwrap();
        let fit = &r.rules[0].evidence.ttft_fit;
        assert!(fit.form.contains("p²"), "{}", fit.form);
        assert!((fit.ms_per_token2 - 0.002).abs() < 1e-9, "{fit:?}");
        assert!(fit.rmse_ms < 1e-6);
        // 50 + p + 0.002 p² = 2000 at p = (−1 + √(1 + 0.008 × 1950)) / 0.004 = 768.4.
        assert_eq!(r.rules[0].local_if.prompt_tokens_max, 768);
        // Three points never get a parabola (it would fit them exactly).
        let three: Vec<Row> = rows[..3].to_vec();
        let r = build(&three, &workload(2000.0, None), "dir").unwrap();
        assert_eq!(r.rules[0].evidence.ttft_fit.ms_per_token2, 0.0);
        // Nearly straight points keep the line.
        assert!(
            fit_parabola(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)])
                .is_some_and(|(_, _, c)| c.abs() < 1e-9)
        );
    }

    #[test]
    fn a_line_through_exact_points_is_found_and_one_x_is_not_a_fit() {
        let (a, b) = fit_line(&[(128.0, 300.0), (256.0, 556.0), (512.0, 1068.0)]).unwrap();
        assert!((a - 44.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9, "{a} {b}");
        assert!(fit_line(&[(128.0, 1.0), (128.0, 2.0)]).is_none());
        assert!(fit_line(&[(128.0, 1.0)]).is_none());
    }

    #[test]
    fn regression_route_refuses_a_two_point_fit_and_never_extrapolates_or_goes_negative() {
        // Found in review: `route build` fitted a line through 2 points (RMSE 0), `route
        // explain` then printed "fitted TTFT p95 −30758 ms within the budget" and allowed
        // gen_tokens ≤ 179375 on a 2048-context model.
        let two = vec![
            row("phone", "a", 512, 900.0, 1.0, 300.0),
            row("phone", "a", 1024, 950.0, 1.0, 300.0),
        ];
        let r = build(&two, &workload(2000.0, Some(180_000.0)), "dir").unwrap();
        assert!(r.rules.is_empty());
        assert!(
            r.not_written[0]
                .why
                .starts_with("2 prompt length(s) measured (512, 1024)")
        );
        // TTFT that falls as the prompt grows is noise, not a curve to solve.
        let falling = vec![
            row("phone", "a", 128, 900.0, 1.0, 300.0),
            row("phone", "a", 256, 700.0, 1.0, 300.0),
            row("phone", "a", 512, 600.0, 1.0, 300.0),
        ];
        let r = build(&falling, &workload(2000.0, None), "dir").unwrap();
        assert!(r.rules.is_empty());
        assert!(
            r.not_written[0]
                .why
                .starts_with("TTFT p95 does not increase with the prompt"),
            "{:?}",
            r.not_written
        );
        // A steep line with a negative intercept: below the shortest prompt the figure is the
        // shortest's, never negative; the generation limit stops at the longest measured.
        let steep = vec![
            row("phone", "a", 512, 100.0, 1.0, 300.0),
            row("phone", "a", 768, 600.0, 1.0, 300.0),
            row("phone", "a", 1024, 1100.0, 1.0, 300.0),
        ];
        let mut w = workload(2000.0, Some(180_000.0));
        w.prompt_tokens = 16;
        let r = build(&steep, &w, "dir").unwrap();
        let rule = &r.rules[0];
        assert!(rule.evidence.ttft_fit.intercept_ms < 0.0);
        assert_eq!(rule.local_if.gen_tokens_max, Some(128));
        assert!(
            rule.evidence
                .notes
                .iter()
                .any(|n| n.contains("capped at the longest generation measured (128)")),
            "{:?}",
            rule.evidence.notes
        );
        let d = r.explain(&Request {
            class: "phone",
            prompt_tokens: 1,
            gen_tokens: 100_000,
            headroom_bytes: None,
        });
        assert_eq!(d.route, "cloud");
        assert!(
            d.checks[0].contains("fitted TTFT p95 100 ms within the 2000 ms budget")
                && d.checks[0].contains("gen_tokens 100000 > 128"),
            "{:?}",
            d.checks
        );
        assert!(!d.checks[0].contains("p95 −") && !d.checks[0].contains("p95 -"));
        // Past the longest prompt measured there is no figure to print.
        let far = r.explain(&Request {
            class: "phone",
            prompt_tokens: 4096,
            gen_tokens: 1,
            headroom_bytes: None,
        });
        assert!(
            far.checks[0].contains("past the longest prompt measured, 1024: no TTFT evidence"),
            "{:?}",
            far.checks
        );
    }
}
