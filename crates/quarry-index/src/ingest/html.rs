//! HTML: the visible text of a page without its boilerplate, and its `<title>`, with `scraper`
//! (html5ever's parser, so any tag soup parses as a browser would).
//!
//! What is read:
//!
//! * the page's `<main>` (or the elements with `role="main"`) when it has one; else its
//!   top-level `<article>`s, in order; else its `<body>`, the whole page. A chosen part without
//!   text falls back to the body;
//! * never: `nav`, `aside`, elements with the ARIA roles `navigation`, `banner`, `contentinfo`,
//!   `complementary` or `search`, hidden elements (`hidden`, `aria-hidden="true"`), and what is
//!   never visible (`script`, `style`, `template`, …);
//! * `header` and `footer` are dropped when they are the page's banner and footer, that is, as
//!   ARIA maps them, when they are not inside an `article`, `aside`, `main`, `nav` or `section`:
//!   an article's own header (its headline and byline) is content and kept.
//!
//! Block elements end a line; runs of whitespace become one space.

use scraper::{ElementRef, Html, Node, Selector};

/// Elements whose content is never visible text.
const INVISIBLE: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "iframe", "object",
];
/// Elements that are boilerplate wherever they are.
const BOILERPLATE: &[&str] = &["nav", "aside"];
/// ARIA roles of boilerplate.
const BOILERPLATE_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
];
/// Elements inside which `header` and `footer` are no longer the page's banner and footer.
const SECTIONING: &[&str] = &["article", "aside", "main", "nav", "section"];
/// Elements that end a line of text.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "blockquote",
    "pre",
    "hr",
    "dt",
    "dd",
    "figcaption",
    "main",
];

/// The title (`<title>`, else `fallback_title`) and the main text of a page.
pub(crate) fn html(raw: &str, fallback_title: &str) -> (String, String) {
    let doc = Html::parse_document(raw);
    let title = doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "title")
        .map(|e| collapse(&e.text().collect::<String>()))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| fallback_title.to_owned());
    let parts = content_roots(&doc);
    let mut text = lines(&parts);
    if text.is_empty() && !parts.is_empty() {
        text = lines(&[doc.root_element()]);
    }
    (title, text)
}

/// The parts of the page to read: its main content, else its top-level articles, else all of it.
fn content_roots(doc: &Html) -> Vec<ElementRef<'_>> {
    let main = Selector::parse(r#"main, [role="main"]"#).expect("a valid selector");
    let roots = outermost(doc.select(&main));
    if !roots.is_empty() {
        return roots;
    }
    let article = Selector::parse("article").expect("a valid selector");
    let roots = outermost(doc.select(&article));
    if !roots.is_empty() {
        return roots;
    }
    vec![doc.root_element()]
}

/// The elements of `found` that lie inside none of the others (in document order), and are not
/// themselves dropped boilerplate.
fn outermost<'a>(found: impl Iterator<Item = ElementRef<'a>>) -> Vec<ElementRef<'a>> {
    let found: Vec<ElementRef<'a>> = found.collect();
    found
        .iter()
        .filter(|e| {
            !e.ancestors()
                .filter_map(ElementRef::wrap)
                .any(|a| found.contains(&a) || dropped(a, false))
        })
        .copied()
        .collect()
}

/// The visible text of `roots`, one block a line, without empty lines.
fn lines(roots: &[ElementRef<'_>]) -> String {
    let mut out = String::new();
    for root in roots {
        let sectioning = SECTIONING.contains(&root.value().name());
        out.push('\n');
        visible_text(*root, sectioning, &mut out);
        out.push('\n');
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `el` is left out with its content; `sectioning` says whether it lies inside a
/// sectioning element (where `header` and `footer` belong to that section).
fn dropped(el: ElementRef<'_>, sectioning: bool) -> bool {
    let e = el.value();
    let name = e.name();
    INVISIBLE.contains(&name)
        || BOILERPLATE.contains(&name)
        || (!sectioning && matches!(name, "header" | "footer"))
        || e.attr("role").is_some_and(|r| {
            r.split_ascii_whitespace()
                .any(|r| BOILERPLATE_ROLES.contains(&r.to_ascii_lowercase().as_str()))
        })
        || e.attr("hidden").is_some()
        || e.attr("aria-hidden")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn visible_text(el: ElementRef<'_>, sectioning: bool, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => {
                let s = collapse(t);
                if !s.is_empty() {
                    if !out.is_empty() && !out.ends_with(['\n', ' ']) {
                        out.push(' ');
                    }
                    out.push_str(&s);
                }
            }
            Node::Element(e) => {
                let Some(child_el) = ElementRef::wrap(child) else {
                    continue;
                };
                if dropped(child_el, sectioning) {
                    continue;
                }
                let block = BLOCK.contains(&e.name());
                if block {
                    out.push('\n');
                }
                let inside = sectioning || SECTIONING.contains(&e.name());
                visible_text(child_el, inside, out);
                if block {
                    out.push('\n');
                }
            }
            _ => {}
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
    fn keeps_visible_text_only() {
        let raw = "<html><head><title> The  Title </title><style>p{}</style></head><body><h1>Head</h1>\
                   <script>var secret = 1;</script><p>First <b>bold</b> para.</p><div>Second</div></body></html>";
        assert_eq!(
            html(raw, "f"),
            (
                "The Title".to_owned(),
                "Head\nFirst bold para.\nSecond".to_owned()
            )
        );
        assert_eq!(html("<p>x</p>", "stem").0, "stem");
    }

    #[test]
    fn drops_boilerplate_without_a_main() {
        let raw = r#"<body><header>Site banner</header><nav>Home | Blog</nav>
            <div role="navigation">Breadcrumbs</div><div role="banner">Ad strip</div>
            <section><header>Section head</header><p>Body text.</p><footer>Section foot</footer></section>
            <aside>Related links</aside><div hidden>Hidden</div><span aria-hidden="true">Icon</span>
            <div role="contentinfo">Legal</div><footer>Copyright</footer></body>"#;
        assert_eq!(html(raw, "f").1, "Section head\nBody text.\nSection foot");
    }

    #[test]
    fn prefers_main_then_articles() {
        let raw = "<body><div>Teaser</div><main><h1>Main</h1><nav>In-page nav</nav><p>Text</p></main></body>";
        assert_eq!(html(raw, "f").1, "Main\nText");
        let raw = "<body><div>Teaser</div><article><header><h1>One</h1></header><p>A</p>\
                   <article>Comment</article></article><article><p>B</p></article></body>";
        assert_eq!(html(raw, "f").1, "One\nA\nComment\nB");
        // an empty main falls back to the whole page
        assert_eq!(html("<body><main> </main><p>All</p></body>", "f").1, "All");
    }
}
