//! `quarry model pull`: fetch the local embedding model now rather than on first use.

use crate::cmd::{emit, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_embed::{DEFAULT_MODEL, ensure_model, model_cache_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Download (once) and verify by sha256 a model quarry knows, into the model cache
    /// ($QUARRY_MODEL_DIR, else the user's cache directory). Works offline once cached.
    Pull {
        /// Model name.
        #[arg(default_value = DEFAULT_MODEL)]
        name: String,
        /// Print `{"model", "dir"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(_config: &Config, args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Pull { name, json } => {
            let cache = model_cache_dir();
            let started = std::time::Instant::now();
            let dir = ensure_model(&name, &cache, &|_, _| {})
                .with_context(|| format!("cannot fetch model {name}"))?;
            if json {
                print_json(&serde_json::json!({"model": name, "dir": dir}))?;
            } else {
                emit(&format!(
                    "model {name} ready in {} ({:.1} s)\n",
                    dir.display(),
                    started.elapsed().as_secs_f64()
                ));
            }
            Ok(())
        }
    }
}
