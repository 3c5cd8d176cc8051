//! Background jobs over an [`Engine`](crate::Engine): the queue ([`queue`]: queue, list,
//! cancel, run, resume after a crash), the re-index that builds a new embedding version and
//! promotes it through the eval gate ([`reindex`]), the re-chunk ([`rechunk`]), the requantize
//! that rebuilds the active version's index with another quantization ([`requantize`]), and the canary
//! checks that notice an embedder whose model changed behind its name ([`canary`]). A job row
//! is the durable record (`catalog::Job`); the engine provides the version lifecycle the jobs
//! drive (build a shadow index, cut over, retire).

mod canary;
mod progress;
mod queue;
mod rechunk;
mod reindex;
mod requantize;

pub use canary::{
    CanaryOutcome, CanaryReport, ModelChange, check_canaries, check_canary, model_changes,
};
pub use progress::job;
pub use queue::{
    cancel, enqueue_rebuild_index, enqueue_rechunk, enqueue_reindex, enqueue_requantize, list,
    next, run, run_pending,
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod requantize_tests;
