//! What error messages quote of their input: a bounded, escaped prefix, so a megabyte of
//! configuration or a terminal escape sequence never reaches a log or a terminal whole.

use std::borrow::Cow;
use std::fmt;

/// The most characters of an input an error message quotes.
pub(crate) const QUOTE_CHARS: usize = 64;

/// An input as error messages show it: in double quotes, escaped as Rust's `{:?}` escapes a
/// string (control characters as `\u{1b}`, `\n`, ...), and when it is longer than
/// [`QUOTE_CHARS`] characters, only those, then `... (N bytes)`.
#[derive(Debug, Clone)]
pub(crate) struct Quoted<'a>(pub(crate) Cow<'a, str>);

/// `text` as error messages quote it.
pub(crate) fn quoted(text: &str) -> Quoted<'_> {
    Quoted(Cow::Borrowed(text))
}

/// `text` as it is when it is short and has no control character, else as [`quoted`]: for
/// values that read best bare (a number, a host name in a log line).
pub(crate) fn plain(text: &str) -> Plain<'_> {
    Plain(text)
}

/// See [`plain`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain<'a>(&'a str);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if text.len() <= QUOTE_CHARS && !text.chars().any(char::is_control) {
            f.write_str(text)
        } else {
            quoted(text).fmt(f)
        }
    }
}

/// A path as [`plain`] shows it (invalid UTF-8 replaced), for error messages and log lines;
/// formatted only when written.
pub(crate) fn plain_path(path: &std::path::Path) -> PlainPath<'_> {
    PlainPath(path)
}

/// See [`plain_path`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlainPath<'a>(&'a std::path::Path);

impl fmt::Display for PlainPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        plain(&self.0.to_string_lossy()).fmt(f)
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let text: &str = &self.0;
        f.write_char('"')?;
        let mut cut = false;
        for (n, c) in text.chars().enumerate() {
            if n == QUOTE_CHARS {
                cut = true;
                break;
            }
            match c {
                // As `{:?}` writes them inside a string.
                '\'' => f.write_char('\'')?,
                c => {
                    for escaped in c.escape_debug() {
                        f.write_char(escaped)?;
                    }
                }
            }
        }
        f.write_char('"')?;
        if cut {
            write!(f, "... ({} bytes)", text.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_read_as_debug_long_ones_are_cut() {
        for text in ["", "localhost", "a\"b", "it's", "\u{1b}[2J\r\n\0", "名前"] {
            assert_eq!(quoted(text).to_string(), format!("{text:?}"));
        }
        let long = "\u{1b}".repeat(1 << 20);
        let shown = quoted(&long).to_string();
        assert!(shown.len() < 64 * 6 + 40, "{}", shown.len());
        assert!(!shown.contains('\u{1b}'));
        assert!(shown.ends_with("\"... (1048576 bytes)"), "{shown}");
        assert_eq!(plain("localhost").to_string(), "localhost");
        assert_eq!(plain("a\u{1b}").to_string(), "\"a\\u{1b}\"");
        assert!(plain(&long).to_string().ends_with("(1048576 bytes)"));
    }
}
