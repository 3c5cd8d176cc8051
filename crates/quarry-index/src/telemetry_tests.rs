//! The totals an ingest reads against the series `/metrics` prints.

use super::*;

/// An embedder that counts a text's words plus two as its tokens (capped at `max_tokens` by the
/// meter, as the local model's are).
struct Words(EmbedderSpec);

impl Embedder for Words {
    fn spec(&self) -> &EmbedderSpec {
        &self.0
    }
    fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint()
    }
    fn embed(&self, texts: &[&str], _: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
    }
    fn count_tokens(&self, text: &str) -> Option<usize> {
        Some(text.split_whitespace().count() + 2)
    }
}

fn words(model: &str) -> Arc<dyn Embedder> {
    Arc::new(Words(EmbedderSpec {
        provider: "test".into(),
        model: model.into(),
        revision: "1".into(),
        dimensions: 2,
        pooling: "none".into(),
        normalized: true,
        max_tokens: 5,
        query_prefix: String::new(),
        document_prefix: String::new(),
    }))
}

/// The value of the series `name{embedder="…",kind="…"}` in the OpenMetrics text.
fn series(text: &str, name: &str, embedder: &str, kind: &str) -> f64 {
    let key = format!("{name}{{embedder=\"{embedder}\",kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn document_totals_are_the_document_series_summed() {
    let t = Arc::new(Telemetry::new());
    assert_eq!(t.document_embedding(), EmbedTotals::default());
    let a = t.meter("a", words("a"));
    let b = t.meter("b", words("b"));
    // 2 + 2 = 4 tokens, and 6 + 2 capped at 5
    a.embed(
        &["one two", "one two three four five six"],
        InputKind::Document,
    )
    .unwrap();
    b.embed(&["x"], InputKind::Document).unwrap();
    // queries are not documents
    a.embed(&["q q q"], InputKind::Query).unwrap();
    let totals = t.document_embedding();
    assert_eq!((totals.texts, totals.tokens), (3, 12));
    assert!(totals.seconds > 0.0);

    let text = t.encode();
    let sum =
        |name: &str| series(&text, name, "a", "document") + series(&text, name, "b", "document");
    assert_eq!(sum("quarry_embedding_texts_total"), totals.texts as f64);
    assert_eq!(sum("quarry_embedding_tokens_total"), totals.tokens as f64);
    assert!((sum("quarry_embedding_seconds_total") - totals.seconds).abs() < 1e-6);
    assert_eq!(
        series(&text, "quarry_embedding_tokens_total", "a", "query"),
        5.0
    );
}

#[test]
fn queued_chunks_are_counted_per_embedder_and_in_the_totals() {
    let t = Telemetry::new();
    t.observe_queued("a", 7);
    t.observe_queued("a", 0);
    t.observe_queued("b", 2);
    assert_eq!(t.document_embedding().queued, 9);
    let text = t.encode();
    let value = |e: &str| {
        let key = format!("quarry_embedding_queued_total{{embedder=\"{e}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(|v| v.trim().parse::<f64>().unwrap())
    };
    assert_eq!((value("a"), value("b")), (Some(7.0), Some(2.0)));
}

/// An embedder that returns its count with its vectors and cannot count apart.
struct Counted(EmbedderSpec);

impl Embedder for Counted {
    fn spec(&self) -> &EmbedderSpec {
        &self.0
    }
    fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint()
    }
    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts, kind)?.0)
    }
    fn embed_counted(
        &self,
        texts: &[&str],
        _: InputKind,
    ) -> Result<(Vec<Vec<f32>>, Option<usize>), EmbedError> {
        Ok((
            texts.iter().map(|_| vec![1.0, 0.0]).collect(),
            Some(7 * texts.len()),
        ))
    }
    fn count_tokens(&self, _: &str) -> Option<usize> {
        panic!("the meter tokenised a text a second time")
    }
}

#[test]
fn the_meter_records_the_count_that_came_with_the_vectors() {
    let t = Arc::new(Telemetry::new());
    let c = t.meter("c", Arc::new(Counted(words("c").spec().clone())));
    let v = c.embed(&["a", "b", "c"], InputKind::Document).unwrap();
    assert_eq!(v.len(), 3);
    let (_, n) = c.embed_counted(&["d"], InputKind::Document).unwrap();
    assert_eq!(n, Some(7));
    let totals = t.document_embedding();
    assert_eq!((totals.texts, totals.tokens), (4, 28));
    assert_eq!(
        series(
            &t.encode(),
            "quarry_embedding_tokens_total",
            "c",
            "document"
        ),
        28.0
    );
}
