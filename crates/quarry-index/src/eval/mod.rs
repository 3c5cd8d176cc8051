//! Evaluation: measuring retrieval quality with judged queries and keeping the history.
//!
//! - [`measure`]: judged queries ([`Case`]) run per mode of a [`Plan`], scored and timed; an
//!   [`Engine`](crate::Engine) measures a collection (or a snapshot of it) and records the run.
//! - [`run`]: the typed run: what a measurement produces ([`Measured`]) and the catalog stores
//!   ([`EvalRunSummary`], [`EvalRun`]), per mode ([`ModeMetrics`]) and per query; TREC lines.
//! - [`beir`]: BEIR-layout dataset readers.
//! - [`compare`]: two runs compared, with a paired randomization test of nDCG@10.
//! - [`drift`]: scheduled evaluation of the golden sets and the drift alarm.
//!
//! - [`gate`]: the eval gate a re-index passes before its new embedding version serves.
//!
//! `eval` uses the engine (its `impl Engine` blocks add the measuring methods); the engine does
//! not use `eval`: the re-index job (`crate::jobs`) runs the gate and hands its verdict to the
//! engine's cutover.

pub mod beir;
pub mod compare;
pub mod drift;
pub mod format;
pub mod gate;
pub mod measure;
pub mod report;
pub mod run;

pub use beir::{read_beir_cases, read_beir_qrels, read_beir_queries};
pub use compare::{ChangedQuery, Comparison, ModeComparison, compare};
pub use drift::{Drift, DriftPolicy, ScheduledRun};
pub use measure::{Case, Plan, measure, mode_name};
pub use run::{
    EvalRun, EvalRunSummary, Latency, Measured, ModeMetrics, QueryResult, RunMetrics, RunQueries,
    trec_lines,
};
