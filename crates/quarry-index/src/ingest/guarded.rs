//! Running a document extractor that may panic, loop or recurse deeply (PDF and DOCX readers
//! parse hostile binary input): on a worker thread of its own, under
//! [`std::panic::catch_unwind`], with a deadline. A panic or a missed deadline becomes an
//! [`Unreadable`] with a reason the ingest summary counts; it never reaches the ingest.
//!
//! A thread cannot be stopped from outside, so an extraction past its deadline is abandoned, not
//! killed: its thread runs on, detached, until it ends or the process exits (`quarry ingest`
//! exits when the run is done). At most [`MAX_RUNAWAYS`] abandoned extractions may still be
//! running: past that, a file is skipped at once (`extraction_backlog`) rather than started,
//! so that a folder of hostile files cannot pile up threads that spin on every core and make
//! sound files miss their deadline too. The thread gets a large stack ([`STACK_BYTES`]) so that deep but
//! finite nesting is read rather than overflowing, which would abort the process.
//!
//! A caught panic still runs the process's panic hook, which prints `thread … panicked at …` on
//! stderr: noise in the middle of an ingest for a file the summary already reports. So the first
//! guarded extraction wraps the hook once: a panic on an extraction thread is logged at debug
//! level instead, and every other panic goes to the hook that was in place.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

/// Most abandoned extractions still running before new ones are refused.
pub(crate) const MAX_RUNAWAYS: usize = 4;

/// The abandoned extractions of this process that have not ended yet.
static RUNAWAYS: AtomicUsize = AtomicUsize::new(0);

/// An extraction's state, decided once between its thread and its caller.
const RUNNING: u8 = 0;
const ENDED: u8 = 1;
const ABANDONED: u8 = 2;

/// The name of extraction threads, by which the panic hook knows them.
const THREAD_NAME: &str = "quarry-extract";

/// Stack of an extraction thread.
pub(crate) const STACK_BYTES: usize = 64 * 1024 * 1024;

/// Why a file yielded no document: a reason counted in the ingest summary (`encrypted`,
/// `no_text_layer`, `malformed_pdf`, `timeout`, …) and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub reason: &'static str,
    pub message: String,
}

impl Unreadable {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Unreadable {
            reason,
            message: message.into(),
        }
    }
}

/// Runs `extract` on a thread of its own and waits at most `limit` for it. A panic is an
/// [`Unreadable`] with `panic_reason` (what a reader's panic says of its input, such as
/// `malformed_pdf`); a missed deadline is one with reason `timeout`.
pub(crate) fn guarded<T: Send + 'static>(
    limit: Duration,
    panic_reason: &'static str,
    extract: impl FnOnce() -> Result<T, Unreadable> + Send + 'static,
) -> Result<T, Unreadable> {
    guarded_counted(limit, panic_reason, extract, &RUNAWAYS)
}

/// [`guarded`], counting abandoned extractions in `runaways`.
fn guarded_counted<T: Send + 'static>(
    limit: Duration,
    panic_reason: &'static str,
    extract: impl FnOnce() -> Result<T, Unreadable> + Send + 'static,
    runaways: &'static AtomicUsize,
) -> Result<T, Unreadable> {
    quiet_extraction_panics();
    let running = runaways.load(Ordering::SeqCst);
    if running >= MAX_RUNAWAYS {
        return Err(Unreadable::new(
            "extraction_backlog",
            format!(
                "{running} earlier extractions are still running past their deadline; this file \
                 was not started so that they do not starve the rest (ingest it again later)"
            ),
        ));
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let thread_state = state.clone();
    let (tx, rx) = sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(extract));
            // the receiver is gone once the deadline passed: nobody waits for this result
            let _ = tx.send(out);
            if thread_state
                .compare_exchange(RUNNING, ENDED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                runaways.fetch_sub(1, Ordering::SeqCst);
            }
        });
    if let Err(e) = spawned {
        return Err(Unreadable::new(
            "unreadable",
            format!("could not start an extraction thread: {e}"),
        ));
    }
    let answer = match rx.recv_timeout(limit) {
        Err(RecvTimeoutError::Timeout) => {
            if state
                .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                runaways.fetch_add(1, Ordering::SeqCst);
                Err(RecvTimeoutError::Timeout)
            } else {
                // it ended just now: its result is there
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            }
        }
        other => other,
    };
    match answer {
        Ok(Ok(result)) => result,
        Ok(Err(payload)) => Err(Unreadable::new(
            panic_reason,
            format!(
                "the reader failed on this file ({}); it is damaged or uses a feature the \
                 reader does not handle",
                panic_text(payload.as_ref())
            ),
        )),
        Err(RecvTimeoutError::Disconnected) => Err(Unreadable::new(
            panic_reason,
            "the reader stopped without a result",
        )),
        Err(RecvTimeoutError::Timeout) => Err(Unreadable::new(
            "timeout",
            format!(
                "extraction took longer than {} s and was abandoned; the file may be damaged \
                 or pathological",
                limit.as_secs_f64()
            ),
        )),
    }
}

/// Wraps the panic hook, once per process, so that panics of extraction threads (caught and
/// reported as a skip reason) are logged at debug level rather than printed.
fn quiet_extraction_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(THREAD_NAME) {
                tracing::debug!("a document reader panicked (the file is skipped): {info}");
            } else {
                previous(info);
            }
        }));
    });
}

/// A panic's message, cut to 200 characters.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn results_panics_and_deadlines() {
        let limit = Duration::from_secs(5);
        assert_eq!(guarded(limit, "malformed_pdf", || Ok(7)), Ok(7));
        assert_eq!(
            guarded::<u8>(limit, "malformed_pdf", || Err(Unreadable::new(
                "encrypted",
                "x"
            ))),
            Err(Unreadable::new("encrypted", "x"))
        );
        let e =
            guarded::<u8>(limit, "malformed_pdf", || panic!("index out of bounds: 9")).unwrap_err();
        assert_eq!(e.reason, "malformed_pdf");
        assert!(e.message.contains("index out of bounds: 9"), "{e:?}");
        // an extraction that does not end is abandoned at its deadline (it ends after the
        // test, so it does not stay counted among this process's runaways for other tests)
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let running = stop.clone();
        let e = guarded::<u8>(Duration::from_millis(200), "malformed_pdf", move || {
            while !running.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(0)
        })
        .unwrap_err();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(e.reason, "timeout");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn abandoned_extractions_are_bounded_and_counted_until_they_end() {
        static RUNAWAYS: AtomicUsize = AtomicUsize::new(0);
        let slow = || {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(1u8)
        };
        let limit = Duration::from_millis(50);
        for i in 0..MAX_RUNAWAYS {
            let e = guarded_counted(limit, "malformed_pdf", slow, &RUNAWAYS).unwrap_err();
            assert_eq!(e.reason, "timeout", "{i}");
        }
        assert_eq!(RUNAWAYS.load(Ordering::SeqCst), MAX_RUNAWAYS);
        // past the bound, a file is not started: refused at once, even a quick one
        let started = Instant::now();
        let e = guarded_counted(limit, "malformed_pdf", || Ok(2u8), &RUNAWAYS).unwrap_err();
        assert_eq!(e.reason, "extraction_backlog");
        // well under the 1.5 s the abandoned ones take (a wait for one would show)
        assert!(started.elapsed() < Duration::from_millis(1000));
        // once the abandoned ones end, the count is back to 0 and files are read again
        let deadline = Instant::now() + Duration::from_secs(10);
        while RUNAWAYS.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "abandoned extractions never counted as ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            guarded_counted(
                Duration::from_secs(5),
                "malformed_pdf",
                || Ok(3u8),
                &RUNAWAYS
            ),
            Ok(3)
        );
    }
}
