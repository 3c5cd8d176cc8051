//! A deterministic hashing embedder, **for tests only**.
//!
//! Each lower-cased alphanumeric word is hashed with blake3 to one of `dimensions` buckets and a
//! sign; the vector is the L2-normalised sum. Texts sharing words get a positive cosine, so tests
//! can check ranking and fusion offline, but the vectors carry no learned meaning: never use it for
//! real retrieval.

use quarry_core::embed::normalize;
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};

pub struct HashEmbedder {
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
}

impl HashEmbedder {
    pub fn new(dimensions: usize) -> Result<Self, EmbedError> {
        if dimensions == 0 || dimensions > 65_536 {
            return Err(EmbedError::Model(format!(
                "hash embedder dimensions {dimensions}: use 1 to 65536"
            )));
        }
        let spec = EmbedderSpec {
            provider: "hash".into(),
            model: "blake3-bag-of-words".into(),
            revision: "1".into(),
            dimensions,
            pooling: "sum".into(),
            normalized: true,
            max_tokens: 0,
            query_prefix: String::new(),
            document_prefix: String::new(),
        };
        Ok(HashEmbedder {
            fingerprint: spec.fingerprint(),
            spec,
        })
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        let dims = self.spec.dimensions;
        let mut v = vec![0f32; dims];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let h = blake3::hash(word.to_lowercase().as_bytes());
            let b = h.as_bytes();
            let n = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let sign = if b[8] & 1 == 0 { 1.0 } else { -1.0 };
            v[(n % dims as u64) as usize] += sign;
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for HashEmbedder {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn embed(&self, texts: &[&str], _kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::embed::cosine;

    #[test]
    fn deterministic_normalised_and_word_sensitive() {
        let e = HashEmbedder::new(64).unwrap();
        let v = e
            .embed(
                &["Rust is fast", "rust IS fast", "bananas"],
                InputKind::Document,
            )
            .unwrap();
        assert_eq!(v[0], v[1]);
        assert_eq!(v[0].len(), 64);
        let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(cosine(&v[0], &v[1]) > 0.999);
        assert!(cosine(&v[0], &v[2]) < 0.9);
        assert!(HashEmbedder::new(0).is_err());
        // the empty text embeds to the zero vector rather than failing
        assert!(
            e.embed(&[""], InputKind::Query).unwrap()[0]
                .iter()
                .all(|x| *x == 0.0)
        );
    }
}
