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

mod model;
mod parse;
mod resolve;
mod schema;
mod values;

pub use model::{BUILTIN_FIELDS, Cond, FieldSchema, FieldType, FieldValues, Filter, Json, Scalar};
pub use schema::FilterSchema;
pub use values::{MAX_METADATA_BYTES, MAX_VALUE_BYTES, check_metadata, field_values, parse_date};

#[cfg(test)]
mod tests;
