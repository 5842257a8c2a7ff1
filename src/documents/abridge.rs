//! What one PDF may hold, bounded before typesetting starts (#36).
//!
//! Typst's memory grows with what it lays out, and it has no bound of its own: the ~1 MB
//! fixture took 577 MB and 3 s, 10,000 lab values 935 MB, a 5 MB field up to 4.4 GB, in a pod
//! of 512 MiB where two renders may run at once beside a full cache. So the PDF's model is cut
//! to [`PDF_BOUNDS`] first (rows per table, items per list, characters per field and in all),
//! and a cut PDF says so where it is cut and under its title: the rest is in the text form,
//! which is never cut (it costs a millisecond per 20 KB), and on VA.gov.

use super::{Block, Group, Span, SummaryDocument};

/// Bounds on one PDF's model.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Characters of one string (a paragraph's run, an item, a cell).
    pub field_chars: usize,
    /// Items of one list.
    pub list_items: usize,
    /// Rows of one table.
    pub table_rows: usize,
    /// Characters in all, each string counting [`PER_STRING`] more for its box, tag and
    /// cell (what Typst's memory follows: 10,000 table cells of three characters cost more
    /// than one 30,000-character paragraph); past them, what follows is left out.
    pub total_chars: usize,
}

/// Measured in `bench/README.md` (2026-12-07, `bench/render.rs`): at these bounds the worst
/// case renders in PDF_WORST_MS and peaks at PDF_WORST_MB, so two renders fit beside a full
/// cache in the pod's limit (`deploy/k8s/deployment.yaml`).
pub const PDF_BOUNDS: Bounds = Bounds {
    field_chars: 20_000,
    list_items: 500,
    table_rows: 500,
    total_chars: 250_000,
};

/// What one string costs beyond its characters.
pub const PER_STRING: usize = 30;

/// Under the title of a PDF that was cut.
pub const NOTICE: &str = "This PDF is shortened: this summary is longer than a PDF can hold. \
    The complete summary is in its text version and on VA.gov.";
/// Where a string was cut.
const FIELD_CUT: &str = " … (shortened: the rest is in the text version and on VA.gov)";

impl SummaryDocument {
    /// Cuts the model to `bounds`; whether anything was cut (then [`NOTICE`] is its notice).
    pub fn abridge(&mut self, bounds: Bounds) -> bool {
        let mut budget = Budget {
            bounds,
            left: bounds.total_chars,
            cut: false,
        };
        for line in &mut self.header {
            budget.field(line);
        }
        let mut sections = std::mem::take(&mut self.sections).into_iter();
        for mut section in sections.by_ref() {
            let full = budget.spent_all();
            section.groups = budget.groups(std::mem::take(&mut section.groups));
            if !section.groups.is_empty() || !full {
                self.sections.push(section);
            }
            if budget.spent_all() {
                break;
            }
        }
        if sections.next().is_some() {
            budget.cut = true;
        }
        if budget.cut {
            self.notice = Some(NOTICE.to_owned());
        }
        budget.cut
    }
}

struct Budget {
    bounds: Bounds,
    left: usize,
    cut: bool,
}

impl Budget {
    fn spent_all(&self) -> bool {
        self.left == 0
    }

    /// Cuts one string to the field bound and what is left of the total.
    fn field(&mut self, text: &mut String) {
        let limit = self.bounds.field_chars.min(self.left);
        match text.char_indices().nth(limit) {
            Some((at, _)) => {
                text.truncate(at);
                text.push_str(FIELD_CUT);
                self.cut = true;
                self.left = self.left.saturating_sub(limit + PER_STRING);
            }
            None => self.left = self.left.saturating_sub(text.chars().count() + PER_STRING),
        }
    }

    fn spans(&mut self, spans: &mut [Span]) {
        for span in spans {
            self.field(&mut span.text);
        }
    }

    fn groups(&mut self, groups: Vec<Group>) -> Vec<Group> {
        let mut kept = Vec::new();
        for mut group in groups {
            if self.spent_all() {
                self.cut = true;
                break;
            }
            let mut blocks = Vec::new();
            for block in std::mem::take(&mut group.blocks) {
                if self.spent_all() {
                    self.cut = true;
                    break;
                }
                blocks.extend(self.block(block));
            }
            if !blocks.is_empty() {
                group.blocks = blocks;
                kept.push(group);
            }
        }
        kept
    }

    /// The block cut to the bounds, and a line saying how much was left out when it was.
    fn block(&mut self, block: Block) -> Vec<Block> {
        match block {
            Block::Para { mut spans } => {
                self.spans(&mut spans);
                vec![Block::Para { spans }]
            }
            Block::Label { mut text } => {
                self.field(&mut text);
                vec![Block::Label { text }]
            }
            Block::Lines { mut lines } => {
                lines.iter_mut().for_each(|l| self.field(l));
                vec![Block::Lines { lines }]
            }
            Block::List { items } => {
                let total = items.len();
                let mut kept = Vec::new();
                for mut item in items.into_iter().take(self.bounds.list_items) {
                    if self.spent_all() {
                        break;
                    }
                    self.spans(&mut item);
                    kept.push(item);
                }
                let shown = kept.len();
                let mut out = vec![Block::List { items: kept }];
                out.extend(self.left_out(shown, total, "items"));
                out
            }
            Block::Table {
                mut caption,
                head,
                rows,
            } => {
                caption.iter_mut().for_each(|c| self.field(c));
                let total = rows.len();
                let mut kept = Vec::new();
                for mut row in rows.into_iter().take(self.bounds.table_rows) {
                    if self.spent_all() {
                        break;
                    }
                    row.iter_mut().for_each(|cell| self.field(cell));
                    kept.push(row);
                }
                let shown = kept.len();
                let mut out = vec![Block::Table {
                    caption,
                    head,
                    rows: kept,
                }];
                out.extend(self.left_out(shown, total, "rows"));
                out
            }
        }
    }

    fn left_out(&mut self, shown: usize, total: usize, what: &str) -> Option<Block> {
        (shown < total).then(|| {
            self.cut = true;
            Block::para(format!(
                "The first {shown} of {total} {what} are shown here. The rest are in the text \
                 version of this summary and on VA.gov."
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Section;

    fn doc(blocks: Vec<Block>) -> SummaryDocument {
        SummaryDocument {
            sections: vec![Section {
                heading: "Section".to_owned(),
                groups: vec![Group {
                    heading: None,
                    blocks,
                }],
            }],
            ..SummaryDocument::default()
        }
    }

    const SMALL: Bounds = Bounds {
        field_chars: 10,
        list_items: 2,
        table_rows: 3,
        total_chars: 60 + 6 * PER_STRING,
    };

    #[test]
    fn within_the_bounds_nothing_is_cut() {
        let mut d = doc(vec![
            Block::para("short"),
            Block::list(["a".into(), "b".into()]).unwrap(),
        ]);
        assert!(!d.abridge(SMALL));
        assert!(d.notice.is_none());
    }

    #[test]
    fn each_bound_cuts_and_says_so() {
        let rows = (0..5).map(|n| vec![n.to_string()]).collect();
        let mut d = doc(vec![
            Block::para("a paragraph far longer than ten"),
            Block::list(["a".into(), "b".into(), "c".into()]).unwrap(),
            Block::Table {
                caption: vec![],
                head: vec!["n".into()],
                rows,
            },
        ]);
        assert!(d.abridge(SMALL));
        assert_eq!(d.notice.as_deref(), Some(NOTICE));
        let blocks = &d.sections[0].groups[0].blocks;
        let Block::Para { spans } = &blocks[0] else {
            panic!()
        };
        assert!(spans[0].text.starts_with("a paragrap …"), "{}", spans[0].text);
        let Block::List { items } = &blocks[1] else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        let Block::Para { spans } = &blocks[2] else {
            panic!()
        };
        assert!(
            spans[0].text.starts_with("The first 2 of 3 items"),
            "{}",
            spans[0].text
        );
        let Block::Table { rows, .. } = &blocks[3] else {
            panic!()
        };
        assert_eq!(rows.len(), 3);
        let Block::Para { spans } = &blocks[4] else {
            panic!()
        };
        assert!(spans[0].text.starts_with("The first 3 of 5 rows"));
    }

    #[test]
    fn past_the_total_what_follows_is_left_out() {
        let many = (0..20).map(|_| Block::para("0123456789")).collect();
        let mut d = doc(many);
        d.sections.push(Section {
            heading: "Later".to_owned(),
            groups: vec![Group {
                heading: None,
                blocks: vec![Block::para("x")],
            }],
        });
        assert!(d.abridge(SMALL));
        assert_eq!(d.sections.len(), 1, "the later section is left out");
        assert_eq!(d.sections[0].groups[0].blocks.len(), 6);
    }
}
