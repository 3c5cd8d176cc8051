//! Helpers shared by the crate's unit tests.

use crate::collection::EmbedderSource;
use crate::engine::{Change, Engine};
use crate::error::Result;
use quarry_core::{ContentHash, DocFormat, Document};
use quarry_core::{EmbedError, Embedder, EmbedderSpec, InputKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A plain-text document without an ACL of its own.
pub(crate) fn doc(id: &str, text: &str) -> Document {
    Document {
        doc_id: id.into(),
        title: String::new(),
        text: text.into(),
        source: "test".into(),
        format: DocFormat::Text,
        metadata: Default::default(),
        acl: vec![],
        content_hash: ContentHash::of(text.as_bytes()),
    }
}

/// Upserts `doc(id, text)` into `collection`, chunked as the collection chunks.
pub(crate) fn put(engine: &Engine, collection: &str, id: &str, text: &str) {
    let d = doc(id, text);
    let chunks = engine
        .chunker(collection)
        .unwrap()
        .chunk(&d.title, &d.text, d.format);
    engine
        .apply(collection, vec![Change::Upsert(d, chunks)])
        .unwrap();
}

/// A test embedder: `letters` (a letter histogram: a text is nearest to itself) or `noise` (a
/// pseudo-random direction per text: no notion of meaning). Counts the texts it embeds and its
/// calls, and fails every call while [`Model::fail`] is on (a provider that is down).
pub(crate) struct Model {
    spec: EmbedderSpec,
    noise: bool,
    texts: AtomicUsize,
    calls: AtomicUsize,
    failing: AtomicBool,
}

impl Model {
    pub(crate) fn new(model: &str, dims: usize, noise: bool) -> Arc<Model> {
        Arc::new(Model {
            spec: EmbedderSpec {
                provider: "hash".into(),
                model: model.into(),
                revision: "1".into(),
                dimensions: dims,
                pooling: "none".into(),
                normalized: true,
                max_tokens: 0,
                query_prefix: String::new(),
                document_prefix: String::new(),
            },
            noise,
            texts: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        })
    }

    /// Texts embedded (by calls that succeeded).
    pub(crate) fn texts(&self) -> usize {
        self.texts.load(Ordering::SeqCst)
    }

    /// Calls that embedded something.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// From now on every call fails (`true`) or works again (`false`).
    pub(crate) fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

impl Embedder for Model {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }
    fn fingerprint(&self) -> quarry_core::Fingerprint {
        self.spec.fingerprint()
    }
    fn embed(
        &self,
        texts: &[&str],
        _: InputKind,
    ) -> std::result::Result<Vec<Vec<f32>>, EmbedError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(EmbedError::Provider("503 service unavailable".into()));
        }
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let dims = self.spec.dimensions;
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; dims];
                if self.noise {
                    let mut state = blake3::hash(t.as_bytes()).as_bytes()[0] as u64 + 1;
                    for x in v.iter_mut() {
                        state = quarry_core::rng::mix(state.wrapping_add(quarry_core::rng::GAMMA));
                        *x = (state % 1000) as f32 / 500.0 - 1.0;
                    }
                } else {
                    for c in t.bytes().filter(u8::is_ascii_lowercase) {
                        v[(c - b'a') as usize % dims] += 1.0;
                    }
                }
                quarry_core::embed::normalize(&mut v);
                v
            })
            .collect())
    }
}

pub(crate) struct Models(pub(crate) Vec<(&'static str, Arc<Model>)>);
impl EmbedderSource for Models {
    fn get(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>> {
        Ok(self
            .0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.clone() as Arc<dyn Embedder>))
    }
}

/// A letter-histogram embedder (26 dimensions): deterministic, no model.
struct LettersModel(quarry_core::EmbedderSpec);

impl Embedder for LettersModel {
    fn spec(&self) -> &quarry_core::EmbedderSpec {
        &self.0
    }
    fn fingerprint(&self) -> quarry_core::Fingerprint {
        self.0.fingerprint()
    }
    fn embed(
        &self,
        texts: &[&str],
        _kind: InputKind,
    ) -> std::result::Result<Vec<Vec<f32>>, quarry_core::EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.01f32; 26];
                for c in t.bytes().filter(u8::is_ascii_lowercase) {
                    v[(c - b'a') as usize] += 1.0;
                }
                quarry_core::embed::normalize(&mut v);
                v
            })
            .collect())
    }
}

/// Resolves `letters` to [`LettersModel`], any other name to nothing.
pub(crate) struct Letters;
impl EmbedderSource for Letters {
    fn get(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>> {
        Ok((name == "letters").then(|| {
            Arc::new(LettersModel(quarry_core::EmbedderSpec {
                provider: "hash".into(),
                model: "letters".into(),
                revision: "1".into(),
                dimensions: 26,
                pooling: "none".into(),
                normalized: true,
                max_tokens: 0,
                query_prefix: String::new(),
                document_prefix: String::new(),
            })) as Arc<dyn Embedder>
        }))
    }
}
