//! Perplexity and KL divergence in llama.cpp's method (`tools/perplexity/perplexity.cpp`,
//! `perplexity()` and `kl_divergence()`), so odai's figures are the ones teams already quote:
//!
//! - the whole text is tokenized once (with BOS when the model adds one) and cut into
//!   non-overlapping windows of `ctx` tokens; a text shorter than two windows is refused, as
//!   `llama-perplexity` refuses it;
//! - each window is evaluated from position 0 with its first token replaced by BOS (when the model
//!   adds one), and only its second half is scored: positions `ctx/2 .. ctx-1` predict tokens
//!   `ctx/2+1 .. ctx`, so every scored token has at least `ctx/2` tokens of context;
//! - perplexity is `exp(mean NLL)`; its uncertainty `ppl × sqrt(var(NLL) / (n-1))`, as
//!   llama.cpp prints it after `±`;
//! - KL divergence per scored token is `Σ p_ref · (log p_ref − log p)`, from the full
//!   distributions (llama.cpp stores the reference's log-probabilities quantized to 16 bits; here
//!   both models run in one process, so nothing is quantized), with the mean, median, p99 and max,
//!   and top-1 agreement: the share of tokens where both models' most likely token is the same
//!   ("Same top p" in llama.cpp's output).

use serde::{Deserialize, Serialize};

/// How a text is cut into windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Windows {
    /// Tokens per window (llama-perplexity's `-c`).
    pub ctx: usize,
    /// Windows evaluated (llama-perplexity's `--chunks`, at most `tokens / ctx`).
    pub count: usize,
}

impl Windows {
    /// The windows of a text of `tokens` tokens: all of them, or the first `max`.
    pub fn plan(tokens: usize, ctx: usize, max: Option<usize>) -> Result<Windows, String> {
        if ctx < 4 {
            return Err(format!(
                "a context of {ctx} tokens is too short to score (4 or more)"
            ));
        }
        if tokens < 2 * ctx {
            return Err(format!(
                "the text has {tokens} tokens: perplexity with a context of {ctx} needs at least \
                 {} (two windows, as llama-perplexity requires); give a longer text or a smaller \
                 --ctx",
                2 * ctx
            ));
        }
        let all = tokens / ctx;
        let count = max.map_or(all, |m| m.clamp(1, all));
        Ok(Windows { ctx, count })
    }

    /// The first row scored in a window: its second half.
    pub fn first_scored(&self) -> usize {
        self.ctx / 2
    }

    /// Tokens scored in each window.
    pub fn scored_per_window(&self) -> usize {
        self.ctx - 1 - self.first_scored()
    }

    /// Window `i`'s tokens, its first replaced by `bos` when the model adds one.
    pub fn tokens(&self, all: &[u32], i: usize, bos: Option<u32>) -> Vec<u32> {
        let mut w = all[i * self.ctx..(i + 1) * self.ctx].to_vec();
        if let Some(b) = bos {
            w[0] = b;
        }
        w
    }

    /// The tokens window `i`'s scored rows predict, in order (from the original text, not the
    /// BOS-replaced window).
    pub fn targets<'a>(&self, all: &'a [u32], i: usize) -> &'a [u32] {
        let start = i * self.ctx + self.first_scored() + 1;
        &all[start..(i + 1) * self.ctx]
    }
}

/// `log Σ exp(x)`, stably, and the index of the largest logit (ties to the lowest, as greedy
/// sampling picks).
pub fn log_sum_exp(row: &[f32]) -> (f64, usize) {
    let mut best = 0usize;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    let max = f64::from(row[best]);
    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    (max + sum.ln(), best)
}

/// One position's logits with their log-normaliser and top token, computed once: perplexity and
/// KL divergence both need them, and a pass over a 49k-256k vocabulary is the costly part.
pub struct Row<'a> {
    pub logits: &'a [f32],
    pub lse: f64,
    pub top: usize,
}

impl<'a> Row<'a> {
    pub fn of(logits: &'a [f32]) -> Row<'a> {
        let (lse, top) = log_sum_exp(logits);
        Row { logits, lse, top }
    }
}

/// Negative log-likelihoods, summed as llama.cpp sums them.
#[derive(Clone, Debug, Default)]
pub struct Nll {
    sum: f64,
    sum2: f64,
    n: u64,
}

impl Nll {
    /// Scores one row of logits against the token that followed.
    pub fn add(&mut self, row: &[f32], target: u32) -> Result<(), String> {
        self.add_scored(&Row::of(row), target)
    }

    /// Scores a row whose normaliser is already computed (shared with [`Kld::add_scored`]).
    pub fn add_scored(&mut self, row: &Row, target: u32) -> Result<(), String> {
        let t = target as usize;
        if t >= row.logits.len() {
            return Err(format!(
                "token id {target} is outside the vocabulary ({})",
                row.logits.len()
            ));
        }
        let nll = row.lse - f64::from(row.logits[t]);
        self.sum += nll;
        self.sum2 += nll * nll;
        self.n += 1;
        Ok(())
    }

    pub fn tokens(&self) -> u64 {
        self.n
    }

    /// Mean NLL (nats per token).
    pub fn mean(&self) -> f64 {
        self.sum / self.n.max(1) as f64
    }

    /// Perplexity and its uncertainty (llama.cpp's `±`).
    pub fn perplexity(&self) -> (f64, f64) {
        let n = self.n.max(1) as f64;
        let mean = self.sum / n;
        let var = self.sum2 / n - mean * mean;
        let ppl = mean.exp();
        let err = if var > 0.0 && self.n > 1 {
            (var / (n - 1.0)).sqrt() * ppl
        } else {
            0.0
        };
        (ppl, err)
    }
}

/// KL divergence of a candidate's distributions from a reference's, token by token.
#[derive(Clone, Debug, Default)]
pub struct Kld {
    values: Vec<f64>,
    same_top: u64,
}

impl Kld {
    /// One scored position: the reference's logits and the candidate's, over the same vocabulary.
    pub fn add(&mut self, reference: &[f32], candidate: &[f32]) -> Result<(), String> {
        self.add_scored(&Row::of(reference), &Row::of(candidate))
    }

    /// One scored position, the normalisers already computed (shared with [`Nll::add_scored`]).
    pub fn add_scored(&mut self, reference: &Row, candidate: &Row) -> Result<(), String> {
        if reference.logits.len() != candidate.logits.len() {
            return Err(format!(
                "the reference's vocabulary has {} tokens, the model's {}: KL divergence needs \
                 the same vocabulary",
                reference.logits.len(),
                candidate.logits.len()
            ));
        }
        let (lr, top_r) = (reference.lse, reference.top);
        let (lc, top_c) = (candidate.lse, candidate.top);
        let mut kl = 0.0f64;
        for (&r, &c) in reference.logits.iter().zip(candidate.logits) {
            let log_pr = f64::from(r) - lr;
            let log_pc = f64::from(c) - lc;
            kl += log_pr.exp() * (log_pr - log_pc);
        }
        // Rounding can leave an identical pair a hair below zero; KL divergence is not negative.
        self.values.push(kl.max(0.0));
        self.same_top += u64::from(top_r == top_c);
        Ok(())
    }

    pub fn summary(&self) -> Option<KldSummary> {
        if self.values.is_empty() {
            return None;
        }
        let n = self.values.len() as f64;
        let mean = self.values.iter().sum::<f64>() / n;
        let var = self.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let pct = |q: f64| crate::bench::stats::percentile_sorted(&sorted, q);
        Some(KldSummary {
            tokens: self.values.len() as u64,
            kld_mean: mean,
            kld_mean_stderr: (var / n).sqrt(),
            kld_median: pct(50.0),
            kld_p99: pct(99.0),
            kld_max: *sorted.last().expect("not empty"),
            top1_agreement_pct: 100.0 * self.same_top as f64 / n,
        })
    }
}

/// The KL divergence figures (llama.cpp's `--kl-divergence` output, less its quantized store).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KldSummary {
    pub tokens: u64,
    /// Mean KL divergence, nats per token.
    pub kld_mean: f64,
    pub kld_mean_stderr: f64,
    pub kld_median: f64,
    pub kld_p99: f64,
    pub kld_max: f64,
    /// Tokens where the model's most likely next token is the reference's, in percent.
    pub top1_agreement_pct: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_llama_perplexity_two_windows_at_least_and_the_second_half_scored() {
        let w = Windows::plan(1000, 128, None).unwrap();
        assert_eq!(w.count, 7, "1000 / 128, the remainder dropped");
        assert_eq!(w.first_scored(), 64);
        assert_eq!(
            w.scored_per_window(),
            63,
            "rows 64..=126 predict tokens 65..=127"
        );
        assert_eq!(Windows::plan(1000, 128, Some(3)).unwrap().count, 3);
        assert_eq!(Windows::plan(1000, 128, Some(99)).unwrap().count, 7);
        assert_eq!(
            Windows::plan(255, 128, None).unwrap_err(),
            "the text has 255 tokens: perplexity with a context of 128 needs at least 256 (two \
             windows, as llama-perplexity requires); give a longer text or a smaller --ctx"
        );
        let all: Vec<u32> = (0..16).collect();
        let w = Windows::plan(16, 8, None).unwrap();
        assert_eq!(
            w.tokens(&all, 1, Some(99)),
            vec![99, 9, 10, 11, 12, 13, 14, 15]
        );
        assert_eq!(w.tokens(&all, 1, None)[0], 8);
        assert_eq!(w.targets(&all, 1), &[13, 14, 15], "rows 4..=6 of window 1");
        assert_eq!(w.targets(&all, 1).len(), w.scored_per_window());
    }

    #[test]
    fn perplexity_of_a_uniform_model_is_its_vocabulary() {
        let mut n = Nll::default();
        for t in 0..10 {
            n.add(&[0.5; 50], t).unwrap();
        }
        let (ppl, err) = n.perplexity();
        assert!((ppl - 50.0).abs() < 1e-9, "{ppl}");
        assert!(
            err < 1e-4,
            "every token scored the same, up to rounding: {err}"
        );
        assert!(n.add(&[0.0; 4], 4).is_err());
    }

    #[test]
    fn nll_is_the_log_softmax_of_the_target_and_ppl_carries_llama_cpps_uncertainty() {
        let mut n = Nll::default();
        // log-softmax([0, ln 3]) = [ln 1/4, ln 3/4].
        n.add(&[0.0, 3f32.ln()], 0).unwrap();
        n.add(&[0.0, 3f32.ln()], 1).unwrap();
        let want = [-(0.25f64).ln(), -(0.75f64).ln()];
        let mean = (want[0] + want[1]) / 2.0;
        assert!((n.mean() - mean).abs() < 1e-6);
        let var = (want[0] * want[0] + want[1] * want[1]) / 2.0 - mean * mean;
        let (ppl, err) = n.perplexity();
        assert!((ppl - mean.exp()).abs() < 1e-6);
        assert!(
            (err - var.sqrt() * mean.exp()).abs() < 1e-6,
            "sqrt(var / (n-1)) × ppl"
        );
    }

    #[test]
    fn kl_divergence_is_zero_for_the_same_model_and_matches_the_closed_form() {
        let mut k = Kld::default();
        let a = [1.0f32, 2.0, 3.0];
        k.add(&a, &a).unwrap();
        // Shifting every logit changes nothing: softmax is shift-invariant.
        k.add(&a, &[11.0, 12.0, 13.0]).unwrap();
        let s = k.summary().unwrap();
        assert!(s.kld_max < 1e-12);
        assert_eq!(s.top1_agreement_pct, 100.0);

        let mut k = Kld::default();
        // p = (1/2, 1/2), q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln (2/3).
        k.add(&[0.0, 0.0], &[0.0, 3f32.ln()]).unwrap();
        let s = k.summary().unwrap();
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((s.kld_mean - want).abs() < 1e-6, "{} vs {want}", s.kld_mean);
        assert_eq!(
            s.top1_agreement_pct, 0.0,
            "the reference's tie goes to id 0, q's top is 1"
        );
        assert!(k.add(&[0.0; 3], &[0.0; 4]).is_err());
        assert!(Kld::default().summary().is_none());
    }
}
