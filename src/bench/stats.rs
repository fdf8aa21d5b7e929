//! Statistics over repetitions: the summary every metric gets, and hyperfine-style warnings a
//! reviewer should see before trusting the numbers.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    /// Sample standard deviation (n − 1); 0 for a single value.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    /// Coefficient of variation, stddev ÷ mean, in percent.
    pub cov_pct: f64,
    /// 95 % confidence interval of the mean (Student's t); equal to the mean for one value.
    pub ci95_low: f64,
    pub ci95_high: f64,
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom: the half-width factor of a
/// two-sided 95 % interval. From statrs's inverse CDF, for any df (a table that stopped at 30 and
/// then used the normal 1.96 made intervals 3.9 % too narrow at 31 degrees of freedom).
pub fn t975(df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The `q`-th percentile (0..=100) of already sorted values, by linear interpolation between
/// closest ranks.
pub fn percentile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// The `q`-th percentile (0..=100) of `values`, in any order.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile_sorted(&v, q)
}

pub fn summarize(values: &[f64]) -> Summary {
    let n = values.len();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let half = if n > 1 {
        t975((n - 1) as f64) * stddev / (n as f64).sqrt()
    } else {
        0.0
    };
    Summary {
        mean,
        median: median(&sorted),
        stddev,
        min: sorted[0],
        max: sorted[n - 1],
        cov_pct: if mean != 0.0 {
            100.0 * stddev / mean.abs()
        } else {
            0.0
        },
        ci95_low: mean - half,
        ci95_high: mean + half,
    }
}

/// Indices of outliers by the modified z-score on the median absolute deviation
/// (Iglewicz & Hoaglin 1993: |0.6745 (x − median) / MAD| > 3.5), as hyperfine flags them.
pub fn mad_outliers(values: &[f64]) -> Vec<usize> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let med = median(&sorted);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median(&dev);
    if mad == 0.0 || !mad.is_finite() {
        return Vec::new();
    }
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| (0.6745 * (*v - med) / mad).abs() > 3.5)
        .map(|(i, _)| i)
        .collect()
}

/// Warnings about `values` of `metric` (where `higher_is_better` says which way is good).
pub fn warnings(metric: &str, values: &[f64], higher_is_better: bool) -> Vec<String> {
    let mut out = Vec::new();
    let n = values.len();
    // With fewer than five values the MAD is too coarse for outliers to mean anything.
    if n >= 5 {
        let outliers = mad_outliers(values);
        if !outliers.is_empty() {
            out.push(format!(
                "{metric}: {} of {n} repetitions are statistical outliers (MAD); background load \
                 or thermal throttling may have disturbed them",
                outliers.len()
            ));
        }
    }
    if n >= 3 {
        let mut rest: Vec<f64> = values[1..].to_vec();
        rest.sort_by(f64::total_cmp);
        let med = median(&rest);
        let first_worse = if higher_is_better {
            values[0] < 0.8 * med
        } else {
            values[0] > 1.25 * med
        };
        if first_worse {
            out.push(format!(
                "{metric}: the first repetition was much slower than the rest; add --warmup \
                 repetitions or check for caches warming up"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computed_values() {
        let s = summarize(&[10.0, 12.0, 14.0]);
        assert_eq!(s.mean, 12.0);
        assert_eq!(s.median, 12.0);
        assert_eq!(s.stddev, 2.0);
        assert!((s.cov_pct - 16.666_666).abs() < 1e-3);
        // 12 ± 4.303 * 2 / sqrt(3)
        // (the table's 4.303 is rounded to three places: 4.302653 exactly)
        assert!((s.ci95_low - (12.0 - 4.302_653 * 2.0 / 3f64.sqrt())).abs() < 1e-5);
        let one = summarize(&[5.0]);
        assert_eq!((one.stddev, one.ci95_low, one.ci95_high), (0.0, 5.0, 5.0));
    }

    #[test]
    fn ci95_uses_students_t_beyond_30_degrees_of_freedom() {
        // Standard tables: t(0.975; 1) = 12.706, t(0.975; 30) = 2.042, t(0.975; 31) = 2.040,
        // t(0.975; 120) = 1.980. The old table fell to 1.96 at 31.
        for (df, t) in [(1.0, 12.706), (30.0, 2.042), (31.0, 2.040), (120.0, 1.980)] {
            assert!((t975(df) - t).abs() < 5e-4, "df {df}: {}", t975(df));
        }
        let v: Vec<f64> = (0..32).map(|i| f64::from(i % 4)).collect();
        let s = summarize(&v);
        let half = (s.ci95_high - s.ci95_low) / 2.0;
        assert!(
            (half - 2.0395 * s.stddev / 32f64.sqrt()).abs() < 1e-3 * half,
            "{s:?}"
        );
    }

    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&v, 50.0) - 50.5).abs() < 1e-9);
        assert!((percentile(&v, 99.0) - 99.01).abs() < 1e-9);
    }

    #[test]
    fn outliers_and_slow_first_rep_are_flagged() {
        let v = [50.0, 100.0, 101.0, 99.0, 100.5, 300.0];
        assert_eq!(mad_outliers(&v), vec![0, 5]);
        let w = warnings("decode_tps", &v, true);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(warnings("decode_tps", &[100.0, 101.0, 99.0], true).is_empty());
        // Three values: no MAD verdict, but a slow first repetition still shows.
        assert_eq!(
            warnings("decode_tps", &[40.3, 40.27, 39.78], true),
            Vec::<String>::new()
        );
        assert_eq!(warnings("ttft_ms", &[300.0, 100.0, 101.0], false).len(), 1);
    }
}
