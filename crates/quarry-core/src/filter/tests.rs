//! The filter language: parse errors that name the place, typing against a schema, and
//! evaluation on hand-written documents.

use super::*;
use crate::error::Result;
use serde_json::json;

fn schema() -> FieldSchema {
    let mut s = FieldSchema::builtin();
    s.add("year", FieldType::Number);
    s.add("tags", FieldType::String);
    s.add("draft", FieldType::Bool);
    s.add("published", FieldType::Date);
    s.add("mixed", FieldType::String);
    s.add("mixed", FieldType::Number);
    s
}

fn resolve(v: serde_json::Value) -> Result<Filter> {
    Filter::parse(&v)?.resolve(&schema())
}

fn doc(v: serde_json::Value) -> FieldValues {
    field_values(v.as_object().expect("object"))
}

fn err(v: serde_json::Value) -> String {
    resolve(v).unwrap_err().to_string()
}

#[test]
fn parse_errors_say_where() {
    assert!(err(json!([])).contains("expected an object"));
    assert!(err(json!({"and": []})).contains("filter.and: expected a non-empty array"));
    assert!(
        err(json!({"or": [{"field": "year"}]}))
            .contains("filter.or[0]: the leaf on `year` has no condition")
    );
    assert!(err(json!({"field": "year", "eq": 1, "in": [1]})).contains("one condition"));
    assert!(err(json!({"field": "year", "gt": 1, "gte": 2})).contains("one lower bound"));
    assert!(err(json!({"field": "year", "eq": 1, "lt": 3})).contains("one condition"));
    assert!(err(json!({"field": "year", "equals": 1})).contains("unknown key `equals`"));
    assert!(err(json!({"field": "year", "eq": null})).contains("filter.eq: values are strings"));
    assert!(err(json!({"field": "year", "eq": [1]})).contains("values are strings"));
    assert!(err(json!({"field": "year", "in": []})).contains("non-empty array"));
    assert!(err(json!({"not": {}, "and": [{}]})).contains("only key"));
    assert!(err(json!({"field": "", "eq": 1})).contains("non-empty string"));
    let mut deep = json!({});
    for _ in 0..40 {
        deep = json!({ "not": deep });
    }
    assert!(err(deep).contains("nests at most"));
    let wide: Vec<_> = (0..2000).map(|_| json!({})).collect();
    assert!(err(json!({ "or": wide })).contains("at most"));
}

#[test]
fn typing_names_the_field() {
    let e = err(json!({"and": [{}, {"field": "yaer", "eq": 2020}]}));
    assert!(
        e.contains("filter.and[1]: unknown field `yaer`") && e.contains("year"),
        "{e}"
    );
    assert!(
        err(json!({"field": "year", "eq": "2020"})).contains("`year` holds number, not strings")
    );
    assert!(err(json!({"field": "draft", "eq": 1})).contains("`draft` holds boolean, not numbers"));
    assert!(err(json!({"field": "tags", "gte": "a"})).contains("a range on `tags`"));
    assert!(
        err(json!({"field": "published", "gte": "last week"})).contains("not an RFC 3339 date")
    );
    assert!(err(json!({"field": "published", "gte": 3})).contains("not numbers"));
    // every field of a schema accepts exists, even where no document has the field
    assert!(resolve(json!({"field": "draft", "exists": false})).is_ok());
}

#[test]
fn evaluation() {
    let a = doc(
        json!({"year": 2020, "tags": ["x", "y"], "draft": false, "published": "2024-05-01", "mixed": "1"}),
    );
    let b = doc(
        json!({"year": 2023.5, "tags": "z", "published": "2024-06-01T00:00:00+02:00", "mixed": 1}),
    );
    let c = doc(json!({}));
    let cases = [
        (json!({}), [true, true, true]),
        (json!({"field": "year", "eq": 2020}), [true, false, false]),
        (json!({"field": "tags", "eq": "y"}), [true, false, false]),
        (
            json!({"field": "tags", "in": ["q", "z"]}),
            [false, true, false],
        ),
        (json!({"field": "year", "gt": 2020}), [false, true, false]),
        (
            json!({"field": "year", "gte": 2020, "lt": 2023.5}),
            [true, false, false],
        ),
        (json!({"field": "year", "lte": 2023.5}), [true, true, false]),
        (
            json!({"field": "published", "gte": "2024-05-31T22:00:00Z"}),
            [false, true, false],
        ),
        (
            json!({"field": "published", "lt": "2024-05-31T22:00:00Z"}),
            [true, false, false],
        ),
        (
            json!({"field": "published", "eq": "2024-05-01T00:00:00Z"}),
            [true, false, false],
        ),
        (
            json!({"field": "draft", "exists": true}),
            [true, false, false],
        ),
        (
            json!({"field": "draft", "exists": false}),
            [false, true, true],
        ),
        (
            json!({"not": {"field": "tags", "eq": "x"}}),
            [false, true, true],
        ),
        (json!({"field": "mixed", "eq": 1}), [false, true, false]),
        (json!({"field": "mixed", "eq": "1"}), [true, false, false]),
        (json!({"field": "mixed", "gte": 0}), [false, true, false]),
        (
            json!({"or": [{"field": "year", "eq": 2020}, {"field": "tags", "eq": "z"}]}),
            [true, true, false],
        ),
        (
            json!({"and": [{"field": "year", "exists": true}, {"not": {"field": "year", "eq": 2020}}]}),
            [false, true, false],
        ),
    ];
    for (f, want) in cases {
        let r = resolve(f.clone()).unwrap_or_else(|e| panic!("{f}: {e}"));
        let got = [r.matches(&a), r.matches(&b), r.matches(&c)];
        assert_eq!(got, want, "{f}");
    }
}
