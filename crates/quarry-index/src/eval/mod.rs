//! Evaluation of retrieval quality; [`gate`] is the eval gate a re-index passes before its new
//! embedding version serves.

pub mod gate;
