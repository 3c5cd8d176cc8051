//! Logging: `tracing` events on stderr, as readable text (the default) or as one JSON object per
//! line (`QUARRY_LOG_FORMAT=json`, or `[log] format = "json"`) through tracing-subscriber's own
//! JSON formatter. `QUARRY_LOG` is the filter; without it, `serve` logs at `info` and other
//! commands at `warn`, and the vector library's per-graph chatter is kept to its warnings.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// The variable that chooses the format, `text` or `json`, over `[log] format`.
const FORMAT_ENV: &str = "QUARRY_LOG_FORMAT";

/// The variable that holds the filter (tracing-subscriber's `EnvFilter` syntax).
const FILTER_ENV: &str = "QUARRY_LOG";

/// hnsw_rs (and its distance crate) log every graph built, dumped or dropped at `info`
/// ("PointIndexation drop", about 34 lines on a small ingest and serve), and the PDF reader
/// (lopdf, pdf-extract) warns and errs about every damaged or encrypted file, which the ingest
/// summary already reports as a skip reason; a user's `QUARRY_LOG` decides when it is set.
const QUIET_LIBRARIES: &str = "hnsw_rs=warn,anndists=warn,lopdf=off,pdf_extract=off";

/// The format `value` (of [`FORMAT_ENV`]) names, else (unset or empty) `configured`.
fn format(value: Option<&str>, configured: LogFormat) -> Result<LogFormat, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(configured),
        Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(format!(
            "environment variable {FORMAT_ENV}: {other:?} is not a log format; use text or json"
        )),
    }
}

/// The filter of a process whose own default level is `level`: `QUARRY_LOG` when set, else
/// `level` with the quiet libraries.
fn filter(level: &str) -> Result<EnvFilter, String> {
    match std::env::var(FILTER_ENV) {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| format!("environment variable {FILTER_ENV}: {spec:?}: {e}")),
        _ => Ok(EnvFilter::new(format!("{level},{QUIET_LIBRARIES}"))),
    }
}

/// Installs the process's subscriber: `level` by default, the format of `QUARRY_LOG_FORMAT`, else
/// `configured` (`[log] format`). An error is a usage error (a format or filter that does not
/// parse).
pub(crate) fn init(level: &str, configured: LogFormat) -> Result<(), String> {
    let format = format(std::env::var(FORMAT_ENV).ok().as_deref(), configured)?;
    let filter = filter(level)?;
    // A log line that cannot be written is dropped. tracing-subscriber's default reports it with
    // `eprintln!`, which panics when stderr itself is gone (a closed pipe, a restarted journal):
    // `quarry serve 2>&1 | head -1` died with exit 101 a moment after starting.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line: timestamp, level, target, the event's fields with `message`
        // at the top level, and the innermost span with its fields (`request_id` of an HTTP
        // request).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LogFormat, format};

    #[test]
    fn the_variable_wins_over_the_file_and_others_are_named() {
        assert_eq!(format(None, LogFormat::Json), Ok(LogFormat::Json));
        assert_eq!(format(Some(""), LogFormat::Text), Ok(LogFormat::Text));
        assert_eq!(format(Some("json"), LogFormat::Text), Ok(LogFormat::Json));
        assert_eq!(format(Some(" text "), LogFormat::Json), Ok(LogFormat::Text));
        let e = format(Some("yaml"), LogFormat::Text).unwrap_err();
        assert!(e.contains("QUARRY_LOG_FORMAT") && e.contains("yaml"), "{e}");
    }
}
