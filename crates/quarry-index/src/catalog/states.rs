//! The state machines the catalog stores as text: a job's kind and state, and an embedding
//! version's state. Each is an enum stored (in SQLite and in JSON) as the same lowercase word as
//! before; a stored word this quarry does not know is an [`Error::Corrupt`] naming it.

use crate::error::{Error, Result};
use rusqlite::types::{ToSql, ToSqlOutput};

/// Declares a fieldless enum stored as text: `as_str`, `FromStr` (an unknown word is
/// [`Error::Corrupt`]), `Display`, `ToSql` and serde as that text. Three small enums do not
/// justify a new dependency (`strum`) for what this macro writes.
macro_rules! stored_text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        // Every stored word is its variant's name in lower case; said once more for the OpenAPI
        // schema, which does not see the per-variant renames through the macro.
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The word stored in the catalog and shown in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::Corrupt(format!(
                        concat!($what, " {:?} in the catalog is unknown to this quarry"),
                        other
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
    };
}

stored_text_enum! {
    /// What a job does.
    JobKind, "job kind" {
        /// A new embedding version of the collection (a re-embed with another embedder).
        Reindex => "reindex",
        /// New chunk options: BM25 and vectors rebuilt together.
        Rechunk => "rechunk",
        /// New index parameters of the active version (its quantization): the vector index
        /// built anew from the stored vectors, nothing embedded.
        Requantize => "requantize",
    }
}

stored_text_enum! {
    /// Where a job is in its life: `queued` → `running` → `succeeded`, `failed` or `cancelled`.
    JobState, "job state" {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl JobState {
    /// Queued or running: the job has not ended.
    pub fn is_pending(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }

    /// The states of a job that has not ended.
    pub const PENDING: [JobState; 2] = [JobState::Queued, JobState::Running];
}

stored_text_enum! {
    /// Where an embedding version is in its life.
    VersionState, "embedding version state" {
        /// A re-index job is filling it.
        Building => "building",
        /// Complete and not serving: held back by the eval gate, or served before.
        Ready => "ready",
        /// Serving the collection's vector queries.
        Active => "active",
        /// Its index folder is deleted; its stored vectors stay in the embedding cache.
        Retired => "retired",
        /// Its job failed or was cancelled.
        Failed => "failed",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn states_read_and_write_the_stored_words() {
        for s in ["queued", "running", "succeeded", "failed", "cancelled"] {
            let st: JobState = s.parse().unwrap();
            assert_eq!(st.as_str(), s);
            assert_eq!(serde_json::to_value(st).unwrap(), serde_json::json!(s));
        }
        for s in ["building", "ready", "active", "retired", "failed"] {
            assert_eq!(s.parse::<VersionState>().unwrap().to_string(), s);
        }
        for s in ["reindex", "rechunk"] {
            assert_eq!(s.parse::<JobKind>().unwrap().as_str(), s);
        }
        let e = "ingest".parse::<JobKind>().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Internal, "{e}");
        assert!(e.to_string().contains("\"ingest\""), "{e}");
    }
}
