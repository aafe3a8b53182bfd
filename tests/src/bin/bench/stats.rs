//! Order statistics of a set of measurements.

/// Minimum, 10th percentile, median, 90th percentile and maximum of a set of values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

pub fn summarize(v: &mut [f64]) -> Summary {
    assert!(!v.is_empty(), "nothing measured");
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Summary {
        min: at(0.0),
        p10: at(0.1),
        median: at(0.5),
        p90: at(0.9),
        max: at(1.0),
    }
}

/// min / median / max, formatted with `f`.
pub fn mmm(s: &Summary, f: impl Fn(f64) -> String) -> String {
    format!("{} / {} / {}", f(s.min), f(s.median), f(s.max))
}
