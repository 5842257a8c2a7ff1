//! The two HTML fields (`patientInstructions`, `moreHelpAndInformation`) as document structure:
//! paragraphs, lists, emphasis and links with their address, from their sanitised tokens; never
//! as markup text.

use super::{Block, Span};
use crate::domain::{HtmlToken, sanitized_tokens};

/// The blocks of an HTML field as the stored summary holds it (sanitised when the summary was
/// rendered, so read as it is); none when it is absent, not a string, or empty.
pub(super) fn blocks_of(html: Option<&str>) -> Vec<Block> {
    let Some(html) = html else { return Vec::new() };
    let mut walker = Walker::default();
    for token in sanitized_tokens(html) {
        walker.token(token);
    }
    walker.end_paragraph();
    walker.blocks
}

#[derive(Clone, Copy, Default)]
struct Style {
    strong: bool,
    emph: bool,
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    spans: Vec<Span>,
    /// The style of each element open now (its tag, and the style inside it).
    open: Vec<(String, Style)>,
    /// The link being read, with its address.
    link: Option<String>,
    /// Inside a list: its items so far (lists nest flat: an inner list's items join the outer).
    list: Option<Vec<Vec<Span>>>,
    depth: usize,
}

impl Walker {
    fn style(&self) -> Style {
        self.open.last().map(|(_, s)| *s).unwrap_or_default()
    }

    fn token(&mut self, token: HtmlToken) {
        match token {
            HtmlToken::Text(text) => {
                let (style, link) = (self.style(), self.link.clone());
                self.text(&text, style, link);
            }
            HtmlToken::Open(name, href) => {
                let mut style = self.style();
                match name.as_str() {
                    "b" | "strong" => style.strong = true,
                    "i" | "em" | "u" => style.emph = true,
                    "a" => self.link = href,
                    "br" => return self.end_paragraph(),
                    "ul" | "ol" => {
                        self.end_paragraph();
                        self.depth += 1;
                        self.list.get_or_insert_with(Vec::new);
                    }
                    "span" | "td" | "th" => {}
                    _ => self.end_paragraph(),
                }
                self.open.push((name, style));
            }
            HtmlToken::Close(name) => {
                if let Some(at) = self.open.iter().rposition(|(n, _)| *n == name) {
                    self.open.truncate(at);
                }
                match name.as_str() {
                    "b" | "strong" | "i" | "em" | "u" | "span" => {}
                    "a" => self.link = None,
                    "td" | "th" => {
                        let style = self.style();
                        self.text(" ", style, None);
                    }
                    "ul" | "ol" => {
                        self.end_paragraph();
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0
                            && let Some(items) = self.list.take()
                            && !items.is_empty()
                        {
                            self.blocks.push(Block::List { items });
                        }
                    }
                    _ => self.end_paragraph(),
                }
            }
        }
    }

    /// Adds text, its white space collapsed as a browser would.
    fn text(&mut self, raw: &str, style: Style, link: Option<String>) {
        let mut collapsed = String::with_capacity(raw.len());
        for word in raw.split_whitespace() {
            if !collapsed.is_empty() {
                collapsed.push(' ');
            }
            collapsed.push_str(word);
        }
        let starts = raw.starts_with(char::is_whitespace);
        let ends = raw.ends_with(char::is_whitespace);
        let follows_text = self.spans.last().is_some_and(|s| !s.text.ends_with(' '));
        let mut text = String::new();
        if starts && follows_text {
            text.push(' ');
        }
        text.push_str(&collapsed);
        if ends && !collapsed.is_empty() {
            text.push(' ');
        }
        if text.trim().is_empty() && (self.spans.is_empty() || text.is_empty()) {
            return;
        }
        self.spans.push(Span {
            text,
            strong: style.strong,
            emph: style.emph,
            link,
        });
    }

    /// Closes the paragraph (or list item) being filled.
    fn end_paragraph(&mut self) {
        let mut spans = std::mem::take(&mut self.spans);
        if let Some(last) = spans.last_mut() {
            last.text.truncate(last.text.trim_end().len());
        }
        spans.retain(|s| !s.text.is_empty());
        if spans.is_empty() {
            return;
        }
        match &mut self.list {
            Some(items) => items.push(spans),
            None => self.blocks.push(Block::Para { spans }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(blocks: &[Block]) -> Vec<String> {
        blocks
            .iter()
            .map(|b| match b {
                Block::Para { spans } => spans.iter().map(|s| s.text.as_str()).collect(),
                Block::List { items } => items
                    .iter()
                    .map(|i| format!("- {}", i.iter().map(|s| s.text.as_str()).collect::<String>()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn paragraphs_lists_emphasis_and_links_never_markup() {
        // As the summary holds the field: sanitised once, when it was rendered.
        let blocks = blocks_of(Some(&crate::domain::sanitize(
            "Take <b>one</b> daily<br>then rest.<ul><li>a &amp; b</li><li><i>c</i></li></ul>\
             <p>See <a href=\"https://www.va.gov/\">VA</a>.</p><script>x()</script>",
        )));
        assert_eq!(
            texts(&blocks),
            ["Take one daily", "then rest.", "- a & b\n- c", "See VA."]
        );
        let Block::Para { spans } = &blocks[0] else {
            panic!()
        };
        assert!(spans.iter().any(|s| s.strong && s.text == "one"));
        let Block::Para { spans } = &blocks[3] else {
            panic!()
        };
        assert!(
            spans
                .iter()
                .any(|s| s.link.as_deref() == Some("https://www.va.gov/"))
        );
        assert!(blocks_of(None).is_empty() && blocks_of(Some("  ")).is_empty());
    }
}
