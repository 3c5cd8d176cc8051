//! How the eval commands show stored values: UTC times and fusion settings.

use serde_json::Value;

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime_utc(t)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn humantime_utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day, hour, minute, second) = quarry_core::time::utc(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

/// A run's fusion setting as `rrf k=60` or `weighted alpha=0.6`.
pub fn fusion_text(fusion: &Value) -> String {
    // parameters are f32 in quarry and f64 in JSON: show them rounded (0.6, not 0.6000000238)
    let num = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{}", (x * 1e4).round() / 1e4))
    };
    match fusion["method"].as_str() {
        Some("rrf") => format!("rrf k={}", num(&fusion["k"])),
        Some("weighted") => format!("weighted alpha={}", num(&fusion["alpha"])),
        Some("adaptive") => format!(
            "adaptive alpha={} gap_at={} strength={}",
            num(&fusion["alpha"]),
            num(&fusion["gap_at"]),
            num(&fusion["strength"])
        ),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_parameters_are_shown_rounded() {
        let w = serde_json::json!({"method": "weighted", "alpha": 0.6000000238418579});
        assert_eq!(fusion_text(&w), "weighted alpha=0.6");
        let r = serde_json::json!({"method": "rrf", "k": 60.0});
        assert_eq!(fusion_text(&r), "rrf k=60");
    }

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(time(1_795_701_845), "2026-11-26 14:04:05");
    }
}
