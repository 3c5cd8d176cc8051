//! A document's field values: its metadata object flattened into typed [`Scalar`]s, and the
//! built-in fields every document has.

use super::model::{BUILTIN_FIELDS, FieldValues, Scalar};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Largest metadata object of one document, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest string value that is a field value; a longer one is stored and returned with the
/// document but is not filterable (and [`check_metadata`] refuses it in new documents).
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest field name (a flattened path such as `author.name`).
const MAX_FIELD_NAME: usize = 256;
/// Deepest nesting of objects in metadata.
const MAX_NESTING: usize = 8;

/// Checks a document's metadata object before it is stored: at most [`MAX_METADATA_BYTES`],
/// field names of 1 to 256 bytes without NUL, no key named like a built-in field, objects nested
/// at most 8 deep. The error names the key.
pub fn check_metadata(metadata: &Map<String, Value>) -> Result<()> {
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            "metadata",
            format!("{size} bytes of JSON; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    for key in metadata.keys() {
        if let Some((name, _)) = BUILTIN_FIELDS.iter().find(|(n, _)| n == key) {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "key `{name}` is a built-in field of every document; rename it (for example `meta_{name}`)"
                ),
            ));
        }
    }
    check_keys(metadata, "", 1)
}

fn check_keys(obj: &Map<String, Value>, prefix: &str, depth: usize) -> Result<()> {
    if depth > MAX_NESTING {
        return Err(Error::invalid(
            "metadata",
            format!("`{prefix}` nests objects more than {MAX_NESTING} deep"),
        ));
    }
    for (key, v) in obj {
        let name = format!("{prefix}{key}");
        if key.is_empty() || key.contains('\0') || name.len() > MAX_FIELD_NAME {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "key `{name}`: keys are 1 to {MAX_FIELD_NAME} bytes (the full dotted path), without NUL"
                ),
            ));
        }
        match v {
            Value::Object(inner) => check_keys(inner, &format!("{name}."), depth + 1)?,
            Value::String(s) if s.len() > MAX_VALUE_BYTES => return Err(long(&name)),
            Value::Array(items)
                if items
                    .iter()
                    .any(|i| i.as_str().is_some_and(|s| s.len() > MAX_VALUE_BYTES)) =>
            {
                return Err(long(&name));
            }
            _ => {}
        }
    }
    Ok(())
}

fn long(name: &str) -> Error {
    Error::invalid(
        "metadata",
        format!(
            "`{name}` has a string over {MAX_VALUE_BYTES} bytes; metadata values are short (put long text in the document)"
        ),
    )
}

/// The field values of a metadata object: nested objects flattened with `.`, an array's scalar
/// elements as the field's values (nested arrays and objects inside arrays are kept in the
/// stored metadata but are not fields), `null` as no value, strings that read as dates
/// ([`parse_date`]) as dates.
pub fn field_values(metadata: &Map<String, Value>) -> FieldValues {
    let mut out = FieldValues::new();
    flatten(metadata, "", &mut out);
    out
}

fn flatten(obj: &Map<String, Value>, prefix: &str, out: &mut FieldValues) {
    for (key, v) in obj {
        let name = format!("{prefix}{key}");
        match v {
            Value::Object(inner) => flatten(inner, &format!("{name}."), out),
            Value::Array(items) => {
                let vals: Vec<Scalar> = items.iter().filter_map(scalar).collect();
                if !vals.is_empty() {
                    out.entry(name).or_default().extend(vals);
                }
            }
            other => {
                if let Some(s) = scalar(other) {
                    out.entry(name).or_default().push(s);
                }
            }
        }
    }
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) if s.len() > MAX_VALUE_BYTES => None,
        Value::String(s) => {
            Some(parse_date(s).map_or_else(|| Scalar::Str(s.clone()), Scalar::Date))
        }
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| Scalar::Num(if f == 0.0 { 0.0 } else { f })),
        _ => None,
    }
}

/// `s` as microseconds since 1970-01-01 UTC, when it is an RFC 3339 moment
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`) or a plain date (`2024-05-01`,
/// midnight UTC).
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // cheap rejection first: every accepted form starts with `YYYY-MM-DD`
    if b.len() < 10
        || b.len() > 40
        || b[4] != b'-'
        || b[7] != b'-'
        || !b[..4].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    if b.len() == 10 {
        let t: jiff::Timestamp = format!("{s}T00:00:00Z").parse().ok()?;
        return Some(t.as_microsecond());
    }
    let t: jiff::Timestamp = s.parse().ok()?;
    Some(t.as_microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_and_types() {
        let m = json!({"year": 2021, "tags": ["a", "b", 3, null, ["x"]], "author": {"name": "Ada", "born": "1815-12-10"},
                       "draft": false, "nothing": null, "when": "2024-05-01T14:00:00+02:00", "neg": -0.0});
        let v = field_values(m.as_object().expect("object"));
        assert_eq!(v["year"], vec![Scalar::Num(2021.0)]);
        assert_eq!(
            v["tags"],
            vec![
                Scalar::Str("a".into()),
                Scalar::Str("b".into()),
                Scalar::Num(3.0)
            ]
        );
        assert_eq!(v["author.name"], vec![Scalar::Str("Ada".into())]);
        assert_eq!(v["author.born"], vec![Scalar::Date(-4_861_728_000_000_000)]);
        assert_eq!(v["draft"], vec![Scalar::Bool(false)]);
        assert_eq!(v["when"], vec![Scalar::Date(1_714_564_800_000_000)]);
        assert_eq!(v["neg"], vec![Scalar::Num(0.0)]);
        assert!(!v.contains_key("nothing"));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_date("1970-01-01T01:00:00+01:00"), Some(0));
        for not in [
            "2024",
            "2024-13-01",
            "yesterday",
            "2024-05-01T25:00:00Z",
            "2024-05-01 garbage",
        ] {
            assert_eq!(parse_date(not), None, "{not}");
        }
    }

    #[test]
    fn metadata_checks_name_the_key() {
        let err = |v: Value| {
            check_metadata(v.as_object().expect("object"))
                .unwrap_err()
                .to_string()
        };
        assert!(err(json!({"title": "x"})).contains("`title`"));
        assert!(err(json!({"a": {"": 1}})).contains("`a.`"));
        assert!(err(json!({"big": "x".repeat(MAX_METADATA_BYTES)})).contains("limit"));
        assert!(
            err(json!({"a": ["x", "y".repeat(MAX_VALUE_BYTES + 1)]}))
                .contains("`a` has a string over")
        );
        let mut deep = json!(1);
        for _ in 0..10 {
            deep = json!({ "k": deep });
        }
        assert!(err(deep).contains("deep"));
        assert!(check_metadata(json!({"a": {"b": [1, "x"]}}).as_object().expect("object")).is_ok());
    }
}
