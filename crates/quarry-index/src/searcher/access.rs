//! One query of one caller, prepared once and used at every depth: who asks, the typed filter,
//! the BM25 query with both as one clause, the permitted set of the vector search, and where the
//! time went.

use super::clock::Clock;
use crate::bm25::occurrence_values;
use crate::bm25::search::{Bm25Query, PermittedSets};
use crate::catalog::Occurrence;
use quarry_core::{DefaultAcl, Filter, Principal};
use std::sync::OnceLock;

/// One query of one caller, prepared once and used at every depth: what the caller may see, the
/// query's filter, and the BM25 query (with both as one clause).
pub(super) struct Access<'a> {
    pub(super) caller: &'a Principal,
    pub(super) default_acl: &'a DefaultAcl,
    /// The query's metadata filter, typed; `None` for `{}`.
    pub(super) filter: Option<Filter>,
    pub(super) bm25: Bm25Query<'a>,
    /// The chunks the caller may see that may pass the filter, computed on the first vector
    /// search that needs them.
    pub(super) permitted: OnceLock<PermittedSets>,
    /// Time spent in each retriever and in fusion, over every pass.
    pub(super) clock: Clock,
}

impl Access<'_> {
    /// Whether this occurrence may answer: the caller may read its document and the document
    /// passes the filter. The index clauses are exact for a chunk of one document; this decides
    /// for a chunk several documents share.
    pub(super) fn admits(&self, occ: &Occurrence) -> bool {
        admits(self.caller, self.default_acl, self.filter.as_ref(), occ)
    }
}

/// [`Access::admits`] before there is an [`Access`] (the feedback of an expanded query).
pub(super) fn admits(
    caller: &Principal,
    default_acl: &DefaultAcl,
    filter: Option<&Filter>,
    occ: &Occurrence,
) -> bool {
    caller.may_read(&occ.acl, default_acl)
        && filter.is_none_or(|f| f.matches(&occurrence_values(occ)))
}
