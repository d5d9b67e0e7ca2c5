//! Text that came from a peer (a request field, a camera's hello, a FIFO
//! line), made safe to put in an error message or a log line: short,
//! printable, unmistakably quoted.
//!
//! Architecture Invariant: no string a peer controls reaches a log line or
//! an error message except through [`excerpt`]. A newline or an escape
//! sequence in a name must never forge a log line or a terminal's output,
//! and a 100 kB name must never become a 100 kB error.

use std::fmt::Write;

/// The most characters of peer text an excerpt shows.
pub const EXCERPT_CHARS: usize = 48;

/// `text` quoted, its control characters escaped (`\n`, `\u{1b}`), cut to
/// [`EXCERPT_CHARS`] characters with the full length said after it:
/// `"front-door"`, `"aaaa…" (100000 bytes)`.
pub fn excerpt(text: &str) -> String {
    let mut out = String::with_capacity(EXCERPT_CHARS + 16);
    out.push('"');
    let mut shown = 0;
    for c in text.chars() {
        if shown == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_invisible(c) => {
                let _ = write!(out, "{}", c.escape_default());
            }
            c => out.push(c),
        }
        shown += 1;
    }
    out.push('"');
    if shown == EXCERPT_CHARS && text.chars().count() > EXCERPT_CHARS {
        let _ = write!(out, " ({} bytes)", text.len());
    }
    out
}

/// Characters that print nothing or turn text around: bidirectional
/// overrides, zero-width marks.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_as_itself_in_quotes() {
        assert_eq!(excerpt("front-door"), "\"front-door\"");
    }

    #[test]
    fn control_characters_cannot_forge_a_line() {
        let forged = "cam\n2026-12-01 INFO disarmed by alice\u{1b}[2J";
        let safe = excerpt(forged);
        assert!(!safe.contains('\n') && !safe.contains('\u{1b}'), "{safe}");
        assert!(safe.contains("\\n") && safe.contains("\\u{1b}"), "{safe}");
        assert_eq!(excerpt("a\u{202e}b"), "\"a\\u{202e}b\"");
    }

    #[test]
    fn long_text_is_cut_and_its_length_said() {
        let long = "a".repeat(100_000);
        let safe = excerpt(&long);
        assert!(safe.len() < 80, "{safe}");
        assert!(safe.ends_with("…\" (100000 bytes)"), "{safe}");
        assert_eq!(excerpt(&"b".repeat(EXCERPT_CHARS)).len(), EXCERPT_CHARS + 2);
    }
}
