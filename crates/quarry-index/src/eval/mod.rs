//! Evaluation: measuring retrieval quality with judged queries and keeping the history.
//!
//! - [`measure`]: judged queries ([`Case`]) run per mode of a [`Plan`], scored and timed; an
//!   [`Engine`](crate::Engine) measures a collection (or a snapshot of it) and records the run.
//! - [`run`]: what a run holds ([`Measured`], [`ModeReport`]) and its TREC run lines.
//! - [`beir`]: BEIR-layout dataset readers.
//! - [`drift`]: scheduled evaluation of the golden sets and the drift alarm.
//!
//! `eval` uses the engine; the engine does not use `eval`.

pub mod beir;
pub mod drift;
pub mod measure;
pub mod run;

pub use beir::{read_beir_cases, read_beir_qrels, read_beir_queries};
pub use drift::{Drift, DriftPolicy, ScheduledRun};
pub use measure::{Case, Plan, measure, mode_name};
pub use run::{Measured, ModeReport, trec_lines};
