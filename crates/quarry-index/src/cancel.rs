//! The race between a write's commit and its caller giving up (a request that timed out, a
//! server shutting down), decided once: either the write reaches its commit first and the
//! caller waits for it to finish, or the caller cancels first and nothing of the write is
//! committed. Never both, so a caller that answered "timed out" never sees the write appear
//! afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const PENDING: u8 = 0;
const COMMITTING: u8 = 1;
const CANCELLED: u8 = 2;

/// Shared by a write and whoever may cancel it; clones share the decision.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicU8>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the write unless it began committing. `true`: cancelled, nothing of it will be
    /// committed; `false`: it is committing (the caller should wait for its result).
    pub fn cancel(&self) -> bool {
        match self
            .0
            .compare_exchange(PENDING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == CANCELLED,
        }
    }

    /// Called by the write just before its commit: `true` when it may commit (and can no longer
    /// be cancelled), `false` when it was cancelled.
    pub fn begin_commit(&self) -> bool {
        match self
            .0
            .compare_exchange(PENDING, COMMITTING, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// Whether the write was cancelled (it stops at its next check).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) == CANCELLED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_commit_and_cancel_wins() {
        let c = Cancel::new();
        assert!(c.cancel() && c.is_cancelled());
        assert!(!c.begin_commit(), "a cancelled write never commits");
        assert!(c.cancel(), "cancelling twice is still cancelled");

        let c = Cancel::new();
        assert!(c.begin_commit());
        assert!(!c.cancel(), "a committing write cannot be cancelled");
        assert!(!c.is_cancelled());
        assert!(c.begin_commit(), "a write with several commits goes on");
    }

    #[test]
    fn racing_threads_agree() {
        for _ in 0..200 {
            let c = Cancel::new();
            let (a, b) = (c.clone(), c.clone());
            let t = std::thread::spawn(move || a.begin_commit());
            let cancelled = b.cancel();
            let committed = t.join().unwrap_or(false);
            assert_ne!(committed, cancelled, "exactly one wins");
        }
    }
}
