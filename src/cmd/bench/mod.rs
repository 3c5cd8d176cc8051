//! `quarry bench`: measurements of quarry itself, run on this binary. `bench scale` builds a
//! collection of generated chunks without a model and measures building, sizes, serving memory,
//! restart, recall and query latency over HTTP (see `docs/cli.md`, "quarry bench scale").
//!
//! The parts, leaves first: `draw` (seeded random streams), `alias` (sampling words by
//! frequency), `words` (the vocabulary), `embeddings` (vectors mixed from reference vectors),
//! `corpus` (everything generated, and its files), `exact` (the recall oracle), `setup` (the data
//! directory's configuration and manifest), `build` (the ingest as child processes), `server`
//! and `load` (a `quarry serve` child and queries over HTTP), `measure`, `report`; `scale` runs
//! them in order.

mod alias;
mod args;
mod build;
mod corpus;
mod draw;
mod embeddings;
mod exact;
mod load;
mod measure;
mod report;
mod scale;
mod server;
mod setup;
mod words;

pub(crate) use args::Args;
pub(crate) use scale::run;
