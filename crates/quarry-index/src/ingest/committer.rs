//! The commit stage of an ingest on a thread of its own. While one batch is committed and
//! indexed under the writer lock ([`Engine::apply_cancellable`]), the caller reads, chunks and
//! embeds the next ([`Engine::embed_ahead`], outside the lock), so the model is not idle while
//! BM25, the vector index and the catalog are written. At most one batch is being committed and
//! one being prepared: the memory stays two batches, whatever the size of the input.

use super::summary::IngestOptions;
use crate::engine::{ApplyStats, Change, Engine};
use crate::error::Result;
use std::thread::{Scope, ScopedJoinHandle};

pub(super) struct Committer<'s, 'a> {
    scope: &'s Scope<'s, 'a>,
    engine: &'a Engine,
    opts: &'a IngestOptions,
    pending: Option<ScopedJoinHandle<'s, Result<ApplyStats>>>,
}

impl<'s, 'a> Committer<'s, 'a> {
    pub(super) fn new(
        scope: &'s Scope<'s, 'a>,
        engine: &'a Engine,
        opts: &'a IngestOptions,
    ) -> Self {
        Committer {
            scope,
            engine,
            opts,
            pending: None,
        }
    }

    /// Embeds the chunks of `changes` that lack vectors, waits for the batch before it to be
    /// committed, and starts committing `changes`. Returns the stats of the batch before.
    pub(super) fn commit(&mut self, changes: Vec<Change>) -> Result<Option<ApplyStats>> {
        let (engine, opts) = (self.engine, self.opts);
        let cancel = opts.cancel.as_ref();
        let ahead = if opts.embed {
            engine.embed_ahead(&opts.collection, &changes, cancel)
        } else {
            Ok(0)
        };
        // The batch before ends (and is reported) whatever became of this one.
        let before = self.wait()?;
        let ahead = ahead?;
        self.pending = Some(self.scope.spawn(move || {
            engine.apply_cancellable(&opts.collection, changes, opts.embed, Some(ahead), cancel)
        }));
        Ok(before)
    }

    /// Waits for the batch being committed; its stats.
    pub(super) fn wait(&mut self) -> Result<Option<ApplyStats>> {
        match self.pending.take() {
            None => Ok(None),
            Some(handle) => match handle.join() {
                Ok(stats) => stats.map(Some),
                Err(panic) => std::panic::resume_unwind(panic),
            },
        }
    }
}
