//! Checks that an embedder still makes the vectors its version was built with: the canary set
//! of the active version re-embedded and compared ([`check_canary`]), and the collections whose
//! configured embedder changed its fingerprint under the same name ([`model_changes`]).

use crate::Engine;
use crate::error::{Error, Result};
use quarry_core::InputKind;
use quarry_core::embed::{EmbedCheckError, Mismatch, embed_checked};

/// What re-embedding a version's canary set found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CanaryReport {
    pub collection: String,
    pub version: String,
    pub embedder: String,
    /// Canary chunks re-embedded.
    pub checked: usize,
    /// The lowest cosine between a canary's stored vector and its vector now.
    pub min_cosine: f64,
    /// `min_cosine` is below `canary_min_cosine`: the model behind the embedder changed.
    pub drifted: bool,
}

/// A collection's canary check: its report (`None` without vectors), or why it could not run.
pub type CanaryOutcome = std::result::Result<Option<CanaryReport>, String>;

/// A collection whose configured embedder no longer has its active version's fingerprint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelChange {
    pub collection: String,
    pub embedder: String,
    pub active_version: String,
    pub active_fingerprint: String,
    pub configured_fingerprint: String,
}

/// Re-embeds the canary set of the collection's active version (capturing one first if the
/// version has none) and compares with the stored vectors. Sets the
/// `quarry_embedding_canary_min_cosine` and `quarry_embedding_drift` gauges; a drift is also
/// logged as a warning. `None` for a collection without vectors.
pub fn check_canary(engine: &Engine, collection: &str) -> Result<Option<CanaryReport>> {
    let Some(version) = engine.catalog().active_version(collection)? else {
        return Ok(None);
    };
    let embedder = match engine.embedder_of(&version)? {
        Ok(e) => e,
        Err(_) => {
            return Err(Error::Input(format!(
                "embedder `{}` is configured differently from version {}; a re-index to the new settings is due, not a canary check",
                version.embedder, version.id
            )));
        }
    };
    let mut canaries = engine.catalog().canaries(collection, &version.id)?;
    if canaries.is_empty() {
        engine.capture_canaries(collection, &version)?;
        canaries = engine.catalog().canaries(collection, &version.id)?;
    }
    let mut min_cosine = 1.0f64;
    for batch in canaries.chunks(engine.options().embed_batch.max(1)) {
        let inputs: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
        // No dimension check: a vector of another length is a changed model (cosine 0).
        let now =
            embed_checked(&*embedder, &inputs, InputKind::Document, None).map_err(|e| match e {
                EmbedCheckError::Count { got, expected } => Error::Embed(format!(
                    "embedder `{}` returned {got} vectors for {expected} canary texts",
                    version.embedder
                )),
                EmbedCheckError::Embed(e) => Error::Embed(e.to_string()),
                e @ EmbedCheckError::Dimensions { .. } => Error::Embed(format!("{e:?}")),
            })?;
        for ((_, stored), v) in batch.iter().zip(now) {
            let c = if v.len() == stored.len() {
                f64::from(quarry_core::embed::cosine(stored, &v))
            } else {
                0.0
            };
            min_cosine = min_cosine.min(c);
        }
    }
    if canaries.is_empty() {
        return Ok(None);
    }
    let drifted = min_cosine < engine.options().canary_min_cosine;
    engine
        .telemetry()
        .observe_canary(collection, &version.id, min_cosine, drifted);
    if drifted {
        tracing::warn!(
            collection, version = %version.id, min_cosine,
            "embedding drift: embedder `{}` now embeds the canary chunks of version {} differently \
             (lowest cosine {min_cosine:.4} < {}): the provider changed its model behind the same name. \
             Vectors of the two no longer compare; re-index to a new embedder name, or pin the provider's model version",
            version.embedder, version.id, engine.options().canary_min_cosine
        );
    }
    Ok(Some(CanaryReport {
        collection: collection.to_owned(),
        version: version.id,
        embedder: version.embedder,
        checked: canaries.len(),
        min_cosine,
        drifted,
    }))
}

/// [`check_canary`] of every collection; a collection that cannot be checked is
/// reported as an error string.
pub fn check_canaries(engine: &Engine) -> Result<Vec<(String, CanaryOutcome)>> {
    let collections = engine.catalog().collections()?;
    let out: Vec<(String, CanaryOutcome)> = collections
        .into_iter()
        .map(|c| {
            let r = check_canary(engine, &c.name).map_err(|e| e.to_string());
            (c.name, r)
        })
        .collect();
    // Only the versions that serve keep canary series.
    let serving: std::collections::BTreeSet<(String, String)> = out
        .iter()
        .filter_map(|(c, r)| Some((c.clone(), r.as_ref().ok()?.as_ref()?.version.clone())))
        .collect();
    engine.telemetry().retain_canary(&serving);
    Ok(out)
}

/// Collections whose active version's embedder is now configured with another fingerprint
/// (a different model, weights file, pooling or prefixes under the same name). Their vector
/// queries answer from BM25 until a re-index to the new settings is promoted.
pub fn model_changes(engine: &Engine) -> Result<Vec<ModelChange>> {
    let mut out = Vec::new();
    // One catalog lock at a time: the list is read before the loop locks again.
    let collections = engine.catalog().collections()?;
    for row in collections {
        let Some(active) = engine.catalog().active_version(&row.name)? else {
            continue;
        };
        let Ok(Err(Mismatch::Changed(e))) = engine.embedder_of(&active) else {
            continue;
        };
        {
            out.push(ModelChange {
                collection: row.name,
                embedder: active.embedder.clone(),
                active_version: active.id.clone(),
                active_fingerprint: active.fingerprint.to_hex(),
                configured_fingerprint: e.fingerprint().to_hex(),
            });
        }
    }
    Ok(out)
}
