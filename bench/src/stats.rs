//! Percentiles of durations, as milliseconds.

use std::time::Duration;

/// Nearest-rank percentile `q` (0..=1) of `sorted`.
fn pick(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// min, p50, p90, p99, max and mean of `samples`, in milliseconds.
pub fn summary(samples: &[Duration]) -> serde_json::Value {
    if samples.is_empty() {
        return serde_json::Value::Null;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    serde_json::json!({
        "n": ms.len(),
        "min_ms": ms[0],
        "p50_ms": pick(&ms, 0.5),
        "p90_ms": pick(&ms, 0.9),
        "p99_ms": pick(&ms, 0.99),
        "max_ms": ms[ms.len() - 1],
        "mean_ms": mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=101).map(Duration::from_millis).collect();
        let s = summary(&samples);
        assert_eq!(s["p50_ms"], 51.0);
        assert_eq!(s["p99_ms"], 100.0);
        assert_eq!(s["min_ms"], 1.0);
        assert_eq!(s["max_ms"], 101.0);
        assert_eq!(summary(&[]), serde_json::Value::Null);
    }
}
