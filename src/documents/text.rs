//! The summary as plain text: the model's strings in its order, UTF-8, headings underlined
//! (`=` the title, `-` a section, `~` a group), lists with "- ", tables as aligned columns,
//! wrapped at 80 columns.

use super::{Block, Span, SummaryDocument};

const WIDTH: usize = 80;
/// Between two table columns.
const GUTTER: &str = "  ";

/// The whole text, ending with a newline.
pub fn render_text(doc: &SummaryDocument) -> String {
    let mut out = String::new();
    heading(&mut out, &doc.full_title(), '=');
    for line in &doc.header {
        wrapped(&mut out, line, "", "");
    }
    if let Some(generated) = &doc.generated {
        wrapped(&mut out, generated, "", "");
    }
    for section in &doc.sections {
        out.push('\n');
        heading(&mut out, &section.heading, '-');
        for group in &section.groups {
            if let Some(h) = &group.heading {
                out.push('\n');
                heading(&mut out, h, '~');
            }
            for block in &group.blocks {
                self::block(&mut out, block);
            }
        }
    }
    // No control character reaches a terminal (a CR overwrote a line, an ESC began a
    // sequence, #36); every other character is kept as it is.
    out.retain(|c| c == '\n' || !c.is_control());
    out
}

/// Wrapping at white space only: never inside a word, and never after a hyphen (a phone number
/// `1-877-…` broken there would read as two numbers).
fn options(width: usize) -> textwrap::Options<'static> {
    textwrap::Options::new(width).word_splitter(textwrap::WordSplitter::NoHyphenation)
}

fn heading(out: &mut String, text: &str, underline: char) {
    let lines = textwrap::wrap(text, options(WIDTH));
    let longest = lines
        .iter()
        .map(|l| textwrap::core::display_width(l))
        .max()
        .unwrap_or(0);
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.extend(std::iter::repeat_n(underline, longest));
    out.push('\n');
}

/// What a run of spans reads as: a link's address after its words.
fn spans_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match &s.link {
            Some(href) if href != s.text.trim() => format!("{} ({href})", s.text),
            _ => s.text.clone(),
        })
        .collect()
}

fn wrapped(out: &mut String, text: &str, first: &str, rest: &str) {
    let options = options(WIDTH).initial_indent(first).subsequent_indent(rest);
    for line in textwrap::wrap(text, options) {
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn block(out: &mut String, block: &Block) {
    match block {
        Block::Para { spans } => wrapped(out, &spans_text(spans), "", ""),
        Block::Label { text } => {
            out.push('\n');
            wrapped(out, &format!("{text}:"), "", "");
        }
        Block::List { items } => {
            for item in items {
                wrapped(out, &spans_text(item), "- ", "  ");
            }
        }
        Block::Lines { lines } => {
            for line in lines {
                wrapped(out, line, "", "  ");
            }
        }
        Block::Table { caption, head, rows } => {
            out.push('\n');
            for line in caption {
                wrapped(out, line, "", "");
            }
            table(out, head, rows);
        }
    }
}

/// Aligned columns, each as wide as its widest cell, the last one wrapping within what is
/// left of 80 columns. A table too wide for that is written one record per row instead
/// ("Test: HGB" lines): columns whose cells wrap side by side would interleave the words of
/// different cells, which no reader (or screen reader) can follow.
fn table(out: &mut String, head: &[String], rows: &[Vec<String>]) {
    let Some(last) = head.len().checked_sub(1) else {
        return;
    };
    let cell = |row: &[String], c: usize| row.get(c).cloned().unwrap_or_default();
    let width = |c: usize| {
        std::iter::once(head)
            .chain(rows.iter().map(Vec::as_slice))
            .map(|r| textwrap::core::display_width(&cell(r, c)))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..last).map(width).collect();
    let indent = widths.iter().sum::<usize>() + GUTTER.len() * last;
    let room = WIDTH.saturating_sub(indent);
    if room < 16.min(width(last)).max(8) {
        for row in rows {
            out.push('\n');
            for (c, name) in head.iter().enumerate() {
                wrapped(out, &format!("{name}: {}", cell(row, c)), "", "  ");
            }
        }
        return;
    }
    let mut line = |row: &[String]| {
        let mut text = String::new();
        for (c, w) in widths.iter().enumerate() {
            let part = cell(row, c);
            text.push_str(&part);
            text.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(textwrap::core::display_width(&part)),
            ));
            text.push_str(GUTTER);
        }
        let last_cell = cell(row, last);
        let lines = textwrap::wrap(&last_cell, options(room.max(1)));
        let mut lines = lines.iter();
        text.push_str(lines.next().map(|l| l.as_ref()).unwrap_or(""));
        out.push_str(text.trim_end());
        out.push('\n');
        for more in lines {
            out.extend(std::iter::repeat_n(' ', indent));
            out.push_str(more.trim_end());
            out.push('\n');
        }
    };
    line(head);
    let rule: Vec<String> = (0..=last)
        .map(|c| {
            "-".repeat(if c < last {
                widths[c]
            } else {
                width(last).min(room)
            })
        })
        .collect();
    line(&rule);
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{Group, Section};

    #[test]
    fn headings_lists_and_tables_within_80_columns() {
        let doc = SummaryDocument {
            title: "After-visit summary".to_owned(),
            visit_date: Some("January 1, 2023".to_owned()),
            header: vec!["VEHU DIVISION".to_owned()],
            sections: vec![Section {
                heading: "Your health information".to_owned(),
                groups: vec![Group {
                    heading: Some("Lab results".to_owned()),
                    blocks: vec![
                        Block::list(["a".repeat(100)]).unwrap(),
                        Block::Table {
                            caption: vec!["Specimen: BLOOD".to_owned()],
                            head: vec!["Test".to_owned(), "Result".to_owned()],
                            rows: vec![vec!["HGB".to_owned(), "17.0 ".repeat(30)]],
                        },
                    ],
                }],
            }],
            ..SummaryDocument::default()
        };
        let text = render_text(&doc);
        assert!(
            text.starts_with("After-visit summary, January 1, 2023\n====="),
            "{text}"
        );
        assert!(text.contains("Your health information\n-----------------------\n"));
        assert!(text.contains("Lab results\n~~~~~~~~~~~\n- aaaa"));
        assert!(text.contains("Test  Result"), "{text}");
        // Too wide for columns: one record per row.
        let wide = vec!["x".repeat(30); 4];
        let mut out = String::new();
        table(
            &mut out,
            &["A".into(), "B".into(), "C".into(), "D".into()],
            &[wide],
        );
        assert!(out.contains("\nA: xxxx") && out.contains("\nD: xxxx"), "{out}");
        assert!(
            text.lines().all(|l| textwrap::core::display_width(l) <= 80),
            "{text}"
        );
    }
}
