//! Text extraction: which files quarry reads ([`format_of`]), and the text formats: plain text,
//! Markdown (YAML front matter as metadata, its `title` or the first heading as the title), HTML
//! (the page's main text without boilerplate, `<title>` as title: [`super::html`]) and
//! BEIR-style JSONL records. PDF and Word files are binary and read by [`super::pdf`] and
//! [`super::docx`].

use quarry_core::{ContentHash, DocFormat, Document};

/// Extracted title, text and metadata of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub title: String,
    pub text: String,
    /// Markdown front matter's keys but `title`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Why the front matter was not read as metadata (not YAML, not a mapping, or metadata
    /// quarry refuses); the document is kept without it.
    pub warning: Option<String>,
}

/// The format of a file, by extension (case-insensitive); `None` for formats quarry does not read.
pub fn format_of(path: &std::path::Path) -> Option<FileKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "text" => FileKind::Doc(DocFormat::Text),
        "md" | "markdown" => FileKind::Doc(DocFormat::Markdown),
        "html" | "htm" => FileKind::Doc(DocFormat::Html),
        "pdf" => FileKind::Doc(DocFormat::Pdf),
        "docx" => FileKind::Doc(DocFormat::Docx),
        "jsonl" => FileKind::Jsonl,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Doc(DocFormat),
    Jsonl,
}

/// Extracts a document of a text `format`; `fallback_title` (the file stem) is used when the
/// content names no title. PDF and Word text (already extracted from their files) is taken as it
/// is.
pub fn extract(format: DocFormat, raw: &str, fallback_title: &str) -> Extracted {
    match format {
        DocFormat::Markdown => markdown(raw, fallback_title),
        DocFormat::Html => {
            let (title, text) = super::html::html(raw, fallback_title);
            Extracted {
                title,
                text,
                metadata: Default::default(),
                warning: None,
            }
        }
        DocFormat::Text | DocFormat::Record | DocFormat::Pdf | DocFormat::Docx => Extracted {
            title: fallback_title.to_owned(),
            text: raw.to_owned(),
            metadata: Default::default(),
            warning: None,
        },
    }
}

/// Decodes the bytes of a text file (lossily: U+FFFD replaces invalid UTF-8; a byte-order mark
/// is dropped) and extracts it as [`extract`] does; the flag says whether the bytes were not
/// valid UTF-8.
pub(crate) fn extract_bytes(
    format: DocFormat,
    bytes: Vec<u8>,
    fallback_title: &str,
) -> (Extracted, bool) {
    let (raw, lossy) = match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    let raw = raw.strip_prefix('\u{feff}').unwrap_or(&raw);
    (extract(format, raw, fallback_title), lossy)
}

/// Splits off YAML front matter (`---` … `---` at the very start) and returns `(front, body)`.
fn front_matter(raw: &str) -> (Option<&str>, &str) {
    let Some(rest) = raw
        .strip_prefix("---\n")
        .or_else(|| raw.strip_prefix("---\r\n"))
    else {
        return (None, raw);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" || line.trim_end() == "..." {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, raw)
}

fn markdown(raw: &str, fallback_title: &str) -> Extracted {
    let (front, body) = front_matter(raw);
    let (mut metadata, warning) = match front.map(front_metadata) {
        None => (serde_json::Map::new(), None),
        Some(Ok(m)) => (m, None),
        Some(Err(why)) => (serde_json::Map::new(), Some(why)),
    };
    let from_front = match metadata.remove("title") {
        Some(serde_json::Value::String(t)) if !t.trim().is_empty() => Some(t.trim().to_owned()),
        // front matter that is not YAML: its `title:` line still names the document
        _ if warning.is_some() => front.and_then(title_line),
        _ => None,
    };
    let title = from_front
        .or_else(|| first_heading(body))
        .unwrap_or_else(|| fallback_title.to_owned());
    Extracted {
        title,
        text: body.to_owned(),
        metadata,
        warning,
    }
}

/// The YAML front matter as a metadata object (its `title` included), checked as every
/// document's metadata is ([`quarry_core::filter::check_metadata`]). YAML is read with
/// `serde_norway` (a maintained fork of `serde_yaml`): dates stay strings (`2024-05-01`), which
/// quarry reads as dates.
fn front_metadata(front: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if front.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    let value: serde_json::Value = serde_norway::from_str(front).map_err(|e| {
        format!("the front matter is not valid YAML ({e}); it was not read as metadata")
    })?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(
            "the front matter is not a YAML mapping of keys to values; it was not read as metadata"
                .into(),
        );
    };
    let title = map.remove("title");
    quarry_core::filter::check_metadata(&map)
        .map_err(|e| format!("front matter: {e}; it was not read as metadata"))?;
    if let Some(t) = title {
        map.insert("title".into(), t);
    }
    Ok(map)
}

/// The value of a `title:` line.
fn title_line(front: &str) -> Option<String> {
    front.lines().find_map(|l| {
        let v = l
            .strip_prefix("title:")?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .trim();
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// The first ATX heading (`# Title`) outside fenced code blocks.
fn first_heading(body: &str) -> Option<String> {
    quarry_core::markdown::atx_headings(body)
        .find(|(_, _, h)| !h.is_empty())
        .map(|(_, _, h)| h.to_owned())
}

/// A BEIR corpus record (`{"_id", "title", "text"}` plus optional `acl` and `metadata`); `id` is
/// accepted for `_id`. Other keys are ignored.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct Record {
    /// A non-empty string or a number (`id` is accepted for `_id`).
    #[serde(alias = "id", rename = "_id", deserialize_with = "id_string")]
    #[schema(schema_with = id_schema)]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub acl: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// `_id` as the OpenAPI document states it: what [`id_string`] accepts.
fn id_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("\\S")),
        )
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .build()
        .into()
}

/// Ids may be strings or integers in the wild; both become strings.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(D::Error::custom(format!(
            "`_id` must be a non-empty string or a number, not {other}"
        ))),
    }
}

/// Builds the document of a record (JSONL line or API call), or `None` when it has no text. `acl`
/// is the record's effective ACL.
pub fn record_document(
    rec: Record,
    source: &str,
    content_hash: ContentHash,
    acl: Vec<String>,
) -> Option<Document> {
    let text = if rec.text.trim().is_empty() {
        rec.title.clone()
    } else {
        rec.text
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(Document {
        doc_id: rec.id,
        title: rec.title,
        text,
        source: source.to_owned(),
        format: DocFormat::Record,
        metadata: rec.metadata,
        acl,
        content_hash,
    })
}

use serde::Deserialize as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_title_from_front_matter_then_heading() {
        let e = extract(
            DocFormat::Markdown,
            "---\ntitle: \"Hello\"\ntags: x\n---\n# Other\nbody\n",
            "f",
        );
        assert_eq!(e.title, "Hello");
        assert_eq!(e.text, "# Other\nbody\n");
        let e = extract(
            DocFormat::Markdown,
            "```\n# not me\n```\n\n## Real title ##\ntext",
            "f",
        );
        assert_eq!(e.title, "Real title");
        assert_eq!(
            extract(DocFormat::Markdown, "no heading", "stem").title,
            "stem"
        );
    }

    #[test]
    fn front_matter_is_metadata() {
        let e = extract(
            DocFormat::Markdown,
            "---\ntitle: Guide\ntags: [ops, wal]\ndate: 2024-05-01\ndraft: false\nauthor:\n  name: Ada\n---\nbody\n",
            "f",
        );
        assert_eq!(e.title, "Guide");
        assert_eq!(e.warning, None);
        assert_eq!(
            serde_json::Value::Object(e.metadata),
            serde_json::json!({"tags": ["ops", "wal"], "date": "2024-05-01", "draft": false, "author": {"name": "Ada"}})
        );
        // not YAML: the document is kept, with its title line, and a warning says why
        let e = extract(
            DocFormat::Markdown,
            "---\ntitle: Kept\nbad: [unclosed\n---\nbody\n",
            "f",
        );
        assert_eq!((e.title.as_str(), e.text.as_str()), ("Kept", "body\n"));
        assert!(e.metadata.is_empty());
        assert!(
            e.warning
                .as_deref()
                .is_some_and(|w| w.contains("not valid YAML")),
            "{e:?}"
        );
        // a key named like a built-in field: refused as metadata, with the reason
        let e = extract(
            DocFormat::Markdown,
            "---\nsource: elsewhere\n---\nbody\n",
            "f",
        );
        assert!(e.metadata.is_empty());
        assert!(
            e.warning.as_deref().is_some_and(|w| w.contains("`source`")),
            "{e:?}"
        );
        // hostile YAML (an alias bomb): refused quickly, the document kept
        let mut bomb = String::from("---\na: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_owned()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        bomb.push_str("---\nbody\n");
        let started = std::time::Instant::now();
        let e = extract(DocFormat::Markdown, &bomb, "f");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(e.text, "body\n");
        assert!(
            e.metadata.is_empty() && e.warning.is_some(),
            "{:?}",
            e.warning
        );
        // a list is not a mapping
        let e = extract(DocFormat::Markdown, "---\n- a\n- b\n---\nbody\n", "f");
        assert!(
            e.warning.as_deref().is_some_and(|w| w.contains("mapping")),
            "{e:?}"
        );
    }

    #[test]
    fn records_parse_beir_lines() {
        let r: Record =
            serde_json::from_str(r#"{"_id": 42, "title": "T", "text": "x", "extra": 1}"#).unwrap();
        assert_eq!((r.id.as_str(), r.title.as_str()), ("42", "T"));
        assert!(serde_json::from_str::<Record>(r#"{"title": "T"}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"_id": "", "text": "x"}"#).is_err());
    }
}
