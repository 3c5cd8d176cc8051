//! Binary documents (PDF and Word): their bytes through the format's reader, run under
//! [`guarded`] (its own thread, panics caught, a deadline), into a title and the text the chunker
//! splits, or the reason the file is skipped.

use super::docx::extract_docx;
use super::extract::Extracted;
use super::guarded::{Unreadable, guarded};
use super::pdf::extract_pdf;
use quarry_core::DocFormat;
use std::time::Duration;

/// Warnings `(reason, message)` of a document kept anyway.
pub(crate) type Warnings = Vec<(&'static str, String)>;

/// Whether files of `format` are read by [`read_binary`] rather than as text.
pub(crate) fn is_binary(format: DocFormat) -> bool {
    matches!(format, DocFormat::Pdf | DocFormat::Docx)
}

/// Reads the PDF or Word document in `bytes`, waiting at most `limit`, into its title (the
/// document's own, else `fallback_title`, the file stem) and text, with the warnings of a
/// document kept anyway (pages that could not be read).
pub(crate) fn read_binary(
    format: DocFormat,
    bytes: Vec<u8>,
    fallback_title: &str,
    limit: Duration,
) -> Result<(Extracted, Warnings), Unreadable> {
    let (title, text, warnings) = match format {
        DocFormat::Pdf => {
            let pdf = guarded(limit, "malformed_pdf", move || extract_pdf(&bytes))?;
            let warnings = if pdf.failed_pages.is_empty() {
                Vec::new()
            } else {
                vec![(
                    "unreadable_pages",
                    format!(
                        "pages {:?} of {} could not be read and are left out",
                        pdf.failed_pages,
                        pdf.pages.len()
                    ),
                )]
            };
            (pdf.title.clone(), pdf.text(), warnings)
        }
        DocFormat::Docx => {
            let docx = guarded(limit, "malformed_docx", move || extract_docx(&bytes))?;
            (docx.title, docx.text, Vec::new())
        }
        other => {
            return Err(Unreadable::new(
                "unsupported_format",
                format!("{} is not a binary format", other.as_str()),
            ));
        }
    };
    let extracted = Extracted {
        title: title.unwrap_or_else(|| fallback_title.to_owned()),
        text,
        metadata: Default::default(),
        warning: None,
    };
    Ok((extracted, warnings))
}
