//! Facets: for each field a query names, how many documents hold each value, counted over the
//! documents the query matches. A document counts when the caller may read it, it passes the
//! query's filter, and one of its chunks holds one of the query's words where BM25 looks for them
//! (its title, or its passage with the text around it); a query without searchable words counts
//! every document the caller may read that passes the filter. Each document counts once per
//! value, however many of its chunks match. The [`MAX_FACET_VALUES`] most frequent values of
//! each field are returned, most frequent first, then by value.

use super::access::Access;
use super::{FacetCount, Searcher};
use crate::bm25::{
    DOC_KEYS, SegmentColumns, build_query, decode, doc_key, occurrence_values, term_bytes,
};
use crate::error::{Error, Result};
use quarry_core::{FieldSchema, Principal};
use std::collections::{BTreeMap, HashMap, HashSet};
use tantivy::collector::DocSetCollector;
use tantivy::columnar::BytesColumn;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query};

/// Most values returned for one field.
pub(super) const MAX_FACET_VALUES: usize = 100;

/// Per field: the index bytes of each value, and the keys of the documents holding it.
type Counts = HashMap<String, HashMap<Vec<u8>, HashSet<u64>>>;

/// The metadata fields one caller may know of ([`Searcher::field_schema_for`]).
pub(super) struct CallerSchema {
    /// The fields and types of the chunks the caller may read.
    pub(super) fields: FieldSchema,
    /// Whether the caller is an admin, who reads every chunk: then a filter or facet naming a
    /// field `fields` does not list is an error that names the fields it does. For any other
    /// caller it is a field of no value ([`quarry_core::Filter::resolve_unlisted`]), not an
    /// error: a 400 for a field only hidden documents have, against an empty answer for one no
    /// document has, would tell the caller those documents exist (and a 400 for a reader whose
    /// ACL happens to admit every chunk would tell it that no chunk is hidden from it).
    pub(super) complete: bool,
}

impl CallerSchema {
    /// `filter` typed for the caller ([`CallerSchema::complete`] says how).
    pub(super) fn resolve(
        &self,
        filter: &quarry_core::Filter<quarry_core::filter::Json>,
    ) -> Result<quarry_core::Filter> {
        Ok(if self.complete {
            filter.resolve(&self.fields)?
        } else {
            filter.resolve_unlisted(&self.fields)?
        })
    }
}

impl Searcher {
    /// [`Searcher::field_schema`] as `caller` may know it: the fields and types of the chunks
    /// it may read. Hidden documents do not exist for the caller, their metadata keys
    /// included: see [`CallerSchema`].
    pub(super) fn field_schema_for(&self, caller: &Principal) -> Result<CallerSchema> {
        if caller.sees_all() {
            return Ok(CallerSchema {
                fields: self.field_schema()?,
                complete: true,
            });
        }
        let tokens = caller.tokens(&self.default_acl);
        let fields = self.index.fields();
        let readable = self
            .index
            .totals_cache()
            .permitted(&self.snapshot, &fields, &tokens)?;
        Ok(CallerSchema {
            fields: crate::bm25::field_schema(&self.snapshot, &fields, Some(&readable))?,
            complete: false,
        })
    }

    /// The facet counts of `fields` for `access`'s query. A field `schema` does not list is an
    /// error when the schema is complete, else a field without values.
    pub(super) fn facets(
        &self,
        fields: &[String],
        schema: &CallerSchema,
        access: &Access<'_>,
    ) -> Result<BTreeMap<String, Vec<FacetCount>>> {
        let listed = |f: &&String| schema.fields.0.contains_key(*f);
        if let Some(unknown) = fields.iter().find(|f| schema.complete && !listed(f)) {
            let known: Vec<&str> = schema
                .fields
                .0
                .keys()
                .map(String::as_str)
                .take(40)
                .collect();
            return Err(Error::Input(format!(
                "`facets`: unknown field `{unknown}`: no document of this collection has it; known fields: {}",
                known.join(", ")
            )));
        }
        let words: Box<dyn Query> = build_query(access.bm25.terms(), access.bm25.params())
            .unwrap_or_else(|| Box::new(AllQuery));
        let query: Box<dyn Query> = match access.bm25.clause() {
            Some(clause) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, words),
                (Occur::Must, clause.box_clone()),
            ])),
            None => words,
        };
        let found = self.snapshot.search(query.as_ref(), &DocSetCollector)?;
        let mut counts: Counts = fields.iter().map(|f| (f.clone(), HashMap::new())).collect();
        let mut doc_keys = SegmentColumns::new(&self.snapshot, DOC_KEYS);
        let mut meta: HashMap<u32, Option<BytesColumn>> = HashMap::new();
        let mut buf = Vec::new();
        for address in found {
            let mut keys: Vec<u64> = doc_keys
                .column(address)?
                .values_for_doc(address.doc_id)
                .collect();
            keys.sort_unstable();
            keys.dedup();
            if let [key] = keys[..] {
                // a chunk of one document: the index clauses were exact, its values are its
                // document's
                let column = match meta.entry(address.segment_ord) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(
                        self.snapshot
                            .segment_reader(address.segment_ord)
                            .fast_fields()
                            .bytes("meta")?,
                    ),
                };
                let Some(column) = column else { continue };
                for ord in column.term_ords(address.doc_id) {
                    buf.clear();
                    column
                        .ord_to_bytes(ord, &mut buf)
                        .map_err(|e| Error::Corrupt(format!("BM25 metadata column: {e}")))?;
                    if let Some((field, _)) = decode(&buf)
                        && let Some(values) = counts.get_mut(field)
                    {
                        values.entry(buf.clone()).or_default().insert(key);
                    }
                }
            } else {
                // a shared chunk: each of its documents on its own
                let rec = self.index.record(&self.snapshot, address)?;
                for occ in rec.occurrences.iter().filter(|o| access.admits(o)) {
                    let values = occurrence_values(occ);
                    for (field, held) in counts.iter_mut() {
                        for v in values.get(field).into_iter().flatten() {
                            held.entry(term_bytes(field, v))
                                .or_default()
                                .insert(doc_key(&occ.doc_id));
                        }
                    }
                }
            }
        }
        Ok(counts
            .into_iter()
            .map(|(field, values)| {
                let mut list: Vec<(Vec<u8>, u64)> = values
                    .into_iter()
                    .map(|(bytes, docs)| (bytes, docs.len() as u64))
                    .collect();
                list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                list.truncate(MAX_FACET_VALUES);
                let counted = list
                    .iter()
                    .filter_map(|(bytes, count)| {
                        decode(bytes).map(|(_, v)| FacetCount {
                            value: v.to_json(),
                            count: *count,
                        })
                    })
                    .collect();
                (field, counted)
            })
            .collect())
    }
}
