//! Stored evaluation runs (`eval_runs`): a summary row per run (its configuration and mean metrics
//! per mode) and, apart, its per-query results, so the history reads only summaries; and golden
//! sets (`golden_sets`). The run types are `crate::eval::run`'s (re-exported here), stored as
//! their JSON.

use super::{Catalog, now};
use crate::error::{Error, Result};
pub use crate::eval::run::{EvalRun, EvalRunSummary};
use rusqlite::{OptionalExtension, params};

/// One judged query of a golden set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GoldenQuery {
    pub id: String,
    pub query: String,
    /// Graded relevance by document id (`> 0` is relevant).
    pub relevant: std::collections::BTreeMap<String, u32>,
}

/// A golden set without its queries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct GoldenSummary {
    pub collection: String,
    pub name: String,
    pub created_at: i64,
    pub queries: usize,
}

/// The summary in columns 0 to 4 (id, collection, created_at, config, metrics) of a row.
fn summary(r: &rusqlite::Row<'_>) -> Result<EvalRunSummary> {
    Ok(EvalRunSummary {
        id: r.get(0)?,
        collection: r.get(1)?,
        created_at: r.get(2)?,
        config: json(&r.get::<_, String>(3)?, "config")?,
        metrics: json(&r.get::<_, String>(4)?, "metrics")?,
    })
}

fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("eval run {what}: {e}")))
}

impl Catalog {
    /// Stores a run and returns its id, `r<N>` with N one more than the highest so far.
    pub(crate) fn insert_eval_run(
        &mut self,
        collection: &str,
        config: &serde_json::Value,
        metrics: &serde_json::Value,
        queries: &serde_json::Value,
    ) -> Result<String> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(CAST(substr(id, 2) AS INTEGER)), 0) + 1 FROM eval_runs WHERE id GLOB 'r[0-9]*'",
            [],
            |r| r.get(0),
        )?;
        let id = format!("r{next}");
        tx.execute(
            "INSERT INTO eval_runs (id, collection, created_at, config, metrics, queries) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                collection,
                now(),
                config.to_string(),
                metrics.to_string(),
                queries.to_string()
            ],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Run summaries, oldest first; of one collection when given.
    pub(crate) fn eval_runs(&self, collection: Option<&str>) -> Result<Vec<EvalRunSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, collection, created_at, config, metrics FROM eval_runs
             WHERE ?1 IS NULL OR collection = ?1 ORDER BY created_at, CAST(substr(id, 2) AS INTEGER)",
        )?;
        let mut rows = stmt.query([collection])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(summary(r)?);
        }
        Ok(out)
    }

    /// One run's summary.
    pub(crate) fn eval_run_summary(&self, id: &str) -> Result<Option<EvalRunSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, collection, created_at, config, metrics FROM eval_runs WHERE id = ?1",
        )?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(summary).transpose()
    }

    /// One run with its per-query results.
    pub(crate) fn eval_run(&self, id: &str) -> Result<Option<EvalRun>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, collection, created_at, config, metrics, queries FROM eval_runs WHERE id = ?1",
        )?;
        let mut rows = stmt.query([id])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(EvalRun {
            summary: summary(r)?,
            queries: json(&r.get::<_, String>(5)?, "queries")?,
        }))
    }

    /// Stores (or replaces) the golden set `name` of `collection`.
    pub(crate) fn put_golden(
        &self,
        collection: &str,
        name: &str,
        queries: &[GoldenQuery],
    ) -> Result<()> {
        let queries = serde_json::to_string(queries).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO golden_sets (collection, name, created_at, queries) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (collection, name) DO UPDATE SET created_at = excluded.created_at, queries = excluded.queries",
            params![collection, name, now(), queries],
        )?;
        Ok(())
    }

    /// The golden sets, of one collection when given.
    pub(crate) fn golden_sets(&self, collection: Option<&str>) -> Result<Vec<GoldenSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT collection, name, created_at, json_array_length(queries) FROM golden_sets
             WHERE ?1 IS NULL OR collection = ?1 ORDER BY collection, name",
        )?;
        let rows = stmt.query_map([collection], |r| {
            Ok(GoldenSummary {
                collection: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                queries: r.get::<_, i64>(3)? as usize,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The queries of a golden set, if it exists.
    pub(crate) fn golden(&self, collection: &str, name: &str) -> Result<Option<Vec<GoldenQuery>>> {
        let raw: Option<String> = self
            .conn
            .query_row(
                "SELECT queries FROM golden_sets WHERE collection = ?1 AND name = ?2",
                [collection, name],
                |r| r.get(0),
            )
            .optional()?;
        raw.map(|q| {
            serde_json::from_str(&q)
                .map_err(|e| Error::Corrupt(format!("golden set {collection}/{name}: {e}")))
        })
        .transpose()
    }

    /// Removes a golden set; `false` if there was none.
    pub(crate) fn delete_golden(&self, collection: &str, name: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM golden_sets WHERE collection = ?1 AND name = ?2",
            [collection, name],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_catalog_is_migrated_and_runs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite3");
        {
            // a catalog as the previous release left it: schema version 2, one collection
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{} {} PRAGMA user_version = 2;",
                include_str!("schema.sql"),
                include_str!("schema_v2.sql")
            ))
            .unwrap();
            conn.execute(
                r#"INSERT INTO collections (name, generation, chunk_options, created_at)
                   VALUES ('c', 0, '{"max_tokens": 256, "overlap": 32, "sizer": "tokens"}', 0)"#,
                [],
            )
            .unwrap();
        }
        let mut catalog = Catalog::open(&path).unwrap();
        let version: i64 = catalog
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, crate::catalog::SCHEMA_VERSION);
        assert_eq!(catalog.collections().unwrap().len(), 1, "data kept");
        let config = serde_json::json!({"fusion": {"method": "rrf", "k": 60.0}});
        // a run as measuring records it: every metric, latencies; per query without scores
        let m = quarry_core::metrics::Metrics {
            ndcg_10: 0.5,
            ..Default::default()
        };
        let mode = crate::eval::ModeMetrics {
            metrics: m,
            ..Default::default()
        };
        let metrics = serde_json::json!({ "bm25": mode });
        let queries =
            serde_json::json!({"bm25": {"q1": {"ranked": ["a"], "relevant": [], "metrics": m}}});
        let r1 = catalog
            .insert_eval_run("c", &config, &metrics, &queries)
            .unwrap();
        let r2 = catalog
            .insert_eval_run("d", &config, &metrics, &queries)
            .unwrap();
        assert_eq!((r1.as_str(), r2.as_str()), ("r1", "r2"));
        let all = catalog.eval_runs(None).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        assert_eq!(catalog.eval_runs(Some("d")).unwrap().len(), 1);
        let run = catalog.eval_run("r1").unwrap().unwrap();
        assert_eq!(serde_json::to_value(&run.queries).unwrap(), queries);
        assert_eq!(serde_json::to_value(&run.summary.metrics).unwrap(), metrics);
        assert!(catalog.eval_run("r3").unwrap().is_none());
        let golden = vec![GoldenQuery {
            id: "1".into(),
            query: "q".into(),
            relevant: [("a".to_string(), 2)].into(),
        }];
        catalog.put_golden("c", "smoke", &golden).unwrap();
        catalog.put_golden("c", "smoke", &golden).unwrap();
        assert_eq!(catalog.golden("c", "smoke").unwrap().unwrap(), golden);
        let sets = catalog.golden_sets(Some("c")).unwrap();
        assert_eq!((sets.len(), sets[0].queries), (1, 1));
        assert!(catalog.golden("c", "other").unwrap().is_none());
        assert!(catalog.delete_golden("c", "smoke").unwrap());
        assert!(!catalog.delete_golden("c", "smoke").unwrap());
        drop(catalog);
        // reopening a current catalog changes nothing
        let catalog = Catalog::open(&path).unwrap();
        assert_eq!(catalog.eval_runs(None).unwrap().len(), 2);
    }
}
