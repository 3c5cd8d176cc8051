//! Document metadata in the BM25 index: how a chunk's field values are indexed, how a
//! [`Filter`] becomes a tantivy query over them, and which fields (of which types) a snapshot
//! holds.
//!
//! Every value of every occurrence of a chunk is one term of the bytes field `meta`:
//! `field NUL tag payload`, where the tag is the value's [`FieldType::tag`] and the payload is the
//! string's bytes, a boolean's byte, or 8 bytes that sort like the number (an `f64`) or the date
//! (microseconds, an `i64`). Equality is a term, `in` a term set, a range a term range within one
//! field and type. The field `meta_fields` holds `field NUL tag` once per field and type a chunk
//! has: `exists` is a term set over it, and its term dictionary is the collection's
//! [`FieldSchema`].
//!
//! A chunk held by several documents (content-addressed dedup) has the values of all of them, so
//! a term query over it could mix documents, and `not` could drop a chunk one of whose documents
//! passes. Such chunks carry the term [`SHARED`]; a filter's query admits them whatever the
//! filter says ([`filter_query`]), and the searcher checks each of their occurrences with
//! [`Filter::matches`] on its stored values. For every other chunk the query is exact.

use super::schema::Fields;
use crate::catalog::Occurrence;
use crate::error::Result;
use quarry_core::filter::{Cond, FieldType, FieldValues, Scalar, field_values};
use quarry_core::{FieldSchema, Filter};
use std::ops::Bound;
use tantivy::query::{
    AllQuery, BooleanQuery, InvertedIndexRangeQuery, Occur, Query, TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocSet, TantivyDocument, Term};

/// The `meta_fields` term of a chunk held by more than one document.
pub const SHARED: &str = "\0shared";

/// The field values of one occurrence: its document's metadata and the built-in fields (the
/// heading path is the occurrence's own).
pub fn occurrence_values(occ: &Occurrence) -> FieldValues {
    let mut v = field_values(&occ.metadata);
    let s = |x: &str| vec![Scalar::Str(x.to_owned())];
    v.insert("doc_id".into(), s(&occ.doc_id));
    v.insert("title".into(), s(&occ.title));
    v.insert("source".into(), s(&occ.source));
    if !occ.format.is_empty() {
        v.insert("format".into(), s(&occ.format));
    }
    v.insert(
        "updated_at".into(),
        vec![Scalar::Date(occ.updated_at.saturating_mul(1_000_000))],
    );
    if !occ.heading_path.is_empty() {
        let path = occ.heading_path.iter().map(|h| Scalar::Str(h.clone()));
        v.insert("heading_path".into(), path.collect());
    }
    v
}

/// The index bytes of `value` in `field`.
pub fn term_bytes(field: &str, value: &Scalar) -> Vec<u8> {
    let mut b = prefix(field, value.field_type());
    match value {
        Scalar::Str(s) => b.extend_from_slice(s.as_bytes()),
        Scalar::Bool(x) => b.push(u8::from(*x)),
        Scalar::Num(n) => b.extend_from_slice(&sortable_f64(*n)),
        Scalar::Date(d) => b.extend_from_slice(&((*d as u64) ^ (1 << 63)).to_be_bytes()),
    }
    b
}

/// The field named by index bytes ([`term_bytes`]) and the value they hold.
pub fn decode(bytes: &[u8]) -> Option<(&str, Scalar)> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    let field = std::str::from_utf8(&bytes[..nul]).ok()?;
    let (&tag, payload) = bytes.get(nul + 1..)?.split_first()?;
    let eight = || <[u8; 8]>::try_from(payload).ok().map(u64::from_be_bytes);
    let value = match FieldType::from_tag(tag)? {
        FieldType::String => Scalar::Str(std::str::from_utf8(payload).ok()?.to_owned()),
        FieldType::Bool => Scalar::Bool(payload.first()? == &1),
        FieldType::Number => {
            let bits = eight()?;
            let bits = if bits >> 63 == 1 {
                bits ^ (1 << 63)
            } else {
                !bits
            };
            Scalar::Num(f64::from_bits(bits))
        }
        FieldType::Date => Scalar::Date((eight()? ^ (1 << 63)) as i64),
    };
    Some((field, value))
}

fn prefix(field: &str, t: FieldType) -> Vec<u8> {
    let mut b = Vec::with_capacity(field.len() + 10);
    b.extend_from_slice(field.as_bytes());
    b.push(0);
    b.push(t.tag());
    b
}

/// 8 bytes that compare (as bytes) like `n` does as a number.
fn sortable_f64(n: f64) -> [u8; 8] {
    let bits = n.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    bits.to_be_bytes()
}

/// Adds the metadata terms of `occurrences` to a chunk's document.
pub(super) fn add_terms(doc: &mut TantivyDocument, f: &Fields, occurrences: &[Occurrence]) {
    let mut values = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeSet::new();
    for occ in occurrences {
        for (field, vals) in occurrence_values(occ) {
            for v in &vals {
                types.insert(type_term(&field, v.field_type()));
                values.insert(term_bytes(&field, v));
            }
        }
    }
    // several occurrences of one document (a repeated paragraph) have the same values
    if occurrences
        .iter()
        .any(|o| o.doc_id != occurrences[0].doc_id)
    {
        types.insert(SHARED.to_owned());
    }
    for v in values {
        doc.add_bytes(f.meta, &v);
    }
    for t in types {
        doc.add_text(f.meta_fields, t);
    }
}

fn type_term(field: &str, t: FieldType) -> String {
    format!("{field}\0{}", t.tag() as char)
}

/// The query of the chunks that may pass `filter`: exact for a chunk of one document, every
/// shared chunk besides (see the module docs).
pub fn filter_query(f: &Fields, filter: &Filter) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, translate(f, filter)),
        (
            Occur::Should,
            Box::new(TermQuery::new(
                Term::from_field_text(f.meta_fields, SHARED),
                IndexRecordOption::Basic,
            )),
        ),
    ]))
}

fn translate(f: &Fields, filter: &Filter) -> Box<dyn Query> {
    let bytes = |b: Vec<u8>| Term::from_field_bytes(f.meta, &b);
    match filter {
        Filter::All => Box::new(AllQuery),
        Filter::And(fs) => Box::new(BooleanQuery::new(
            fs.iter().map(|x| (Occur::Must, translate(f, x))).collect(),
        )),
        Filter::Or(fs) => Box::new(BooleanQuery::new(
            fs.iter()
                .map(|x| (Occur::Should, translate(f, x)))
                .collect(),
        )),
        Filter::Not(x) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, translate(f, x)),
        ])),
        Filter::Leaf { field, cond } => match cond {
            Cond::Eq(v) => Box::new(TermQuery::new(
                bytes(term_bytes(field, v)),
                IndexRecordOption::Basic,
            )),
            Cond::In(vs) => Box::new(TermSetQuery::new(
                vs.iter().map(|v| bytes(term_bytes(field, v))),
            )),
            Cond::Exists(present) => {
                let any =
                    Box::new(TermSetQuery::new(FieldType::ALL.iter().map(|t| {
                        Term::from_field_text(f.meta_fields, &type_term(field, *t))
                    })));
                if *present {
                    any
                } else {
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Must, Box::new(AllQuery)),
                        (Occur::MustNot, any),
                    ]))
                }
            }
            Cond::Range(lo, hi) => {
                // resolve() gave both bounds one type (number or date) and at least one bound
                let t = [lo, hi]
                    .into_iter()
                    .find_map(|b| match b {
                        Bound::Included(v) | Bound::Excluded(v) => Some(v.field_type()),
                        Bound::Unbounded => None,
                    })
                    .unwrap_or(FieldType::Number);
                let lower = match lo {
                    Bound::Included(v) => Bound::Included(bytes(term_bytes(field, v))),
                    Bound::Excluded(v) => Bound::Excluded(bytes(term_bytes(field, v))),
                    Bound::Unbounded => Bound::Included(bytes(prefix(field, t))),
                };
                let upper = match hi {
                    Bound::Included(v) => Bound::Included(bytes(term_bytes(field, v))),
                    Bound::Excluded(v) => Bound::Excluded(bytes(term_bytes(field, v))),
                    Bound::Unbounded => {
                        let mut b = prefix(field, t);
                        b.extend_from_slice(&[0xff; 8]);
                        Bound::Included(bytes(b))
                    }
                };
                Box::new(InvertedIndexRangeQuery::new(lower, upper))
            }
        },
    }
}

/// The fields of `snapshot` with their types: the built-in fields and every `field NUL tag` term
/// of `meta_fields`; with `readable` (a bitset per segment, in ordinal order: the chunks a
/// caller may read), only the terms one of those chunks holds that no other document shares, so
/// that a filter's or a facet's errors name no field or type that only documents hidden from the
/// caller have. That walks a term's postings up to its first such chunk, at worst all of them.
pub fn field_schema(
    snapshot: &tantivy::Searcher,
    f: &Fields,
    readable: Option<&[tantivy::BitSet]>,
) -> Result<FieldSchema> {
    let mut schema = FieldSchema::builtin();
    for (ord, reader) in snapshot.segment_readers().iter().enumerate() {
        let set = match readable {
            Some(sets) => match sets.get(ord) {
                Some(set) if set.len() > 0 => Some(set),
                _ => continue,
            },
            None => None,
        };
        let index = reader.inverted_index(f.meta_fields)?;
        // A chunk several documents share holds the fields of all of them: no evidence that a
        // document the caller may read has a field.
        let shared = match set {
            Some(_) => {
                let term = Term::from_field_text(f.meta_fields, SHARED);
                let mut docs = tantivy::BitSet::with_max_value(reader.max_doc());
                let postings = index
                    .read_postings(&term, IndexRecordOption::Basic)
                    .map_err(|e| {
                        crate::error::Error::Corrupt(format!("BM25 metadata fields: {e}"))
                    })?;
                if let Some(mut postings) = postings {
                    let mut doc = postings.doc();
                    while doc != tantivy::TERMINATED {
                        docs.insert(doc);
                        doc = postings.advance();
                    }
                }
                Some(docs)
            }
            None => None,
        };
        let mut stream = index
            .terms()
            .stream()
            .map_err(|e| crate::error::Error::Corrupt(format!("BM25 metadata fields: {e}")))?;
        while stream.advance() {
            let Ok(term) = std::str::from_utf8(stream.key()) else {
                continue;
            };
            let Some((field, t)) = term
                .rsplit_once('\0')
                .filter(|(field, _)| !field.is_empty())
                .and_then(|(field, tag)| Some((field, FieldType::from_tag(tag.bytes().next()?)?)))
            else {
                continue;
            };
            if schema.0.get(field).is_some_and(|types| types.contains(&t)) {
                continue;
            }
            if let Some(set) = set {
                // the first readable chunk holding the term, if any
                let mut postings = index
                    .read_postings_from_terminfo(stream.value(), IndexRecordOption::Basic)
                    .map_err(|e| {
                        crate::error::Error::Corrupt(format!("BM25 metadata fields: {e}"))
                    })?;
                let evidence =
                    |d| set.contains(d) && !shared.as_ref().is_some_and(|s| s.contains(d));
                let mut doc = postings.doc();
                while doc != tantivy::TERMINATED && !evidence(doc) {
                    doc = postings.advance();
                }
                if doc == tantivy::TERMINATED {
                    continue;
                }
            }
            schema.add(field, t);
        }
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_sort_like_values() {
        let nums = [f64::MIN, -1e9, -1.5, -0.0 + 0.0, 1e-9, 2.0, 1e300];
        for w in nums.windows(2) {
            assert!(sortable_f64(w[0]) < sortable_f64(w[1]), "{w:?}");
        }
        let dates = [i64::MIN, -1, 0, 1, i64::MAX];
        for w in dates.windows(2) {
            assert!(
                term_bytes("d", &Scalar::Date(w[0])) < term_bytes("d", &Scalar::Date(w[1])),
                "{w:?}"
            );
        }
        // the unbounded ends of a range enclose every value of the field and type, and nothing
        // of a field whose name extends this one
        let lo = prefix("a", FieldType::Number);
        let mut hi = lo.clone();
        hi.extend_from_slice(&[0xff; 8]);
        for n in nums {
            let t = term_bytes("a", &Scalar::Num(n));
            assert!(lo <= t && t <= hi);
        }
        let other = term_bytes("a.b", &Scalar::Num(1.0));
        assert!(!(lo <= other && other <= hi));
    }

    #[test]
    fn decode_inverts_encode() {
        let values = [
            Scalar::Str("héllo".into()),
            Scalar::Str(String::new()),
            Scalar::Bool(true),
            Scalar::Bool(false),
            Scalar::Num(-2.5),
            Scalar::Num(0.0),
            Scalar::Num(1e300),
            Scalar::Date(-1),
            Scalar::Date(1_714_564_800_000_000),
        ];
        for v in values {
            let b = term_bytes("a.b", &v);
            assert_eq!(decode(&b), Some(("a.b", v.clone())), "{v:?}");
        }
        assert_eq!(decode(b"no-nul"), None);
    }
}
