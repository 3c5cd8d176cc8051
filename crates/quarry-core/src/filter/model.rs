//! The filter's vocabulary: typed field values ([`Scalar`], [`FieldType`]), a document's
//! [`FieldValues`], a collection's [`FieldSchema`], the [`Filter`] tree, and its evaluation on
//! one document ([`Filter::matches`]).

use std::collections::BTreeMap;
use std::ops::Bound;

/// Field name → the values a document holds for it (several for an array).
pub type FieldValues = BTreeMap<String, Vec<Scalar>>;

/// The fields quarry sets, with their types: every document has the first five; `heading_path`
/// (the Markdown headings in effect at a chunk, outermost first, an array) is a chunk's, and only
/// a Markdown chunk under a heading has it. A metadata key may not use these names.
pub const BUILTIN_FIELDS: [(&str, FieldType); 6] = [
    ("doc_id", FieldType::String),
    ("title", FieldType::String),
    ("source", FieldType::String),
    ("format", FieldType::String),
    ("updated_at", FieldType::Date),
    ("heading_path", FieldType::String),
];

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
    pub(super) fn compare(&self, other: &Scalar) -> Option<std::cmp::Ordering> {
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

    pub(super) fn types(&self, field: &str) -> Option<&[FieldType]> {
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
