//! The JSON filter language, parsed into an untyped [`Filter<Json>`]:
//!
//! - `{}` matches every document;
//! - `{"and": [F, …]}`, `{"or": [F, …]}` (at least one filter each), `{"not": F}`;
//! - a leaf names a `field` and one condition: `"eq": V`, `"in": [V, …]`, any of `"gt"`, `"gte"`,
//!   `"lt"`, `"lte"` (one lower and one upper bound at most), or `"exists": true|false`.
//!
//! Values are strings, numbers and booleans. Limits keep a hostile filter cheap: at most
//! [`MAX_NODES`] nodes, [`MAX_DEPTH`] levels and [`MAX_IN`] values in one `in`.

use super::model::{Cond, Filter, Json};
use crate::error::{Error, Result};
use serde_json::Value;
use std::ops::Bound;

/// Most nodes (leaves, `and`, `or`, `not`) in one filter.
pub(super) const MAX_NODES: usize = 1024;
/// Deepest nesting of one filter.
pub(super) const MAX_DEPTH: usize = 32;
/// Most values of one `in`.
pub(super) const MAX_IN: usize = 1024;

impl Filter<Json> {
    /// Parses the JSON filter language (a leaf, `and`, `or`, `not`, or `{}`); the error says where
    /// and what is wrong.
    pub fn parse(value: &Value) -> Result<Filter<Json>> {
        let mut nodes = 0;
        node(value, "filter", 0, &mut nodes)
    }
}

fn bad(path: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid("filter", format!("{path}: {why}"))
}

fn node(value: &Value, path: &str, depth: usize, nodes: &mut usize) -> Result<Filter<Json>> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(bad(path, format!("a filter has at most {MAX_NODES} parts")));
    }
    if depth > MAX_DEPTH {
        return Err(bad(
            path,
            format!("a filter nests at most {MAX_DEPTH} levels"),
        ));
    }
    let Some(obj) = value.as_object() else {
        return Err(bad(
            path,
            "expected an object: {}, {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}} or {\"field\": ..., \"eq\": ...}",
        ));
    };
    if obj.is_empty() {
        return Ok(Filter::All);
    }
    for op in ["and", "or", "not"] {
        if let Some(inner) = obj.get(op) {
            if obj.len() != 1 {
                return Err(bad(
                    path,
                    format!("`{op}` must be the only key of its object"),
                ));
            }
            let at = format!("{path}.{op}");
            if op == "not" {
                return Ok(Filter::Not(Box::new(node(inner, &at, depth + 1, nodes)?)));
            }
            let Some(items) = inner.as_array().filter(|a| !a.is_empty()) else {
                return Err(bad(&at, "expected a non-empty array of filters"));
            };
            let fs = items
                .iter()
                .enumerate()
                .map(|(i, f)| node(f, &format!("{at}[{i}]"), depth + 1, nodes))
                .collect::<Result<Vec<_>>>()?;
            return Ok(if op == "and" {
                Filter::And(fs)
            } else {
                Filter::Or(fs)
            });
        }
    }
    leaf(obj, path)
}

fn leaf(obj: &serde_json::Map<String, Value>, path: &str) -> Result<Filter<Json>> {
    let field = match obj.get("field") {
        Some(Value::String(f)) if !f.is_empty() => f.clone(),
        Some(_) => return Err(bad(path, "`field` must be a non-empty string")),
        None => {
            return Err(bad(
                path,
                "a leaf needs `field` (or use `and`, `or`, `not`, or {} for everything)",
            ));
        }
    };
    let mut cond = None;
    let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
    for (key, v) in obj {
        let at = format!("{path}.{key}");
        let set = |cond: &mut Option<Cond<Json>>, c: Cond<Json>| {
            if cond.is_some() {
                return Err(bad(
                    path,
                    "a leaf has one condition: eq, in, a range or exists",
                ));
            }
            *cond = Some(c);
            Ok(())
        };
        match key.as_str() {
            "field" => {}
            "eq" => set(&mut cond, Cond::Eq(literal(v, &at)?))?,
            "in" => {
                let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
                    return Err(bad(&at, "expected a non-empty array of values"));
                };
                if items.len() > MAX_IN {
                    return Err(bad(&at, format!("at most {MAX_IN} values")));
                }
                let vs = items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| literal(x, &format!("{at}[{i}]")))
                    .collect::<Result<_>>()?;
                set(&mut cond, Cond::In(vs))?;
            }
            "exists" => match v {
                Value::Bool(b) => set(&mut cond, Cond::Exists(*b))?,
                _ => return Err(bad(&at, "expected true or false")),
            },
            "gt" | "gte" => {
                if !matches!(lower, Bound::Unbounded) {
                    return Err(bad(path, "give one lower bound: gt or gte"));
                }
                let l = literal(v, &at)?;
                lower = if key == "gt" {
                    Bound::Excluded(l)
                } else {
                    Bound::Included(l)
                };
            }
            "lt" | "lte" => {
                if !matches!(upper, Bound::Unbounded) {
                    return Err(bad(path, "give one upper bound: lt or lte"));
                }
                let l = literal(v, &at)?;
                upper = if key == "lt" {
                    Bound::Excluded(l)
                } else {
                    Bound::Included(l)
                };
            }
            other => {
                return Err(bad(
                    path,
                    format!(
                        "unknown key `{other}`; a leaf has `field` and one of eq, in, gt, gte, lt, lte, exists"
                    ),
                ));
            }
        }
    }
    let ranged = !matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded));
    match (cond, ranged) {
        (Some(_), true) => Err(bad(
            path,
            "a leaf has one condition: eq, in, a range or exists",
        )),
        (Some(cond), false) => Ok(Filter::Leaf { field, cond }),
        (None, true) => Ok(Filter::Leaf {
            field,
            cond: Cond::Range(lower, upper),
        }),
        (None, false) => Err(bad(
            path,
            format!(
                "the leaf on `{field}` has no condition; add eq, in, gt, gte, lt, lte or exists"
            ),
        )),
    }
}

fn literal(v: &Value, path: &str) -> Result<Json> {
    match v {
        Value::String(s) => Ok(Json::Str(s.clone())),
        Value::Bool(b) => Ok(Json::Bool(*b)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Json::Num(if f == 0.0 { 0.0 } else { f })),
            _ => Err(bad(path, "the number is out of range")),
        },
        _ => Err(bad(path, "values are strings, numbers or booleans")),
    }
}
