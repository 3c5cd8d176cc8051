//! The error type of quarry-core: every failure here is the caller's input.

/// Errors raised by the pure algorithms of this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// An option or argument is out of its allowed range; the message names it and the range.
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

impl Error {
    pub fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            why: why.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
