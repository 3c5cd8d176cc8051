//! The bench's data directory: its configuration file (the configuration quarry loaded, with the
//! bench's chunking, API keys and no background model work), the callers' keys, and the manifest
//! that lets `--reuse` check it regenerates what was built.

use crate::config::{ApiKeyConfig, AuthConfig, Config};
use anyhow::Context;
use std::path::Path;

/// Largest chunk, in tokens of 4 characters: a generated document (60 words at most) is one chunk.
pub(super) const CHUNK_MAX_TOKENS: usize = 512;

/// One caller of the bench: an API key whose reader is in `group:GROUP`.
pub(super) struct Reader {
    pub(super) group: &'static str,
    pub(super) key: String,
}

/// A fresh random API key for each group.
pub(super) fn readers(groups: &[&'static str]) -> Vec<Reader> {
    groups
        .iter()
        .map(|group| Reader {
            group,
            key: format!(
                "qb-{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        })
        .collect()
}

/// Writes `path`: `config` with one document per chunk (chunks sized in characters, so no
/// tokenizer is needed), the readers' keys (their sha256) as the only way in, and neither the
/// canary check nor scheduled evaluations, which would call the model.
pub(super) fn write_config(config: &Config, readers: &[Reader], path: &Path) -> anyhow::Result<()> {
    let mut c = config.clone();
    c.chunk.max_tokens = CHUNK_MAX_TOKENS;
    c.chunk.overlap = 0;
    c.chunk.sizer = quarry_core::ChunkSizer::Chars;
    c.auth = AuthConfig {
        api_keys: readers
            .iter()
            .map(|r| ApiKeyConfig {
                key_sha256: quarry_server::auth::keys::digest(&r.key)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                user: format!("bench-{}", r.group),
                groups: vec![r.group.to_owned()],
                role: "reader".into(),
            })
            .collect(),
        ..AuthConfig::default()
    };
    c.reindex.canary_interval = "off".into();
    c.eval.interval = None;
    let text = toml::to_string(&c).context("cannot write the bench's configuration")?;
    let header = "# Written by `quarry bench scale`; rewritten (with new keys) by every run.\n";
    crate::cmd::write_atomically(path, format!("{header}{text}").as_bytes())
}

/// What a data directory was built from; `--reuse` regenerates the same corpus only if these agree.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Manifest {
    pub(super) chunks: u64,
    pub(super) seed: u64,
    pub(super) words: String,
    pub(super) vectors: String,
    pub(super) embedder: String,
}

impl Manifest {
    /// The manifest in words, for a message.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} chunks, seed {}, words: {}, vectors: {}, embedder {}",
            self.chunks, self.seed, self.words, self.vectors, self.embedder
        )
    }

    pub(super) fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::cmd::write_atomically(path, &serde_json::to_vec_pretty(self)?)
    }

    /// The manifest at `path`, if there is one.
    pub(super) fn read(path: &Path) -> anyhow::Result<Option<Manifest>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not a bench manifest", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}
