//! Metadata filters: the JSON filter language of a query, typed against the fields a collection
//! holds, and evaluated on one document's field values.
//!
//! A document's fields ([`FieldValues`]) are its metadata object, flattened (`{"a": {"b": 1}}` is
//! field `a.b`), plus the built-in fields ([`BUILTIN_FIELDS`]). Every field holds a list of
//! [`Scalar`]s: an array is its elements, `null` is nothing. A string that reads as an RFC 3339
//! moment (or a plain `YYYY-MM-DD`, midnight UTC) is a date.
//!
//! A [`Filter`] is parsed from JSON ([`Filter::parse`], docs/query.md has the grammar), then
//! resolved against the collection's [`FieldSchema`] ([`Filter::resolve`]): an unknown field, a
//! value of a type the field never holds, or a range over strings is an error that names the
//! field, so a typo never silently matches nothing. A resolved filter is evaluated by
//! [`Filter::matches`]; the engine also translates it into index queries, and its tests check the
//! two agree.

mod parse;
mod values;

pub use values::{
    BUILTIN_FIELDS, FieldValues, MAX_METADATA_BYTES, MAX_VALUE_BYTES, check_metadata, field_values,
    parse_date,
};

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ops::Bound;

/// One value of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    /// A finite number (`-0` is stored as `0`).
    Num(f64),
    Bool(bool),
    /// Microseconds since 1970-01-01 UTC.
    Date(i64),
}

impl Scalar {
    pub fn field_type(&self) -> FieldType {
        match self {
            Scalar::Str(_) => FieldType::String,
            Scalar::Num(_) => FieldType::Number,
            Scalar::Bool(_) => FieldType::Bool,
            Scalar::Date(_) => FieldType::Date,
        }
    }

    /// Order within one type (numbers by value, dates by time); `None` across types.
    fn compare(&self, other: &Scalar) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Scalar::Num(a), Scalar::Num(b)) => a.partial_cmp(b),
            (Scalar::Date(a), Scalar::Date(b)) => Some(a.cmp(b)),
            (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
            (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The value as JSON (a date as RFC 3339 UTC).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Str(s) => s.clone().into(),
            // a whole number as an integer, as it was most likely written
            Scalar::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => (*n as i64).into(),
            Scalar::Num(n) => {
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
            }
            Scalar::Bool(b) => (*b).into(),
            Scalar::Date(us) => jiff::Timestamp::from_microsecond(*us)
                .map_or(serde_json::Value::Null, |t| t.to_string().into()),
        }
    }
}

/// The type of a field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldType {
    String,
    Number,
    Bool,
    Date,
}

impl FieldType {
    pub const ALL: [FieldType; 4] = [
        FieldType::String,
        FieldType::Number,
        FieldType::Bool,
        FieldType::Date,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Bool => "boolean",
            FieldType::Date => "date",
        }
    }

    /// One letter naming the type in index terms.
    pub fn tag(self) -> u8 {
        match self {
            FieldType::String => b's',
            FieldType::Number => b'n',
            FieldType::Bool => b'b',
            FieldType::Date => b'd',
        }
    }

    pub fn from_tag(tag: u8) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.tag() == tag)
    }
}

/// The types each field of a collection holds in at least one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSchema(pub BTreeMap<String, Vec<FieldType>>);

impl FieldSchema {
    /// The built-in fields alone.
    pub fn builtin() -> FieldSchema {
        let mut s = FieldSchema::default();
        for (name, t) in BUILTIN_FIELDS {
            s.add(name, t);
        }
        s
    }

    pub fn add(&mut self, field: &str, t: FieldType) {
        let types = self.0.entry(field.to_owned()).or_default();
        if !types.contains(&t) {
            types.push(t);
            types.sort();
        }
    }

    fn types(&self, field: &str) -> Option<&[FieldType]> {
        self.0.get(field).map(Vec::as_slice)
    }
}

/// A filter over a document's fields. `L` is a literal: JSON as parsed, a [`Scalar`] once
/// resolved against a [`FieldSchema`].
#[derive(Debug, Clone, PartialEq)]
pub enum Filter<L = Scalar> {
    /// `{}`: every document.
    All,
    And(Vec<Filter<L>>),
    Or(Vec<Filter<L>>),
    Not(Box<Filter<L>>),
    Leaf {
        field: String,
        cond: Cond<L>,
    },
}

/// The condition of a leaf on one field; a field holding several values (an array) matches when
/// one of them does.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond<L> {
    Eq(L),
    In(Vec<L>),
    /// One value within both bounds (numbers or dates).
    Range(Bound<L>, Bound<L>),
    Exists(bool),
}

/// A literal as the JSON had it.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    Num(f64),
    Bool(bool),
}

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

    /// Parses the JSON filter language (a leaf, `and`, `or`, `not`, or `{}`); the error says where
    /// and what is wrong.
    pub fn parse(value: &serde_json::Value) -> Result<Filter<Json>> {
        parse::parse(value)
    }

    /// Types every literal by the field it is compared with.
    pub fn resolve(&self, schema: &FieldSchema) -> Result<Filter> {
        self.resolve_at(schema, "filter")
    }

    fn resolve_at(&self, schema: &FieldSchema, path: &str) -> Result<Filter> {
        let all = |fs: &[Filter<Json>], op: &str| {
            fs.iter()
                .enumerate()
                .map(|(i, f)| f.resolve_at(schema, &format!("{path}.{op}[{i}]")))
                .collect::<Result<Vec<_>>>()
        };
        Ok(match self {
            Filter::All => Filter::All,
            Filter::And(fs) => Filter::And(all(fs, "and")?),
            Filter::Or(fs) => Filter::Or(all(fs, "or")?),
            Filter::Not(f) => Filter::Not(Box::new(f.resolve_at(schema, &format!("{path}.not"))?)),
            Filter::Leaf { field, cond } => {
                let Some(types) = schema.types(field) else {
                    let known: Vec<&str> = schema.0.keys().map(String::as_str).take(40).collect();
                    return Err(Error::invalid(
                        "filter",
                        format!(
                            "{path}: unknown field `{field}`: no document of this collection has it; known fields: {}",
                            known.join(", ")
                        ),
                    ));
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
                            return Err(Error::invalid(
                                "filter",
                                format!(
                                    "{path}: a range on `{field}` compares numbers or RFC 3339 dates, both bounds of one type; `{field}` holds {}",
                                    type_list(types)
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

impl Filter {
    /// Whether a document with these field values passes.
    pub fn matches(&self, values: &FieldValues) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(values)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(values)),
            Filter::Not(f) => !f.matches(values),
            Filter::Leaf { field, cond } => {
                let held = values.get(field).map_or(&[][..], Vec::as_slice);
                match cond {
                    Cond::Exists(b) => held.is_empty() != *b,
                    Cond::Eq(v) => held.iter().any(|h| h == v),
                    Cond::In(vs) => held.iter().any(|h| vs.contains(h)),
                    Cond::Range(lo, hi) => held.iter().any(|h| within(h, lo, hi)),
                }
            }
        }
    }
}

impl<L> Filter<L> {
    /// Whether this is `{}` (no restriction at all).
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::All)
    }
}

fn within(v: &Scalar, lo: &Bound<Scalar>, hi: &Bound<Scalar>) -> bool {
    use std::cmp::Ordering::*;
    let lo_ok = match lo {
        Bound::Unbounded => true,
        Bound::Included(b) => matches!(v.compare(b), Some(Greater | Equal)),
        Bound::Excluded(b) => matches!(v.compare(b), Some(Greater)),
    };
    let hi_ok = match hi {
        Bound::Unbounded => true,
        Bound::Included(b) => matches!(v.compare(b), Some(Less | Equal)),
        Bound::Excluded(b) => matches!(v.compare(b), Some(Less)),
    };
    // a value of another type compares as `None`, so only values of the range's type match
    lo_ok && hi_ok
}

#[cfg(test)]
mod tests;
