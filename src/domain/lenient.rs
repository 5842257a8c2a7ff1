//! The upstream's JSON as VistA data can hold it: a byte that is not UTF-8, or a `\u` escape of
//! half a surrogate pair, made a whole summary unreadable (JSON, PDF and text all 502, #36).
//! Read as U+FFFD instead, the rest of the summary kept. Only a document that failed to parse
//! as it was is mended, so a well-formed one costs nothing more.

/// `bytes` with every invalid UTF-8 sequence and every lone surrogate escape replaced by
/// U+FFFD; `None` when there was nothing of either to mend.
pub fn mended_json(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    let mut changed = matches!(text, std::borrow::Cow::Owned(_));
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        let Some(next) = escape[1..].chars().next() else {
            out.push_str(escape);
            rest = "";
            break;
        };
        if next != 'u' {
            // `\\`, `\"`, `\n`, …: two characters as they are (so `\\u` is no escape).
            let len = 1 + next.len_utf8();
            out.push_str(&escape[..len]);
            rest = &escape[len..];
            continue;
        }
        let unit = |s: &str| s.get(2..6).and_then(|h| u16::from_str_radix(h, 16).ok());
        let low_follows =
            escape.get(6..8) == Some("\\u") && matches!(unit(&escape[6..]), Some(0xDC00..=0xDFFF));
        match unit(escape) {
            Some(0xD800..=0xDBFF) if low_follows => {
                out.push_str(&escape[..12]);
                rest = &escape[12..];
            }
            Some(0xD800..=0xDFFF) => {
                out.push_str("\\ufffd");
                rest = &escape[6..];
                changed = true;
            }
            _ => {
                out.push_str(&escape[..2]);
                rest = &escape[2..];
            }
        }
    }
    out.push_str(rest);
    changed.then(|| out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mended(input: &[u8]) -> serde_json::Value {
        serde_json::from_slice(&mended_json(input).expect("something to mend")).unwrap()
    }

    #[test]
    fn a_bad_byte_or_a_lone_surrogate_is_u_fffd_and_the_rest_is_kept() {
        assert_eq!(
            mended(b"{\"a\":\"x\xffy\",\"b\":1}"),
            serde_json::json!({"a": "x\u{fffd}y", "b": 1})
        );
        assert_eq!(
            mended(br#"{"a":"x\ud800y"}"#),
            serde_json::json!({"a": "x\u{fffd}y"})
        );
        assert_eq!(
            mended(br#"{"a":"\udc00\ud83d"}"#),
            serde_json::json!({"a": "\u{fffd}\u{fffd}"})
        );
        // A whole pair, an escaped backslash before `u`, and other escapes are left alone.
        assert_eq!(
            mended(br#"{"a":"\ud83d\ude00 \\ud800 \n \u00e9","b":"\udfff"}"#),
            serde_json::json!({"a": "\u{1F600} \\ud800 \n \u{e9}", "b": "\u{fffd}"})
        );
        assert_eq!(mended_json(br#"{"a":"\ud83d\ude00 fine"}"#), None);
        assert_eq!(mended_json(b"{\"a\":\"trailing \\"), None);
    }
}
