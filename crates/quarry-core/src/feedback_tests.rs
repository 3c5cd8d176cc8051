//! The `feedback` option of a query request: parsed, checked (a bad value names its field) and
//! sent back unchanged by `QueryRequest::from`.

use crate::feedback::{Feedback, FeedbackSwitch};
use crate::query::tests::{defaults, parse_with};
use crate::query::{Mode, QueryRequest};

#[test]
fn feedback_is_checked_and_round_trips() {
    let d = defaults(Mode::Bm25);
    let request = |json: serde_json::Value| parse_with(d, json);
    let q = request(serde_json::json!({"query": "a", "feedback": true})).unwrap();
    assert_eq!(q.feedback, Some(FeedbackSwitch::On));
    let q = request(serde_json::json!({"query": "a",
        "feedback": {"fb_docs": 5, "fb_terms": 20, "orig_weight": 0.7}}))
    .unwrap();
    let want = Feedback {
        fb_docs: 5,
        fb_terms: 20,
        orig_weight: 0.7,
    };
    assert_eq!(q.feedback, Some(FeedbackSwitch::With(want)));
    assert_eq!(QueryRequest::from(&q).options(d).unwrap(), q);
    for bad in [
        serde_json::json!({"fb_docs": 101}),
        serde_json::json!({"fb_terms": 1000}),
        serde_json::json!({"orig_weight": 0.0}),
        // Below 0.01 the added terms' weights overflow f32 (1e-40 gave infinite scores).
        serde_json::json!({"orig_weight": 1e-40}),
        serde_json::json!({"orig_weight": 0.009}),
        serde_json::json!({"orig_weight": 1.5}),
    ] {
        let e = request(serde_json::json!({"query": "a", "feedback": bad}));
        assert!(e.unwrap_err().to_string().contains("feedback."), "{bad}");
    }
    assert!(request(serde_json::json!({"query": "a", "feedback": {"docs": 3}})).is_err());
    assert!(request(serde_json::json!({"query": "a", "feedback": "yes"})).is_err());
    assert!(
        request(serde_json::json!({"query": "a"}))
            .unwrap()
            .feedback
            .is_none()
    );
}
