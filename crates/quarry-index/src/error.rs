//! Errors of the engine, split by blame: the caller's input, a missing thing, a busy resource, or an
//! internal fault (IO, catalog, index). The server maps [`Error::code`] to an HTTP status in one table.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something invalid; the message says what and how to fix it.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Core(#[from] quarry_core::Error),
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// The thing exists already, in another form (a collection with other settings).
    #[error("{0}")]
    Conflict(String),
    /// Another writer holds the data directory, or a resource is not ready.
    #[error("{0}")]
    Busy(String),
    #[error("{path}: {}", io_message(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog: {}", catalog_message(.0))]
    Catalog(#[from] rusqlite::Error),
    #[error("bm25 index: {}", bm25_message(.0))]
    Bm25(#[from] tantivy::TantivyError),
    /// The embedding model or provider failed (after its retries); the message says why.
    #[error("{0}")]
    Embed(String),
    /// Stored state that does not parse or contradicts itself.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// The write was cancelled (its request timed out, or the server is stopping) before its
    /// commit: nothing of it was written.
    #[error("{0}")]
    Cancelled(String),
    /// The engine was opened read-only ([`crate::EngineOptions::read_only`]) and this needs a
    /// write; the message says what to do.
    #[error("{0}")]
    ReadOnly(String),
}

/// What a full disk says, whichever layer ran into it: what happened and what to do.
fn disk_full(e: &dyn std::fmt::Display) -> String {
    format!("disk full ({e}); nothing was half-written: free some space and try again")
}

/// An IO error as the user should read it: a full disk says so, with what to do.
fn io_message(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::StorageFull {
        disk_full(e)
    } else {
        e.to_string()
    }
}

/// A catalog error; SQLite's `SQLITE_FULL` is a full disk (its write transaction rolled back).
fn catalog_message(e: &rusqlite::Error) -> String {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        disk_full(e)
    } else {
        e.to_string()
    }
}

/// A tantivy error; one caused by a full disk says so (the commit did not happen).
fn bm25_message(e: &tantivy::TantivyError) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return disk_full(e);
        }
        source = s.source();
    }
    match e {
        tantivy::TantivyError::IoError(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            disk_full(e)
        }
        _ => e.to_string(),
    }
}

/// Who is to blame for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Input,
    NotFound,
    Busy,
    Internal,
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Input(_) | Error::Core(_) | Error::Conflict(_) => ErrorKind::Input,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Busy(_) | Error::Embed(_) | Error::Cancelled(_) | Error::ReadOnly(_) => {
                ErrorKind::Busy
            }
            Error::Io { .. } | Error::Catalog(_) | Error::Bm25(_) | Error::Corrupt(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// A stable snake_case code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Input(_) | Error::Core(_) => "invalid_request",
            Error::NotFound {
                what: "collection", ..
            } => "collection_not_found",
            Error::NotFound {
                what: "document", ..
            } => "document_not_found",
            Error::NotFound { .. } => "not_found",
            Error::Busy(_) => "busy",
            Error::Conflict(_) => "conflict",
            Error::Embed(_) => "embedding_unavailable",
            Error::Cancelled(_) => "cancelled",
            Error::ReadOnly(_) => "read_only",
            _ => "internal",
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk reads the same, and says what to do, from each layer that can hit it.
    #[test]
    fn a_full_disk_says_so_from_sqlite_tantivy_and_plain_io() {
        let full = || std::io::Error::from(std::io::ErrorKind::StorageFull);
        let sqlite = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), None);
        let errors = [
            Error::io("/data/x", full()),
            Error::Catalog(sqlite),
            Error::Bm25(tantivy::TantivyError::IoError(std::sync::Arc::new(full()))),
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(
                msg.contains("disk full") && msg.contains("free some space"),
                "{msg}"
            );
        }
        let other = Error::Catalog(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(5),
            None,
        ));
        assert!(!other.to_string().contains("disk full"), "{other}");
    }
}
