//! Typing a parsed filter against a collection's [`FieldSchema`] ([`Filter::resolve`]): every
//! literal becomes a value of its field's type, or the error names the field and where it is; and
//! a parsed filter back to its JSON ([`Filter::to_json`]).

use super::model::{Cond, FieldSchema, FieldType, Filter, Json, Scalar};
use super::values::parse_date;
use crate::error::{Error, Result};
use std::ops::Bound;

impl Json {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Json::Str(s) => s.clone().into(),
            Json::Num(n) => {
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
            }
            Json::Bool(b) => (*b).into(),
        }
    }
}

impl Filter<Json> {
    /// The filter as the JSON it parses from (`Filter::parse(&f.to_json()) == f`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let list = |fs: &[Filter<Json>]| Value::Array(fs.iter().map(Filter::to_json).collect());
        match self {
            Filter::All => json!({}),
            Filter::And(fs) => json!({ "and": list(fs) }),
            Filter::Or(fs) => json!({ "or": list(fs) }),
            Filter::Not(f) => json!({ "not": f.to_json() }),
            Filter::Leaf { field, cond } => {
                let mut o = serde_json::Map::new();
                o.insert("field".into(), field.clone().into());
                match cond {
                    Cond::Eq(v) => {
                        o.insert("eq".into(), v.to_json());
                    }
                    Cond::In(vs) => {
                        o.insert("in".into(), vs.iter().map(Json::to_json).collect());
                    }
                    Cond::Exists(b) => {
                        o.insert("exists".into(), (*b).into());
                    }
                    Cond::Range(lo, hi) => {
                        for (b, inc, exc) in [(lo, "gte", "gt"), (hi, "lte", "lt")] {
                            match b {
                                Bound::Included(v) => o.insert(inc.into(), v.to_json()),
                                Bound::Excluded(v) => o.insert(exc.into(), v.to_json()),
                                Bound::Unbounded => None,
                            };
                        }
                    }
                }
                Value::Object(o)
            }
        }
    }

    /// Types every literal by the field it is compared with; a field `schema` does not list is
    /// an error naming the fields it does.
    pub fn resolve(&self, schema: &FieldSchema) -> Result<Filter> {
        self.resolve_at(schema, "filter", true)
    }

    /// [`Filter::resolve`] against the fields of what one caller may read (a caller that may not
    /// read every document): a field `schema` does not list is not an error, which would tell
    /// the caller whether documents hidden from it have the field, but a field of no value,
    /// each literal typed by its own JSON type (a string that reads as an RFC 3339 date is a
    /// date). Such a leaf matches none of the caller's documents (`exists: false` all of them).
    pub fn resolve_unlisted(&self, schema: &FieldSchema) -> Result<Filter> {
        self.resolve_at(schema, "filter", false)
    }

    fn resolve_at(&self, schema: &FieldSchema, path: &str, strict: bool) -> Result<Filter> {
        let all = |fs: &[Filter<Json>], op: &str| {
            fs.iter()
                .enumerate()
                .map(|(i, f)| f.resolve_at(schema, &format!("{path}.{op}[{i}]"), strict))
                .collect::<Result<Vec<_>>>()
        };
        Ok(match self {
            Filter::All => Filter::All,
            Filter::And(fs) => Filter::And(all(fs, "and")?),
            Filter::Or(fs) => Filter::Or(all(fs, "or")?),
            Filter::Not(f) => Filter::Not(Box::new(f.resolve_at(
                schema,
                &format!("{path}.not"),
                strict,
            )?)),
            Filter::Leaf { field, cond } => {
                let listed = schema.types(field);
                let types = match listed {
                    Some(types) => types,
                    None if !strict => &FieldType::ALL[..],
                    None => {
                        let known: Vec<&str> =
                            schema.0.keys().map(String::as_str).take(40).collect();
                        return Err(Error::invalid(
                            "filter",
                            format!(
                                "{path}: unknown field `{field}`: no document of this collection has it; known fields: {}",
                                known.join(", ")
                            ),
                        ));
                    }
                };
                let lit = |l: &Json| resolve_literal(l, field, types, path);
                let cond = match cond {
                    Cond::Eq(l) => Cond::Eq(lit(l)?),
                    Cond::In(ls) => Cond::In(ls.iter().map(lit).collect::<Result<_>>()?),
                    Cond::Exists(b) => Cond::Exists(*b),
                    Cond::Range(lo, hi) => {
                        let bound = |b: &Bound<Json>| -> Result<Bound<Scalar>> {
                            Ok(match b {
                                Bound::Included(l) => Bound::Included(lit(l)?),
                                Bound::Excluded(l) => Bound::Excluded(lit(l)?),
                                Bound::Unbounded => Bound::Unbounded,
                            })
                        };
                        let (lo, hi) = (bound(lo)?, bound(hi)?);
                        let kinds: Vec<FieldType> = [&lo, &hi]
                            .into_iter()
                            .filter_map(|b| match b {
                                Bound::Included(s) | Bound::Excluded(s) => Some(s.field_type()),
                                Bound::Unbounded => None,
                            })
                            .collect();
                        if let Some(&t) = kinds.first()
                            && (!matches!(t, FieldType::Number | FieldType::Date)
                                || kinds.iter().any(|k| *k != t))
                        {
                            let holds = listed.map_or(String::new(), |types| {
                                format!("; `{field}` holds {}", type_list(types))
                            });
                            return Err(Error::invalid(
                                "filter",
                                format!(
                                    "{path}: a range on `{field}` compares numbers or RFC 3339 dates, both bounds of one type{holds}"
                                ),
                            ));
                        }
                        Cond::Range(lo, hi)
                    }
                };
                Filter::Leaf {
                    field: field.clone(),
                    cond,
                }
            }
        })
    }
}

/// The literal `l` as a value of one of `types` (the field's): a string is a date when the
/// field holds dates and it reads as one.
fn resolve_literal(l: &Json, field: &str, types: &[FieldType], path: &str) -> Result<Scalar> {
    let has = |t| types.contains(&t);
    let wrong = |what: &str| {
        Error::invalid(
            "filter",
            format!("{path}: `{field}` holds {}, not {what}", type_list(types)),
        )
    };
    match l {
        Json::Bool(b) if has(FieldType::Bool) => Ok(Scalar::Bool(*b)),
        Json::Bool(_) => Err(wrong("booleans")),
        Json::Num(n) if has(FieldType::Number) => Ok(Scalar::Num(*n)),
        Json::Num(_) => Err(wrong("numbers")),
        Json::Str(s) => match parse_date(s) {
            Some(d) if has(FieldType::Date) => Ok(Scalar::Date(d)),
            _ if has(FieldType::String) => Ok(Scalar::Str(s.clone())),
            _ if has(FieldType::Date) => Err(Error::invalid(
                "filter",
                format!(
                    "{path}: `{field}` holds dates and `{s}` is not an RFC 3339 date (like 2024-05-01T12:00:00Z or 2024-05-01)"
                ),
            )),
            _ => Err(wrong("strings")),
        },
    }
}

fn type_list(types: &[FieldType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.join(" and ")
}
