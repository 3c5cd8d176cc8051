//! [`Clock`]: where a query's time went, retriever by retriever, for `explain`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds spent in BM25, in the vector search and in fusion (the two retrievers may run at
/// once, on two threads).
#[derive(Default)]
pub(super) struct Clock {
    pub(super) bm25: AtomicU64,
    pub(super) vector: AtomicU64,
    pub(super) fusion: AtomicU64,
}

impl Clock {
    pub(super) fn add(counter: &AtomicU64, since: Instant) {
        counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    pub(super) fn ms(counter: &AtomicU64) -> f64 {
        counter.load(Ordering::Relaxed) as f64 / 1e6
    }
}
