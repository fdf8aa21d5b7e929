//! Task files (`odai quality --tasks tasks.jsonl`): one JSON object per line, a prompt with the
//! answer expected and how to check it, judged on greedy output. Only counts and hashes of what
//! is read here go into results: never a prompt or an answer.
//!
//! ```text
//! {"prompt": "The capital of France is", "expected": "Paris", "check": "contains"}
//! {"prompt": "2+2=", "expected": "4", "check": "exact", "max_tokens": 2, "stop": ["\n"]}
//! {"prompt": "Review: great phone. Sentiment:", "expected": "positive", "check": "choice",
//!  "labels": ["positive", "negative"]}
//! {"prompt": "Year of the moon landing:", "expected": "\\b1969\\b", "check": "regex"}
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// How an answer is judged.
#[derive(Clone, Debug)]
pub enum Check {
    /// The answer, trimmed of surrounding whitespace, is `expected` exactly.
    Exact,
    /// The answer holds `expected`, ignoring case.
    Contains,
    /// The answer picks one of `labels` (it starts with one, ignoring case, else the first named
    /// in it), and that label is `expected`.
    Choice(Vec<String>),
    /// The answer matches the regular expression `expected` (Rust `regex` syntax).
    Regex(regex::Regex),
}

impl Check {
    pub fn name(&self) -> &'static str {
        match self {
            Check::Exact => "exact",
            Check::Contains => "contains",
            Check::Choice(_) => "choice",
            Check::Regex(_) => "regex",
        }
    }
}

/// One task, read from its line.
#[derive(Clone, Debug)]
pub struct Task {
    /// 1-based line number in the file.
    pub line: usize,
    pub prompt: String,
    pub expected: String,
    pub check: Check,
    /// Tokens to generate at most (the file's `max_tokens`, else `--max-tokens`).
    pub max_tokens: Option<u32>,
    /// The answer is cut at the first of these.
    pub stop: Vec<String>,
    /// The first 16 hex digits of the prompt's sha256: how results name a task without holding
    /// its text.
    pub id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: String,
    expected: String,
    check: String,
    #[serde(default)]
    labels: Option<Vec<String>>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stop: Vec<String>,
}

/// A judged answer: whether it is right, and the answer reduced to what the check compares (the
/// label picked, the trimmed text, or the verdict), which is what local and cloud agree on.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub correct: bool,
    pub key: String,
}

impl Task {
    /// `text` cut at the first stop string.
    pub fn answer<'a>(&self, text: &'a str) -> &'a str {
        let end = self
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
            .unwrap_or(text.len());
        &text[..end]
    }

    pub fn judge(&self, text: &str) -> Judged {
        let a = self.answer(text).trim();
        match &self.check {
            Check::Exact => Judged {
                correct: a == self.expected.trim(),
                key: a.to_owned(),
            },
            Check::Contains => {
                let correct = a
                    .to_lowercase()
                    .contains(&self.expected.trim().to_lowercase());
                Judged {
                    correct,
                    key: verdict(correct),
                }
            }
            Check::Choice(labels) => {
                let picked = pick(a, labels);
                Judged {
                    correct: picked.is_some_and(|p| p.eq_ignore_ascii_case(self.expected.trim())),
                    key: picked.map_or_else(|| "(no label)".to_owned(), str::to_lowercase),
                }
            }
            Check::Regex(re) => {
                let correct = re.is_match(a);
                Judged {
                    correct,
                    key: verdict(correct),
                }
            }
        }
    }
}

fn verdict(correct: bool) -> String {
    if correct { "right" } else { "wrong" }.into()
}

/// The label an answer picks: the longest it starts with, else the one named earliest.
fn pick<'a>(answer: &str, labels: &'a [String]) -> Option<&'a str> {
    let a = answer.to_lowercase();
    let a = a.trim_start_matches(|c: char| !c.is_alphanumeric());
    labels
        .iter()
        .filter(|l| a.starts_with(&l.to_lowercase()))
        .max_by_key(|l| l.len())
        .or_else(|| {
            labels
                .iter()
                .filter_map(|l| a.find(&l.to_lowercase()).map(|at| (at, l)))
                .min_by_key(|(at, l)| (*at, std::cmp::Reverse(l.len())))
                .map(|(_, l)| l)
        })
        .map(String::as_str)
}

/// Reads a task file; an error names the file, the line and what to change.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Task>, Error> {
    let bad = |line: usize, problem: String| Error::ConfigFile {
        file: path.to_owned(),
        problem: format!("line {line}: {problem}"),
    };
    let mut tasks = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(raw).map_err(|e| {
            bad(
                line,
                format!(
                    "not a task ({e}); a line is {{\"prompt\": \"…\", \"expected\": \"…\", \
                     \"check\": \"exact|contains|choice|regex\"}}"
                ),
            )
        })?;
        if l.prompt.is_empty() {
            return Err(bad(line, "the prompt is empty".into()));
        }
        if l.max_tokens == Some(0) {
            return Err(bad(line, "max_tokens must be 1 or more".into()));
        }
        let check = match (l.check.as_str(), l.labels) {
            ("choice", Some(labels)) => {
                if labels.len() < 2 || labels.iter().any(|x| x.trim().is_empty()) {
                    return Err(bad(
                        line,
                        "a choice needs two or more non-empty labels".into(),
                    ));
                }
                if !labels
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(l.expected.trim()))
                {
                    return Err(bad(
                        line,
                        format!(
                            "expected {:?} is not one of the labels {labels:?}",
                            l.expected
                        ),
                    ));
                }
                Check::Choice(labels)
            }
            ("choice", None) => {
                return Err(bad(
                    line,
                    "a choice needs \"labels\": [\"a\", \"b\", …]".into(),
                ));
            }
            (other, Some(_)) if other != "choice" => {
                return Err(bad(
                    line,
                    "\"labels\" belong to check \"choice\" only".into(),
                ));
            }
            ("exact", _) => Check::Exact,
            ("contains", _) => Check::Contains,
            ("regex", _) => Check::Regex(
                regex::Regex::new(&l.expected)
                    .map_err(|e| bad(line, format!("expected is not a regular expression: {e}")))?,
            ),
            (other, _) => {
                return Err(bad(
                    line,
                    format!("unknown check {other:?}: choose exact, contains, choice or regex"),
                ));
            }
        };
        if l.expected.trim().is_empty() {
            return Err(bad(line, "expected is empty".into()));
        }
        let id = crate::engine::fingerprint::sha256_hex(l.prompt.as_bytes())[..16].to_owned();
        tasks.push(Task {
            line,
            prompt: l.prompt,
            expected: l.expected,
            check,
            max_tokens: l.max_tokens,
            stop: l.stop,
            id,
        });
    }
    if tasks.is_empty() {
        return Err(Error::ConfigFile {
            file: path.to_owned(),
            problem: "holds no tasks (one JSON object per line)".into(),
        });
    }
    Ok(tasks)
}

/// The Wilson score interval of `k` successes in `n` trials at 95 % (z = 1.96), in percent: it
/// stays inside 0..100 and is honest at small n and at 0 % or 100 %, where the normal
/// approximation collapses to a point (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it).
pub fn wilson_pct(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 100.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (
        (100.0 * (centre - half)).max(0.0),
        (100.0 * (centre + half)).min(100.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(text: &str) -> Result<Vec<Task>, String> {
        parse(Path::new("t.jsonl"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn each_check_judges_as_documented() {
        let t = tasks(
            r#"{"prompt": "a", "expected": "Paris", "check": "exact", "stop": ["\n"]}
{"prompt": "b", "expected": "paris", "check": "contains"}

{"prompt": "c", "expected": "negative", "check": "choice", "labels": ["positive", "negative"]}
{"prompt": "d", "expected": "\\b19[0-9]{2}\\b", "check": "regex"}"#,
        )
        .unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[2].line, 4, "blank lines count");
        assert!(
            t[0].judge(" Paris\nand more").correct,
            "cut at the stop, trimmed"
        );
        assert!(!t[0].judge("paris").correct, "exact is exact");
        assert_eq!(t[0].judge(" Paris\n").key, "Paris");
        assert!(t[1].judge("It is PARIS.").correct);
        assert_eq!(t[1].judge("London").key, "wrong");
        assert_eq!(
            t[2].judge(" Negative, clearly"),
            Judged {
                correct: true,
                key: "negative".into()
            }
        );
        assert_eq!(t[2].judge("I think it is positive").key, "positive");
        assert_eq!(t[2].judge("unsure").key, "(no label)");
        assert!(t[3].judge("in 1969 they").correct);
        assert!(!t[3].judge("in 19690").correct);
        assert_eq!(t[0].id.len(), 16);
        assert_ne!(t[0].id, t[1].id);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_fix() {
        assert_eq!(
            tasks("{\"prompt\": \"a\", \"expected\": \"x\", \"check\": \"fuzzy\"}").unwrap_err(),
            "t.jsonl: line 1: unknown check \"fuzzy\": choose exact, contains, choice or regex"
        );
        assert_eq!(
            tasks("\n{\"prompt\": \"a\", \"expected\": \"x\", \"check\": \"choice\", \"labels\": [\"y\", \"z\"]}").unwrap_err(),
            "t.jsonl: line 2: expected \"x\" is not one of the labels [\"y\", \"z\"]"
        );
        assert_eq!(
            tasks("{\"prompt\": \"a\", \"expected\": \"(\", \"check\": \"regex\"}")
                .unwrap_err()
                .lines()
                .next()
                .unwrap(),
            "t.jsonl: line 1: expected is not a regular expression: regex parse error:"
        );
        assert!(
            tasks("{\"prompt\": \"a\"}")
                .unwrap_err()
                .starts_with("t.jsonl: line 1: not a task (missing field `expected`")
        );
        assert_eq!(
            tasks("\n\n").unwrap_err(),
            "t.jsonl: holds no tasks (one JSON object per line)"
        );
    }

    #[test]
    fn wilson_intervals_match_the_published_values_and_stay_in_range() {
        // 81 of 263: 0.2553 .. 0.3662 (Newcombe 1998, Statistics in Medicine 17, table II,
        // method 3, the Wilson score interval).
        let (lo, hi) = wilson_pct(81, 263);
        assert!(
            (lo - 25.53).abs() < 0.01 && (hi - 36.62).abs() < 0.01,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_pct(8, 10);
        assert!(
            (lo - 49.02).abs() < 0.01 && (hi - 94.33).abs() < 0.01,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_pct(0, 20);
        assert_eq!(lo, 0.0);
        assert!((hi - 16.11).abs() < 0.05, "{hi}");
        let (lo, hi) = wilson_pct(20, 20);
        assert!((lo - 83.89).abs() < 0.05 && hi == 100.0);
        assert_eq!(wilson_pct(0, 0), (0.0, 100.0));
    }
}
