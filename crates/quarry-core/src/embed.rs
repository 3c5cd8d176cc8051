//! The `Embedder` trait and the embedder spec whose fingerprint names every stored vector.
//!
//! Implementations live in `quarry-embed` (the local model, the OpenAI-compatible client, the
//! hashing embedder for tests). The engine only sees this trait: it embeds chunk texts with
//! [`Embedder::embed`] and counts tokens with [`Embedder::count_tokens`] to size chunks.
//!
//! A vector is only ever compared with vectors of the same [`Fingerprint`] (docs/design.md,
//! invariant 2). The fingerprint is `blake3` of the canonical JSON of the [`EmbedderSpec`]:
//! everything that changes what a text's vector is (provider, model, weights revision, dimensions,
//! pooling, normalisation, truncation, prefixes), and nothing that does not (batch size, URLs,
//! keys, timeouts).

use std::fmt;

/// Whether a text is a query or a document passage (models with asymmetric prefixes embed them
/// differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Query,
    Document,
}

/// What determines the vectors an embedder produces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSpec {
    /// `local`, `openai` or `hash`.
    pub provider: String,
    /// Model name, e.g. `all-MiniLM-L6-v2` or the provider's model string.
    pub model: String,
    /// Weights sha256 for local models; the provider's model string for APIs.
    pub revision: String,
    pub dimensions: usize,
    /// `mean`, `cls`, or `none` when the provider pools.
    pub pooling: String,
    /// Vectors are L2-normalised.
    pub normalized: bool,
    /// Longest input in tokens; longer inputs are truncated (0 = provider-defined).
    pub max_tokens: usize,
    #[serde(default)]
    pub query_prefix: String,
    #[serde(default)]
    pub document_prefix: String,
}

impl EmbedderSpec {
    /// Canonical JSON: fixed field order (the struct's), no whitespace.
    pub fn canonical(&self) -> String {
        // Serialising a plain struct of strings, numbers and bools cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(*blake3::hash(self.canonical().as_bytes()).as_bytes())
    }

    /// Text sent to the model for `text` of `kind` (the configured prefix, then the text).
    pub fn prefixed<'t>(&self, text: &'t str, kind: InputKind) -> std::borrow::Cow<'t, str> {
        let prefix = match kind {
            InputKind::Query => &self.query_prefix,
            InputKind::Document => &self.document_prefix,
        };
        if prefix.is_empty() {
            std::borrow::Cow::Borrowed(text)
        } else {
            std::borrow::Cow::Owned(format!("{prefix}{text}"))
        }
    }
}

/// `blake3` of an embedder spec's canonical JSON; shown as 64 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| Fingerprint(*h.as_bytes()))
    }

    /// The first 12 hex characters, as shown to people.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

/// Why an embedding call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EmbedError {
    /// The model files are missing, corrupt or of an unsupported kind; the message says how to fix it.
    #[error("embedding model unavailable: {0}")]
    Model(String),
    /// The input cannot be embedded (the caller's mistake).
    #[error("cannot embed this input: {0}")]
    Input(String),
    /// The provider failed, timed out, or answered something unusable, after any retries.
    #[error("embedding provider failed: {0}")]
    Provider(String),
}

/// Turns texts into vectors. Implementations are cheap to share across threads.
pub trait Embedder: Send + Sync {
    fn spec(&self) -> &EmbedderSpec;

    /// The spec's fingerprint (implementations compute it once).
    fn fingerprint(&self) -> Fingerprint;

    /// One vector of `spec().dimensions` per text, in order. Prefixes are applied here.
    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Tokens of `text` as the model counts them (special tokens included), or `None` when the
    /// embedder has no tokenizer of its own (then chunks are sized in characters).
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// [`Embedder::embed`], and the tokens the model read (truncation applied), `None` when it
    /// counts none: what the telemetry records per call. Embedders that tokenise anyway return
    /// their own count, so the texts are not tokenised a second time; this default counts with
    /// [`Embedder::count_tokens`], capped at the spec's `max_tokens`.
    fn embed_counted(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<(Vec<Vec<f32>>, Option<usize>), EmbedError> {
        let vectors = self.embed(texts, kind)?;
        let cap = match self.spec().max_tokens {
            0 => usize::MAX,
            n => n,
        };
        let tokens = texts
            .iter()
            .map(|s| self.count_tokens(s).map(|n| n.min(cap)))
            .sum();
        Ok((vectors, tokens))
    }
}

/// L2-normalises `v` in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors of equal length (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Why an embedder cannot serve the vectors of a fingerprint ([`matching`]).
pub enum Mismatch {
    /// No embedder of that name is configured, or it produces no vectors.
    Missing,
    /// It is configured with another fingerprint (another model, weights, pooling or prefixes).
    Changed(std::sync::Arc<dyn Embedder>),
}

/// The embedder `resolved` (as looked up by name) when it computes the vectors of `expected`:
/// vectors are only ever compared with vectors of the same fingerprint. The one check of a
/// resolved embedder against a stored version; callers say in their own words what to do.
pub fn matching(
    resolved: Option<std::sync::Arc<dyn Embedder>>,
    expected: &Fingerprint,
) -> Result<std::sync::Arc<dyn Embedder>, Mismatch> {
    match resolved {
        Some(e) if e.fingerprint() == *expected => Ok(e),
        Some(e) => Err(Mismatch::Changed(e)),
        None => Err(Mismatch::Missing),
    }
}

/// Why [`embed_checked`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedCheckError {
    /// The embedder failed.
    Embed(EmbedError),
    /// It answered `got` vectors for `expected` texts.
    Count { got: usize, expected: usize },
    /// A vector has `got` values instead of `expected`.
    Dimensions { got: usize, expected: usize },
}

/// Embeds `texts` and checks the answer: one vector per text, each of `dimensions` values when
/// given; every vector is then L2-normalised ([`normalize`]), as the indexes compare them.
pub fn embed_checked(
    embedder: &dyn Embedder,
    texts: &[&str],
    kind: InputKind,
    dimensions: Option<usize>,
) -> Result<Vec<Vec<f32>>, EmbedCheckError> {
    Ok(embed_checked_counted(embedder, texts, kind, dimensions)?.0)
}

/// [`embed_checked`], with the tokens the model read ([`Embedder::embed_counted`]).
pub fn embed_checked_counted(
    embedder: &dyn Embedder,
    texts: &[&str],
    kind: InputKind,
    dimensions: Option<usize>,
) -> Result<(Vec<Vec<f32>>, Option<usize>), EmbedCheckError> {
    let (mut vectors, tokens) = embedder
        .embed_counted(texts, kind)
        .map_err(EmbedCheckError::Embed)?;
    if vectors.len() != texts.len() {
        return Err(EmbedCheckError::Count {
            got: vectors.len(),
            expected: texts.len(),
        });
    }
    if let Some(d) = dimensions
        && let Some(v) = vectors.iter().find(|v| v.len() != d)
    {
        return Err(EmbedCheckError::Dimensions {
            got: v.len(),
            expected: d,
        });
    }
    vectors.iter_mut().for_each(|v| normalize(v));
    Ok((vectors, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EmbedderSpec {
        EmbedderSpec {
            provider: "local".into(),
            model: "m".into(),
            revision: "r".into(),
            dimensions: 3,
            pooling: "mean".into(),
            normalized: true,
            max_tokens: 256,
            query_prefix: String::new(),
            document_prefix: String::new(),
        }
    }

    #[test]
    fn fingerprint_changes_with_what_changes_vectors() {
        let a = spec();
        assert_eq!(a.fingerprint(), spec().fingerprint());
        let mut b = spec();
        b.dimensions = 4;
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = spec();
        c.query_prefix = "query: ".into();
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(
            Fingerprint::from_hex(&a.fingerprint().to_hex()),
            Some(a.fingerprint())
        );
        assert_eq!(
            a.canonical(),
            r#"{"provider":"local","model":"m","revision":"r","dimensions":3,"pooling":"mean","normalized":true,"max_tokens":256,"query_prefix":"","document_prefix":""}"#
        );
    }

    #[test]
    fn normalize_and_cosine() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    /// Answers a fixed list of vectors, whatever it is asked.
    struct Fixed(EmbedderSpec, Vec<Vec<f32>>);

    impl Embedder for Fixed {
        fn spec(&self) -> &EmbedderSpec {
            &self.0
        }
        fn fingerprint(&self) -> Fingerprint {
            self.0.fingerprint()
        }
        fn embed(&self, _: &[&str], _: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(self.1.clone())
        }
    }

    #[test]
    fn embed_checked_counts_sizes_and_normalises() {
        let e = Fixed(spec(), vec![vec![3.0, 4.0, 0.0]]);
        let out = embed_checked(&e, &["a"], InputKind::Query, Some(3)).unwrap();
        assert_eq!(out, vec![vec![0.6, 0.8, 0.0]]);
        assert_eq!(
            embed_checked(&e, &["a", "b"], InputKind::Query, None),
            Err(EmbedCheckError::Count {
                got: 1,
                expected: 2
            })
        );
        assert_eq!(
            embed_checked(&e, &["a"], InputKind::Query, Some(4)),
            Err(EmbedCheckError::Dimensions {
                got: 3,
                expected: 4
            })
        );
    }

    #[test]
    fn matching_embedders_have_the_expected_fingerprint() {
        let e: std::sync::Arc<dyn Embedder> = std::sync::Arc::new(Fixed(spec(), vec![]));
        assert!(matching(Some(e.clone()), &spec().fingerprint()).is_ok());
        let other = EmbedderSpec {
            dimensions: 4,
            ..spec()
        };
        assert!(matches!(
            matching(Some(e), &other.fingerprint()),
            Err(Mismatch::Changed(_))
        ));
        assert!(matches!(
            matching(None, &other.fingerprint()),
            Err(Mismatch::Missing)
        ));
    }
}
