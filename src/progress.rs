//! Progress bars on stderr (indicatif), shared by the subcommands and by the model fetch: hidden
//! when stderr is not a terminal (a log, a pipe, scripts' `--json` runs).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::OnceLock;

/// A bar on stderr drawn with `template` (indicatif's syntax), or a hidden one.
pub(crate) fn bar(total: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

/// The progress of a model download, for [`quarry_embed::ensure_model`]'s callback: one line
/// naming the model, its size and where it goes (in logs too), then a bar of the bytes on a
/// terminal, cleared when the last byte is in.
pub(crate) struct Download<'a> {
    model: &'a str,
    cache: &'a Path,
    bar: OnceLock<ProgressBar>,
}

impl<'a> Download<'a> {
    pub(crate) fn new(model: &'a str, cache: &'a Path) -> Self {
        Download {
            model,
            cache,
            bar: OnceLock::new(),
        }
    }

    /// `done` of `total` bytes downloaded.
    pub(crate) fn update(&self, done: u64, total: u64) {
        let b = self.bar.get_or_init(|| {
            eprintln!(
                "downloading embedding model {} ({:.0} MB) into {}",
                self.model,
                total as f64 / 1e6,
                self.cache.display()
            );
            bar(
                total,
                "{spinner} downloading [{bar:30}] {bytes}/{total_bytes} · {bytes_per_sec} · eta {eta}",
            )
        });
        b.set_position(done);
        if done >= total {
            b.finish_and_clear();
        }
    }
}
