//! What the PDF can draw: the embedded fonts (Lato and its fallbacks, chosen by measured
//! coverage and size in `assets/fonts/README.md`) and the substitute for every character none
//! of them draws.
//!
//! One emoji, a Word bullet or a NUL used to cost the summary its PDF (PDF/UA refuses a glyph
//! no font has, and every request typeset the whole summary again to be refused again, #36).
//! Now each character either has a glyph or is replaced, in the PDF's model only, by a visible
//! substitute: a control by its control picture (U+2400 block), a private-use bullet by the
//! bullet it was pasted for, anything else by U+FFFD. The text form keeps the characters.

use std::borrow::Cow;

/// Lato first: Typst takes a character from the first font that has it, in the book's order.
pub(super) const FONTS: [&[u8]; 8] = [
    include_bytes!("../../assets/fonts/Lato-Regular.ttf"),
    include_bytes!("../../assets/fonts/Lato-Bold.ttf"),
    include_bytes!("../../assets/fonts/Lato-Italic.ttf"),
    include_bytes!("../../assets/fonts/Lato-BoldItalic.ttf"),
    include_bytes!("../../assets/fonts/NotoSansHebrew-Regular.ttf"),
    include_bytes!("../../assets/fonts/NotoSansArabic-Regular.ttf"),
    include_bytes!("../../assets/fonts/Symbola-Subset.ttf"),
    include_bytes!("../../assets/fonts/DroidSansFallback.ttf"),
];

/// Shown for a character no font draws (Symbola has it).
pub(super) const REPLACEMENT: char = '\u{FFFD}';

/// `text` with every character `drawn` refuses replaced by its substitute, and CR LF as LF.
/// Borrowed as it is when nothing needs replacing (nearly always: a scan, no copy).
pub(super) fn drawable(text: &str, drawn: impl Fn(char) -> bool) -> Cow<'_, str> {
    let needs = |c: char| c == '\r' || substitute(c, &drawn) != Some(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue; // a line ending, not a character of the summary
        }
        if let Some(s) = substitute(c, &drawn) {
            out.push(s);
        }
    }
    Cow::Owned(out)
}

/// What the PDF shows for `c`: itself, a substitute, or nothing (`None`: a tab becomes a space
/// instead, so nothing is ever dropped that a reader could miss).
fn substitute(c: char, drawn: &impl Fn(char) -> bool) -> Option<char> {
    Some(match c {
        ' '..='~' | '\n' => c,
        '\t' => ' ',
        // C0 controls and DEL as their control pictures: NUL ␀, ESC ␛, CR ␍, DEL ␡.
        '\0'..='\u{1F}' => char::from_u32(0x2400 + c as u32).unwrap_or(REPLACEMENT),
        '\u{7F}' => '\u{2421}',
        '\u{80}'..='\u{9F}' => REPLACEMENT,
        c if is_noncharacter(c) => REPLACEMENT,
        c if is_default_ignorable(c) => c, // joiners, variation selectors: shaping's, not glyphs
        c => match pasted_symbol(c) {
            Some(s) => s,
            None if drawn(c) => c,
            None => REPLACEMENT,
        },
    })
}

/// The private-use code points Word's Symbol and Wingdings bullets arrive as, and what they
/// were on the author's screen.
fn pasted_symbol(c: char) -> Option<char> {
    Some(match c {
        '\u{F0B7}' => '•',
        '\u{F0A7}' => '▪',
        '\u{F06E}' => '■',
        '\u{F076}' => '❖',
        '\u{F0D8}' => '➢',
        '\u{F0FC}' => '✓',
        '\u{E000}'..='\u{F8FF}' | '\u{F0000}'.. => REPLACEMENT,
        _ => return None,
    })
}

fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties 15): no glyph of their own;
/// the shaper hides them or joins around them.
fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0xAD | 0x34F | 0x61C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latin_only(c: char) -> bool {
        c.is_ascii() || c == '•' || c == '\u{FFFD}'
    }

    #[test]
    fn what_no_font_draws_is_shown_by_a_substitute() {
        assert!(matches!(drawable("plain words", latin_only), Cow::Borrowed(_)));
        assert_eq!(drawable("a\u{0}b\u{1B}c\rd\r\ne", latin_only), "a␀b␛c␍d\ne");
        assert_eq!(drawable("\u{F0B7} item\tnext", latin_only), "• item next");
        assert_eq!(
            drawable("x\u{FFFE}\u{FDD0}\u{10FFFF}\u{E123}", latin_only),
            "x\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(drawable("smile \u{1F600}", latin_only), "smile \u{FFFD}");
        assert_eq!(drawable("smile \u{1F600}", |_| true), "smile \u{1F600}");
        // Joiners and variation selectors stay for the shaper.
        assert_eq!(
            drawable("\u{1F468}\u{200D}\u{1F469}\u{FE0F}", |_| true),
            "\u{1F468}\u{200D}\u{1F469}\u{FE0F}"
        );
        assert_eq!(drawable("\u{85}", |_| true), "\u{FFFD}");
    }
}
