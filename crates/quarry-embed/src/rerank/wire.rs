//! The two `/rerank` wire formats: the request body of each, and how an answer is read into one
//! score per passage, in the passages' order.

use super::options::RerankFormat;
use crate::http::snippet;

/// The request body of `format`.
pub(super) fn request(
    format: RerankFormat,
    model: Option<&str>,
    query: &str,
    documents: &[&str],
) -> serde_json::Value {
    match format {
        RerankFormat::Cohere => {
            let mut body = serde_json::json!({
                "query": query, "documents": documents, "top_n": documents.len(),
            });
            if let (Some(m), Some(o)) = (model, body.as_object_mut()) {
                o.insert("model".into(), m.into());
            }
            body
        }
        RerankFormat::Tei => serde_json::json!({
            "query": query, "texts": documents, "truncate": true,
        }),
    }
}

#[derive(serde::Deserialize)]
struct CohereAnswer {
    results: Vec<CohereItem>,
}

#[derive(serde::Deserialize)]
struct CohereItem {
    index: usize,
    relevance_score: f32,
}

#[derive(serde::Deserialize)]
struct TeiItem {
    index: usize,
    score: f32,
}

/// Checks a 2xx body of `format` for `n` passages and returns their scores in passage order.
pub(super) fn parse(format: RerankFormat, body: &[u8], n: usize) -> Result<Vec<f32>, String> {
    let not_json = |e: serde_json::Error| {
        format!(
            "the response is not {format:?}-format rerank JSON ({e}); it starts with {:?}",
            snippet(&String::from_utf8_lossy(body), 120)
        )
    };
    let items: Vec<(usize, f32)> = match format {
        RerankFormat::Cohere => serde_json::from_slice::<CohereAnswer>(body)
            .map_err(not_json)?
            .results
            .into_iter()
            .map(|i| (i.index, i.relevance_score))
            .collect(),
        RerankFormat::Tei => serde_json::from_slice::<Vec<TeiItem>>(body)
            .map_err(not_json)?
            .into_iter()
            .map(|i| (i.index, i.score))
            .collect(),
    };
    if items.len() != n {
        return Err(format!(
            "the response scores {} passages of the {n} sent",
            items.len()
        ));
    }
    let mut scores: Vec<Option<f32>> = vec![None; n];
    for (index, score) in items {
        let Some(slot) = scores.get_mut(index) else {
            return Err(format!(
                "the response has index {index}, out of range for {n} passages"
            ));
        };
        if slot.is_some() {
            return Err(format!("the response has index {index} twice"));
        }
        if !score.is_finite() {
            return Err(format!("the score of index {index} is not finite"));
        }
        *slot = Some(score);
    }
    // n items, all in range, none twice: every slot is filled.
    scores
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| format!("the response lacks index {i}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_read_into_passage_order() {
        let cohere = br#"{"id": "x", "results": [{"index": 2, "relevance_score": 0.9},
            {"index": 0, "relevance_score": 0.5}, {"index": 1, "relevance_score": 0.1}],
            "meta": {}}"#;
        assert_eq!(
            parse(RerankFormat::Cohere, cohere, 3),
            Ok(vec![0.5, 0.1, 0.9])
        );
        let tei = br#"[{"index": 1, "score": 3.5}, {"index": 0, "score": -2.0}]"#;
        assert_eq!(parse(RerankFormat::Tei, tei, 2), Ok(vec![-2.0, 3.5]));
        // each format refuses the other's answer
        assert!(parse(RerankFormat::Tei, cohere, 3).is_err());
        assert!(parse(RerankFormat::Cohere, tei, 2).is_err());
    }

    #[test]
    fn unusable_answers_say_why() {
        let f = RerankFormat::Tei;
        let cases: [(&[u8], &str); 5] = [
            (
                br#"[{"index": 0, "score": 1}]"#,
                "scores 1 passages of the 2",
            ),
            (
                br#"[{"index": 0, "score": 1}, {"index": 2, "score": 1}]"#,
                "out of range",
            ),
            (
                br#"[{"index": 1, "score": 1}, {"index": 1, "score": 2}]"#,
                "twice",
            ),
            (
                br#"[{"index": 0, "score": 1}, {"index": 1, "score": 1e39}]"#,
                "not finite",
            ),
            (b"<html>502</html>", "not Tei-format"),
        ];
        for (body, why) in cases {
            let e = parse(f, body, 2).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn requests_have_each_formats_shape() {
        let docs = ["a", "b"];
        assert_eq!(
            request(RerankFormat::Cohere, Some("m"), "q", &docs),
            serde_json::json!({"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 2})
        );
        assert_eq!(
            request(RerankFormat::Cohere, None, "q", &docs),
            serde_json::json!({"query": "q", "documents": ["a", "b"], "top_n": 2})
        );
        assert_eq!(
            request(RerankFormat::Tei, Some("m"), "q", &docs),
            serde_json::json!({"query": "q", "texts": ["a", "b"], "truncate": true})
        );
    }
}
