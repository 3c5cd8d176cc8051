//! What the ACL tests ask a searcher that queries do not show: the vector search's permitted
//! set, and BM25's shortcut answers beside the restricted query's own.

use super::{Mode, Principal, Result, Searcher};

/// `(count, all, keys, answer by chunk key)` of [`Searcher::admitted_for_tests`].
pub(crate) type AdmittedForTests = (usize, bool, Vec<u64>, std::collections::BTreeMap<u64, bool>);

/// [`Searcher::bm25_tops_for_tests`]'s answer.
pub(crate) type BothTops = (
    Vec<(f32, u64)>,
    crate::bm25::search::TopPath,
    Vec<(f32, u64)>,
);

impl Searcher {
    /// What the vector search would ask of the chunks `caller` may get: the permitted count,
    /// whether that is every chunk, their keys, and the answer for every chunk key of the
    /// snapshot (for the ACL tests' oracle).
    pub(crate) fn admitted_for_tests(&self, caller: &Principal) -> Result<AdmittedForTests> {
        use crate::vectors::Permitted;
        let access = self.access("", caller, Mode::Vector, None, None)?;
        let sets = access.bm25.permitted()?;
        let admitted = sets.admitted(&self.snapshot, &self.keys);
        let answers = (self.keys.entries().into_iter())
            .map(|(k, _, _)| (k, admitted.admits(k)))
            .collect();
        Ok((admitted.count(), admitted.all(), admitted.keys(), answers))
    }

    /// BM25's best `limit` chunks for `caller` as `(score, chunk key)` twice: by
    /// [`Bm25Query::top`] (and the way it went) and by the restricted query itself.
    pub(crate) fn bm25_tops_for_tests(
        &self,
        text: &str,
        caller: &Principal,
        limit: usize,
    ) -> Result<BothTops> {
        let access = self.access(text, caller, Mode::Bm25, None, None)?;
        let keys = |hits: Vec<(f32, u64, tantivy::DocAddress)>| {
            hits.into_iter().map(|(s, k, _)| (s, k)).collect()
        };
        let (fast, path) = access.bm25.top_by(limit)?;
        Ok((keys(fast), path, keys(access.bm25.top_restricted(limit)?)))
    }
}
