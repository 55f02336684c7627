//! Client text made safe to show: strings a client chose (object and service names, app ids,
//! messages) end up in the decision log, `appipc why` and the broker's log, where a newline
//! would forge a line and a terminal escape would reach the user's terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not be shown as itself: control characters (C0, DEL, C1, so newlines and
/// ESC) and the Unicode controls that reorder or hide what follows them (bidirectional
/// embeddings, overrides and isolates, and the invisible line and paragraph separators).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [unsafe](is_unsafe) character written as a Rust-style escape (`\n`, `\t`,
/// `\u{1b}`); a backslash stays a backslash. Borrowed when nothing needed escaping.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(printable("Contoso.Hello_cvnpggrrsm18p!App ünïcödé"), Cow::Borrowed(_)));
    }

    #[test]
    fn newlines_escapes_and_bidi_controls_are_escaped() {
        assert_eq!(printable("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(printable("x\u{1b}[2Ky"), "x\\u{1b}[2Ky");
        assert_eq!(
            printable("\u{7f}\u{85}\u{202e}\u{2066}\u{2028}"),
            "\\u{7f}\\u{85}\\u{202e}\\u{2066}\\u{2028}"
        );
        // Nothing unsafe survives, whatever the input.
        let all: String = (0..0x3000u32).filter_map(char::from_u32).collect();
        assert!(!printable(&all).chars().any(is_unsafe));
    }
}
