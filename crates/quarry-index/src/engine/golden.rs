//! Golden sets and recorded evaluation runs, as the catalog stores them.

use super::state::Engine;
use crate::catalog::check_collection_name;
use crate::error::{Error, Result};

impl Engine {
    /// Stores an evaluation run (see `catalog::EvalRun`) and returns its id.
    pub(crate) fn record_eval_run(
        &self,
        collection: &str,
        config: &serde_json::Value,
        metrics: &serde_json::Value,
        queries: &serde_json::Value,
    ) -> Result<String> {
        check_collection_name(collection)?;
        self.catalog()
            .insert_eval_run(collection, config, metrics, queries)
    }

    /// Stored evaluation runs, oldest first; of one collection when given.
    pub fn eval_runs(
        &self,
        collection: Option<&str>,
    ) -> Result<Vec<crate::catalog::EvalRunSummary>> {
        self.catalog().eval_runs(collection)
    }

    /// Stores (or replaces) a golden set of an existing collection.
    pub fn put_golden(
        &self,
        collection: &str,
        name: &str,
        queries: &[crate::catalog::GoldenQuery],
    ) -> Result<()> {
        self.collection(collection)?;
        check_collection_name(name).map_err(|_| {
            Error::Input(format!(
                "invalid golden set name {name:?}: use 1 to 64 letters, digits, `_` or `-`"
            ))
        })?;
        if queries.is_empty() {
            return Err(Error::Input(format!(
                "golden set `{name}` has no queries; give at least one"
            )));
        }
        self.catalog().put_golden(collection, name, queries)
    }

    /// The golden sets, of one collection when given.
    pub fn golden_sets(
        &self,
        collection: Option<&str>,
    ) -> Result<Vec<crate::catalog::GoldenSummary>> {
        self.catalog().golden_sets(collection)
    }

    /// The queries of a golden set.
    pub(crate) fn golden(
        &self,
        collection: &str,
        name: &str,
    ) -> Result<Vec<crate::catalog::GoldenQuery>> {
        self.catalog()
            .golden(collection, name)?
            .ok_or_else(|| Error::NotFound {
                what: "golden set",
                id: format!("{collection}/{name}"),
            })
    }

    /// Removes a golden set.
    pub fn delete_golden(&self, collection: &str, name: &str) -> Result<()> {
        if self.catalog().delete_golden(collection, name)? {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "golden set",
                id: format!("{collection}/{name}"),
            })
        }
    }

    /// One stored evaluation run with its per-query results.
    pub fn eval_run(&self, id: &str) -> Result<crate::catalog::EvalRun> {
        self.catalog().eval_run(id)?.ok_or_else(|| Error::NotFound {
            what: "eval run",
            id: id.to_owned(),
        })
    }

    /// A recorded eval run's summary (without its per-query results).
    pub(crate) fn eval_run_summary(&self, id: &str) -> Result<crate::catalog::EvalRunSummary> {
        self.catalog()
            .eval_run_summary(id)?
            .ok_or_else(|| Error::NotFound {
                what: "eval run",
                id: id.to_owned(),
            })
    }
}
