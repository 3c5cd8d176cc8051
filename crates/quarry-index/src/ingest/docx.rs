//! Word documents (`.docx`, Office Open XML): the paragraphs of `word/document.xml`, read from
//! the zip package with the `zip` crate and as XML with `quick-xml` (a streaming reader, so a
//! large document is not held as a tree; it expands no entities but the five predefined and
//! character references).
//!
//! A paragraph whose style is a heading (its name in `word/styles.xml` is `heading N`, its id
//! `HeadingN`, or it carries an outline level) is written as a Markdown ATX heading of that level
//! (`#` for Heading 1, …), every other paragraph as a line of text, with a blank line between
//! paragraphs: the chunker then splits it like Markdown and gives each chunk its heading path,
//! exactly as for a `.md` file. A text line that Markdown would read as a heading or a code fence
//! (`# …`, three backticks) is escaped with a backslash. The first paragraph styled `Title`, else
//! the first heading, is the document's title.
//!
//! Not read: headers, footers, footnotes, comments, text boxes' fallback copies
//! (`mc:Fallback`), and style inheritance (`basedOn`). Skipped files and their reasons:
//! `encrypted` (a password-protected document is an OLE compound file, not a zip), and
//! `malformed_docx` (not a zip, no `word/document.xml`, XML that does not parse, or a part
//! that inflates past [`MAX_PART_BYTES`]).

use super::guarded::Unreadable;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use std::collections::HashMap;
use std::io::Read;

/// Largest inflated XML part read; a bigger one (a zip bomb, or a document of a different
/// order than quarry expects) makes the file `malformed_docx`.
pub(crate) const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;

/// The magic bytes of an OLE compound file, the container of an encrypted Office document.
const OLE_MAGIC: &[u8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";

/// The text of a Word document, headings in Markdown form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocxText {
    pub title: Option<String>,
    pub text: String,
}

/// Reads the paragraphs of the `.docx` in `bytes`.
pub(crate) fn extract_docx(bytes: &[u8]) -> Result<DocxText, Unreadable> {
    if bytes.starts_with(OLE_MAGIC) {
        return Err(Unreadable::new(
            "encrypted",
            "an OLE compound file, not a zip: a password-protected Word document (or an old \
             .doc renamed); remove the password (or save it as .docx) and ingest it again",
        ));
    }
    let malformed = |m: String| Unreadable::new("malformed_docx", m);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| malformed(format!("not a readable zip package: {e}")))?;
    let document = read_part(&mut zip, "word/document.xml")?
        .ok_or_else(|| malformed("no word/document.xml: not a Word document".into()))?;
    let levels = match read_part(&mut zip, "word/styles.xml")? {
        Some(styles) => heading_styles(&styles).map_err(malformed)?,
        None => HashMap::new(),
    };
    paragraphs(&document, &levels).map_err(malformed)
}

/// The inflated text of a part, `None` when the package has no such part.
fn read_part(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
) -> Result<Option<String>, Unreadable> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) if e.to_string().to_ascii_lowercase().contains("password") => {
            return Err(Unreadable::new(
                "encrypted",
                format!("{name} is encrypted in the zip package; remove the password"),
            ));
        }
        Err(e) => {
            return Err(Unreadable::new(
                "malformed_docx",
                format!("{name} could not be read: {e}"),
            ));
        }
    };
    let mut xml = String::new();
    file.take(MAX_PART_BYTES + 1)
        .read_to_string(&mut xml)
        .map_err(|e| Unreadable::new("malformed_docx", format!("{name} could not be read: {e}")))?;
    if xml.len() as u64 > MAX_PART_BYTES {
        return Err(Unreadable::new(
            "malformed_docx",
            format!("{name} inflates to more than {MAX_PART_BYTES} bytes"),
        ));
    }
    Ok(Some(xml))
}

/// The value of a `w:val` attribute.
fn val(e: &BytesStart<'_>) -> Option<String> {
    e.try_get_attribute("w:val")
        .ok()
        .flatten()
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
        .map(|v| v.into_owned())
}

/// A heading level (1 to 6) of a style name, id or outline level (0-based); `None` otherwise.
fn level_of_name(name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    let digits = lower
        .strip_prefix("heading")
        .map(|r| r.trim_start())?
        .parse::<usize>()
        .ok()?;
    (digits >= 1).then_some(digits.min(6))
}

/// Paragraph style ids of `styles.xml` that are headings, with their levels.
fn heading_styles(xml: &str) -> Result<HashMap<String, usize>, String> {
    let mut reader = Reader::from_str(xml);
    let mut levels = HashMap::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => match e.name().as_ref() {
                "w:style" => {
                    current = e
                        .try_get_attribute("w:styleId")
                        .ok()
                        .flatten()
                        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
                        .map(|v| v.into_owned());
                    if let Some(id) = &current
                        && let Some(l) = level_of_name(id)
                    {
                        levels.insert(id.clone(), l);
                    }
                }
                "w:name" => {
                    if let (Some(id), Some(l)) =
                        (&current, val(&e).as_deref().and_then(level_of_name))
                    {
                        levels.insert(id.clone(), l);
                    }
                }
                "w:outlineLvl" => {
                    if let (Some(id), Some(l)) = (&current, outline_level(&e)) {
                        levels.insert(id.clone(), l);
                    }
                }
                _ => {}
            },
            Ok(Event::End(e)) if e.name().as_ref() == "w:style" => current = None,
            Ok(Event::Eof) => return Ok(levels),
            Err(e) => return Err(format!("word/styles.xml is not well-formed XML: {e}")),
            Ok(_) => {}
        }
    }
}

/// A `w:outlineLvl` (0-based; 9 is body text) as a heading level.
fn outline_level(e: &BytesStart<'_>) -> Option<usize> {
    let l: usize = val(e)?.parse().ok()?;
    (l < 9).then_some((l + 1).min(6))
}

/// One paragraph as it is read.
#[derive(Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    outline: Option<usize>,
}

/// The document's paragraphs as Markdown-like text.
fn paragraphs(xml: &str, levels: &HashMap<String, usize>) -> Result<DocxText, String> {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    let mut title = None;
    let mut first_heading = None;
    let mut para: Option<Paragraph> = None;
    // inside w:t (text) and inside mc:Fallback (a copy of content already read)
    let mut in_text = false;
    let mut fallback = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("word/document.xml is not well-formed XML: {e}"))?;
        match event {
            Event::Start(e) => match e.name().as_ref() {
                "mc:Fallback" => fallback += 1,
                "w:p" if fallback == 0 => para = Some(Paragraph::default()),
                "w:t" => in_text = fallback == 0,
                _ => empty_element(&e, &mut para, fallback),
            },
            Event::Empty(e) => empty_element(&e, &mut para, fallback),
            Event::End(e) => match e.name().as_ref() {
                "mc:Fallback" => fallback = fallback.saturating_sub(1),
                "w:t" => in_text = false,
                "w:p" if fallback == 0 => {
                    if let Some(p) = para.take() {
                        let level = p
                            .style
                            .as_ref()
                            .and_then(|s| levels.get(s).copied())
                            .or(p.outline);
                        let is_title = p.style.as_deref() == Some("Title");
                        push_paragraph(&mut out, &p.text, level, &mut first_heading);
                        if is_title && title.is_none() {
                            title = Some(collapse(&p.text)).filter(|t| !t.is_empty());
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => {
                if let Some(p) = &mut para {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let Some(p) = &mut para {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => p.text.push(c),
                        _ => {
                            let name = r.xml10_content();
                            p.text
                                .push_str(resolve_predefined_entity(&name).unwrap_or(""));
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(DocxText {
        title: title.or(first_heading),
        text: out,
    })
}

/// The empty elements of a paragraph: its style, outline level, tabs and breaks.
fn empty_element(e: &BytesStart<'_>, para: &mut Option<Paragraph>, fallback: usize) {
    let Some(p) = para.as_mut().filter(|_| fallback == 0) else {
        return;
    };
    match e.name().as_ref() {
        "w:pStyle" => p.style = val(e),
        "w:outlineLvl" => p.outline = outline_level(e),
        "w:tab" => p.text.push('\t'),
        "w:br" | "w:cr" => p.text.push('\n'),
        _ => {}
    }
}

/// Appends a paragraph: a heading as `#`s and its text on one line, else its lines escaped.
fn push_paragraph(
    out: &mut String,
    text: &str,
    level: Option<usize>,
    first_heading: &mut Option<String>,
) {
    if text.trim().is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    match level {
        Some(level) => {
            let heading = collapse(text);
            if first_heading.is_none() {
                *first_heading = Some(heading.clone());
            }
            out.push_str(&"#".repeat(level));
            out.push(' ');
            out.push_str(&heading);
        }
        None => {
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let t = line.trim_start();
                if t.starts_with('#') || t.starts_with("```") || t.starts_with("~~~") {
                    out.push('\\');
                }
                out.push_str(line);
            }
        }
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_levels_from_names_ids_and_outline() {
        assert_eq!(level_of_name("heading 2"), Some(2));
        assert_eq!(level_of_name("Heading1"), Some(1));
        assert_eq!(level_of_name("Heading 9"), Some(6));
        assert_eq!(level_of_name("Normal"), None);
        assert_eq!(level_of_name("Heading"), None);
        let levels = heading_styles(
            r#"<w:styles xmlns:w="x"><w:style w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>
               <w:style w:styleId="Custom"><w:name w:val="Mine"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
               <w:style w:styleId="Normal"><w:name w:val="Normal"/></w:style></w:styles>"#,
        )
        .unwrap();
        assert_eq!(levels.get("berschrift2"), Some(&2));
        assert_eq!(levels.get("Custom"), Some(&1));
        assert_eq!(levels.get("Normal"), None);
    }

    #[test]
    fn paragraphs_headings_and_escapes() {
        let levels = HashMap::from([("Heading1".to_owned(), 1)]);
        let xml = r#"<w:document xmlns:w="x" xmlns:mc="m"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>The  title</w:t></w:r></w:p>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Intro</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">a &amp; b &#233;</w:t><w:tab/><w:t>c</w:t><w:br/><w:t># not a heading</w:t></w:r></w:p>
            <w:p><w:pPr><w:outlineLvl w:val="1"/></w:pPr><w:r><w:t>Deeper</w:t></w:r></w:p>
            <w:p><w:r><mc:AlternateContent><mc:Choice><w:t>once</w:t></mc:Choice><mc:Fallback><w:p><w:r><w:t>twice</w:t></w:r></w:p></mc:Fallback></mc:AlternateContent></w:r></w:p>
            <w:p></w:p>
        </w:body></w:document>"#;
        let d = paragraphs(xml, &levels).unwrap();
        assert_eq!(d.title.as_deref(), Some("The title"));
        assert_eq!(
            d.text,
            "The  title\n\n# Intro\n\na & b é\tc\n\\# not a heading\n\n## Deeper\n\nonce"
        );
        assert!(paragraphs("<w:p><w:t>x</w:p>", &levels).is_err());
    }
}
