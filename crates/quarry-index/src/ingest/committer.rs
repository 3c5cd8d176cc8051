//! The embedding and commit stages of an ingest, each on a thread of its own. While the caller
//! reads and chunks a batch, the batch before it is in the model ([`Engine::embed_ahead`],
//! outside the writer lock) and the one before that is committed and indexed under the lock
//! ([`Engine::apply_cancellable`]): the model is not idle while files are read and chunked or
//! while BM25, the vector index and the catalog are written. A batch enters the model only after
//! the one before has left it, and is committed only after the one before is, so the memory stays
//! three batches (one read, one embedded, one committed) whatever the size of the input. Without
//! embedding (`--no-embed`) a batch is committed as soon as the one before is.
//!
//! A model error is seen when the caller hands over the next batch (or at the end): the batch
//! read meanwhile is dropped with the error, and nothing of the failed batch is committed.

use super::summary::IngestOptions;
use crate::engine::{ApplyStats, Change, Engine};
use crate::error::Result;
use std::thread::{Scope, ScopedJoinHandle};

/// A batch out of the model: its changes and the chunks embedded ahead (or the model's error).
type Embedded = (Vec<Change>, Result<u64>);

pub(super) struct Committer<'s, 'a> {
    scope: &'s Scope<'s, 'a>,
    engine: &'a Engine,
    opts: &'a IngestOptions,
    embedding: Option<ScopedJoinHandle<'s, Embedded>>,
    applying: Option<ScopedJoinHandle<'s, Result<ApplyStats>>>,
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
            embedding: None,
            applying: None,
        }
    }

    /// Hands `changes` over: waits for the batch before it to leave the model and for the batch
    /// committed before to end, then starts embedding `changes` and committing the batch that
    /// left the model. Returns the stats of the batch that ended; on an error (that batch's
    /// commit, or the model's on the batch before) nothing more is started.
    pub(super) fn commit(&mut self, changes: Vec<Change>) -> Result<Vec<ApplyStats>> {
        let (engine, opts) = (self.engine, self.opts);
        if !opts.embed {
            let ended = self.applied()?;
            self.apply(changes, 0);
            return Ok(ended);
        }
        let embedded = self.embedded();
        // The batch committed before ends (and is reported) whatever became of the later ones.
        let ended = self.applied()?;
        let before = match embedded {
            Some((before, ahead)) => Some((before, ahead?)),
            None => None,
        };
        self.embedding = Some(self.scope.spawn(move || {
            let ahead = engine.embed_ahead(&opts.collection, &changes, opts.cancel.as_ref());
            (changes, ahead)
        }));
        if let Some((before, ahead)) = before {
            self.apply(before, ahead);
        }
        Ok(ended)
    }

    /// Starts committing `changes`, `ahead` of whose chunks were embedded ahead.
    fn apply(&mut self, changes: Vec<Change>, ahead: u64) {
        let (engine, opts) = (self.engine, self.opts);
        self.applying = Some(self.scope.spawn(move || {
            let cancel = opts.cancel.as_ref();
            engine.apply_cancellable(&opts.collection, changes, opts.embed, Some(ahead), cancel)
        }));
    }

    /// Waits for every batch handed over to be embedded and committed; their stats.
    pub(super) fn wait(&mut self) -> Result<Vec<ApplyStats>> {
        let embedded = self.embedded();
        let mut ended = self.applied()?;
        if let Some((changes, ahead)) = embedded {
            let (engine, opts) = (self.engine, self.opts);
            let cancel = opts.cancel.as_ref();
            ended.push(engine.apply_cancellable(
                &opts.collection,
                changes,
                opts.embed,
                Some(ahead?),
                cancel,
            )?);
        }
        Ok(ended)
    }

    /// Waits for the batch in the model, if any.
    fn embedded(&mut self) -> Option<Embedded> {
        self.embedding.take().map(|handle| match handle.join() {
            Ok(embedded) => embedded,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    /// Waits for the batch being committed, if any; its stats.
    fn applied(&mut self) -> Result<Vec<ApplyStats>> {
        match self.applying.take() {
            None => Ok(Vec::new()),
            Some(handle) => match handle.join() {
                Ok(stats) => stats.map(|s| vec![s]),
                Err(panic) => std::panic::resume_unwind(panic),
            },
        }
    }
}
