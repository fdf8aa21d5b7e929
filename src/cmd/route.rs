//! `odai route build` and `odai route explain`: routing rules derived from a results directory's
//! prompt-length sweep (`report::routing`), and which rule fires for a request.

use std::path::PathBuf;

use crate::cli::{Format, RouteBuildArgs, RouteExplainArgs};
use crate::error::Error;
use crate::exit;
use crate::matrix::results::write_atomic;
use crate::report::measurements::{self, ResultsSet};
use crate::report::routing::{self, Request, Routing};
use crate::report::workload::Workload;

pub struct BuildConfig {
    pub results: PathBuf,
    pub profile: String,
    pub out: PathBuf,
    pub format: Format,
}

impl BuildConfig {
    pub fn new(a: &RouteBuildArgs) -> BuildConfig {
        BuildConfig {
            results: a.results.clone(),
            profile: a.profile.clone(),
            out: a.out.clone(),
            format: a.format,
        }
    }
}

pub fn build(cfg: &BuildConfig) -> anyhow::Result<i32> {
    let w = Workload::resolve(&cfg.profile)?;
    let set = ResultsSet::load(&cfg.results)?;
    for warning in &set.warnings {
        anstream::eprintln!("odai: warning: {warning}");
    }
    let rows = measurements::rows(&set);
    let r = routing::build(&rows, &w, &set.dir.display().to_string()).map_err(|why| {
        Error::ConfigFile {
            file: PathBuf::from(&w.source),
            problem: why,
        }
    })?;
    let json = super::json_text(&r)?;
    let dir = cfg
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = cfg
        .out
        .file_name()
        .ok_or_else(|| Error::Invalid {
            flag: "-o".into(),
            problem: format!("{}: name a file", cfg.out.display()),
        })?
        .to_string_lossy()
        .into_owned();
    write_atomic(dir, &name, json.as_bytes())?;
    let text = match cfg.format {
        Format::Json => json,
        Format::Text => {
            let mut s = format!(
                "{} rule(s) for {} (TTFT p95 budget {} ms{}) from {}\n",
                r.rules.len(),
                r.workload.id,
                r.workload.ttft_budget_ms,
                r.workload
                    .total_budget_ms
                    .map_or(String::new(), |t| format!(", total {t} ms")),
                r.source
            );
            for rule in &r.rules {
                let f = &rule.evidence.ttft_fit;
                let square = if f.ms_per_token2 > 0.0 {
                    format!(" + {:.3e} ms × prompt tokens²", f.ms_per_token2)
                } else {
                    String::new()
                };
                s.push_str(&format!(
                    "  {}\n    fit: TTFT p95 ≈ {:.1} ms + {:.3} ms × prompt tokens{square} over {} prompt \
                     lengths (RMSE {:.1} ms, worst under-estimate {:.1} ms)\n",
                    rule.text,
                    f.intercept_ms,
                    f.ms_per_token,
                    f.points.len(),
                    f.rmse_ms,
                    f.max_under_ms
                ));
                for n in &rule.evidence.notes {
                    s.push_str(&format!("    note: {n}\n"));
                }
            }
            for n in &r.not_written {
                s.push_str(&format!(
                    "  no rule for {} × {} on {}: {}\n",
                    n.class, n.model, n.runtime, n.why
                ));
            }
            s.push_str(&format!("otherwise: {}\n", r.otherwise));
            s
        }
    };
    super::print(&text)?;
    // Status, not data: stdout is the rules.
    anstream::eprintln!("wrote {}", cfg.out.display());
    Ok(exit::SUCCESS)
}

pub struct ExplainConfig {
    pub rules: PathBuf,
    pub class: String,
    pub prompt_tokens: u32,
    pub gen_tokens: Option<u32>,
    pub headroom: Option<u64>,
    pub format: Format,
}

impl ExplainConfig {
    pub fn new(a: &RouteExplainArgs) -> ExplainConfig {
        ExplainConfig {
            rules: a.rules.clone(),
            class: a.class.clone(),
            prompt_tokens: a.prompt_tokens,
            gen_tokens: a.gen_tokens,
            headroom: a.headroom,
            format: a.format,
        }
    }
}

pub fn explain(cfg: &ExplainConfig) -> anyhow::Result<i32> {
    let bad = |problem: String| Error::ConfigFile {
        file: cfg.rules.clone(),
        problem,
    };
    let text = std::fs::read_to_string(&cfg.rules)
        .map_err(|e| bad(format!("cannot read the routing file ({e})")))?;
    let r: Routing = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not a routing file ({e}); odai route build --output FILE writes one"
        ))
    })?;
    if r.schema_version > routing::SCHEMA_VERSION {
        return Err(bad(format!(
            "schema_version {} is newer than this odai reads ({})",
            r.schema_version,
            routing::SCHEMA_VERSION
        ))
        .into());
    }
    let gen_tokens = cfg.gen_tokens.unwrap_or(r.workload.gen_tokens);
    let d = r.explain(&Request {
        class: &cfg.class,
        prompt_tokens: cfg.prompt_tokens,
        gen_tokens,
        headroom_bytes: cfg.headroom,
    });
    let out = match cfg.format {
        Format::Json => super::document(&d)?,
        Format::Text => {
            let mut s = match (&d.model, &d.runtime) {
                (Some(m), Some(rt)) => format!(
                    "local: {m} on {rt} ({} prompt tokens, {gen_tokens} to generate, class {})\n",
                    cfg.prompt_tokens, cfg.class
                ),
                _ => format!(
                    "{}: no rule fires ({} prompt tokens, {gen_tokens} to generate, class {})\n",
                    d.route, cfg.prompt_tokens, cfg.class
                ),
            };
            for c in &d.checks {
                s.push_str(&format!("  {c}\n"));
            }
            if cfg.headroom.is_none() && d.checks.iter().any(|c| c.starts_with("rule")) {
                s.push_str("  free memory not checked (--headroom BYTES checks it)\n");
            }
            s
        }
    };
    super::print(&out)?;
    Ok(exit::SUCCESS)
}
