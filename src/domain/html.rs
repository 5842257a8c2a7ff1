//! The two ways summary HTML is made safe: allowlist sanitising for the fields the frontend
//! injects as HTML, and plain text for the page header. Both use ammonia (html5ever), built once.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

/// Tags whose content is dropped along with the tag: code, styles and embedded documents.
const DROP_WITH_CONTENT: [&str; 13] = [
    "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math", "textarea",
    "title", "select", "xmp",
];

const ALLOWED_TAGS: [&str; 25] = [
    "a", "b", "strong", "i", "em", "u", "br", "p", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "div", "span", "table", "thead", "tbody", "tr", "th", "td",
];

/// Block elements that separate words in the page header; `div` is handled apart (newline).
const HEADER_BLOCKS: [&str; 27] = [
    "p",
    "br",
    "hr",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
];

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut b = Builder::default();
    b.tags(HashSet::from(ALLOWED_TAGS))
        .clean_content_tags(HashSet::from(DROP_WITH_CONTENT))
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        // Relative links would resolve against VA.gov itself; the allowlist names schemes only.
        .url_relative(UrlRelative::Deny)
        .link_rel(None)
        .strip_comments(true);
    b
});

static HEADER_CLEANER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut tags: HashSet<&str> = HashSet::from(HEADER_BLOCKS);
    tags.insert("div");
    let mut b = Builder::default();
    b.tags(tags)
        .clean_content_tags(HashSet::from(DROP_WITH_CONTENT))
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::new())
        .link_rel(None)
        .strip_comments(true);
    b
});

/// How deep tags may nest before html5ever sees them. Real summaries nest a few levels; what
/// html5ever costs grows with the square of the depth (100,000 nested `<div>`s, 500 KB, took
/// 20 s on a worker, #36), so tags past this depth are dropped, their text kept.
pub const MAX_NESTING: usize = 64;

/// Elements that never hold content, so never nest.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr",
];

/// `html` with every tag that would open deeper than [`MAX_NESTING`] removed, and its closing
/// tag with it; the text between is kept. A rough reading of tags (enough to bound the depth
/// the sanitiser then builds; the sanitiser, not this, decides what is safe): a `<` that opens
/// no tag, a comment or a declaration is passed on as it is.
pub fn bounded_nesting(html: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr_iter(b'<', html.as_bytes())
        .nth(MAX_NESTING)
        .is_none()
    {
        return std::borrow::Cow::Borrowed(html); // too few tags to nest that deep
    }
    let mut out = String::with_capacity(html.len());
    let (mut depth, mut dropped) = (0usize, 0usize);
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find('>') else {
            out.push_str(tail);
            return std::borrow::Cow::Owned(out);
        };
        let (tag, inner) = (&tail[..=end], &tail[1..end]);
        rest = &tail[end + 1..];
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let closing = inner.starts_with('/');
        if name.is_empty() || inner.ends_with('/') || VOID.contains(&name.as_str()) {
            out.push_str(tag); // a comment, a declaration, a stray `<`, or nothing that nests
        } else if closing && dropped > 0 {
            dropped -= 1;
        } else if closing {
            depth = depth.saturating_sub(1);
            out.push_str(tag);
        } else if depth >= MAX_NESTING {
            dropped += 1;
        } else {
            depth += 1;
            out.push_str(tag);
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Allowlist sanitising for `patientInstructions` and `moreHelpAndInformation`, nesting
/// bounded first.
pub fn sanitize(html: &str) -> String {
    SANITIZER.clean(&bounded_nesting(html)).to_string()
}

/// One piece of sanitised HTML, in document order.
#[derive(Debug, PartialEq, Eq)]
pub enum HtmlToken {
    /// An allowed tag opened, with its `href` (only `a` keeps one).
    Open(String, Option<String>),
    Close(String),
    /// Text, entities decoded.
    Text(String),
}

/// Entities as html5ever's serializer writes them, decoded (`&amp;` last).
fn unescape(text: &str) -> String {
    text.replace("&nbsp;", "\u{a0}")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// A sanitised HTML field (what [`sanitize`] made of it, as the stored summary holds it) as
/// tokens, for the documents that typeset it: read as it is, not sanitised again (that was a
/// second html5ever pass per document, #36). The sanitiser's output is well-formed and narrow
/// (allowlisted tags, no attribute but `a`'s `href`, text escaped by html5ever's serializer),
/// which is all this reads; ammonia keeps its tree API unstable.
pub fn sanitized_tokens(clean: &str) -> Vec<HtmlToken> {
    let mut tokens = Vec::new();
    let mut rest = clean;
    while !rest.is_empty() {
        match rest.find('<') {
            Some(0) => {
                let Some(end) = rest.find('>') else { break };
                let tag = &rest[1..end];
                rest = &rest[end + 1..];
                if let Some(name) = tag.strip_prefix('/') {
                    tokens.push(HtmlToken::Close(name.trim().to_ascii_lowercase()));
                    continue;
                }
                let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
                let href = attributes
                    .trim()
                    .strip_prefix("href=\"")
                    .and_then(|v| v.split('"').next())
                    .map(unescape);
                tokens.push(HtmlToken::Open(
                    name.trim_end_matches('/').to_ascii_lowercase(),
                    href,
                ));
            }
            Some(at) => {
                tokens.push(HtmlToken::Text(unescape(&rest[..at])));
                rest = &rest[at..];
            }
            None => {
                tokens.push(HtmlToken::Text(unescape(rest)));
                break;
            }
        }
    }
    tokens
}

/// `pageHeader` as text: tags removed, each `div` ends with a newline, other block elements
/// become a space, entities decoded, the result trimmed. Plain text, not HTML: VA.gov's page
/// prints it as text (React escapes it), so an escaped `&amp;` showed literally (#27).
///
/// ammonia first reduces the input to well-formed markup made only of attribute-less block
/// tags (scripts and styles dropped with their content, text escaped by html5ever's
/// serializer), so the tags left can be replaced as plain strings.
pub fn page_header_text(html: &str) -> String {
    let cleaned = HEADER_CLEANER.clean(&bounded_nesting(html)).to_string();
    let mut text = cleaned.replace("<div>", "").replace("</div>", "\n");
    for tag in HEADER_BLOCKS {
        text = text
            .replace(&format!("<{tag}>"), " ")
            .replace(&format!("</{tag}>"), " ");
    }
    // `&amp;` decoded last, so an escaped entity's text (`&amp;lt;`) comes back as typed.
    let text = unescape(&text);
    text.trim_matches(|c: char| c.is_ascii_whitespace()).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_drops_scripts_events_and_javascript_links_keeps_formatting() {
        let out = sanitize(
            r#"<p onclick="x()">Take <b>one</b><br>daily</p><script>alert(1)</script>
               <ul><li>a</li></ul><img src=x onerror="alert(2)"><a href="javascript:alert(3)">j</a>
               <a href="https://www.va.gov/">va</a><a href="mailto:x@example.com">m</a>
               <a href="/relative">r</a><style>p{}</style><iframe src="https://e.example"></iframe>"#,
        );
        for gone in [
            "script",
            "alert",
            "onclick",
            "onerror",
            "javascript",
            "<img",
            "style",
            "iframe",
            "/relative",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        for kept in [
            "<p>",
            "<b>one</b>",
            "<br>",
            "<ul><li>a</li></ul>",
            r#"<a href="https://www.va.gov/">va</a>"#,
            r#"<a href="mailto:x@example.com">m</a>"#,
        ] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
    }

    #[test]
    fn page_header_divs_become_lines() {
        let html = "<div>After Visit Summary</div><div>Patient,Test</div><div>VEHU DIVISION</div>";
        assert_eq!(
            page_header_text(html),
            "After Visit Summary\nPatient,Test\nVEHU DIVISION"
        );
    }

    #[test]
    fn page_header_blocks_space_entities_decoded_scripts_gone() {
        let html = "<p>A</p><p>B &amp; C &lt;x&gt; &eacute;</p><script>evil()</script><span>s</span>";
        assert_eq!(page_header_text(html), "A  B & C <x> é s");
        assert_eq!(
            page_header_text("Ward &amp; Clinic &amp;lt;"),
            "Ward & Clinic &lt;"
        );
        assert_eq!(page_header_text("  <b>x</b>&nbsp;y "), "x\u{a0}y");
    }

    #[test]
    fn nesting_past_the_bound_is_dropped_and_its_text_kept() {
        let deep = format!("{}x{}", "<div>".repeat(100_000), "</div>".repeat(100_000));
        let started = std::time::Instant::now();
        let clean = sanitize(&deep);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(clean.matches("<div>").count(), MAX_NESTING);
        assert!(clean.contains('x'));
        // Within the bound, nothing changes; void tags, comments and a stray `<` never nest.
        let shallow = "<p>a <b>b</b><br>c &lt; d</p>";
        assert_eq!(bounded_nesting(shallow), shallow);
        let voids = format!("{}<p>t</p>", "<br><!-- c --><img src=x/>< ".repeat(200));
        assert_eq!(bounded_nesting(&voids), voids);
        // Deep siblings are not deep: closed tags give their depth back.
        let siblings = "<p>x</p>".repeat(500);
        assert_eq!(bounded_nesting(&siblings), siblings);
        let header = format!("{}Ward{}", "<div>".repeat(50_000), "</div>".repeat(50_000));
        assert!(page_header_text(&header).starts_with("Ward"));
    }

    #[test]
    fn sanitized_tokens_are_tags_links_and_decoded_text() {
        assert_eq!(
            sanitized_tokens(&sanitize(
                r#"<p onclick="x">A &amp; B<br><a href="https://va.gov/?a=1&amp;b=2">va</a></p><script>no</script>"#
            )),
            [
                HtmlToken::Open("p".into(), None),
                HtmlToken::Text("A & B".into()),
                HtmlToken::Open("br".into(), None),
                HtmlToken::Open("a".into(), Some("https://va.gov/?a=1&b=2".into())),
                HtmlToken::Text("va".into()),
                HtmlToken::Close("a".into()),
                HtmlToken::Close("p".into()),
            ]
        );
    }
}
