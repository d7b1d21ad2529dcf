//! The one check for text a user gives linecut that linecut then puts somewhere else: a file
//! name (a scenario's `name`, a sweep cell), a line of a generated configuration, or an
//! argument of a process it starts (a client id, a topic).
//!
//! Each use forbids what would let the text mean more than itself there:
//! - every use: control characters (a newline ends a configuration line; NUL ends a C string;
//!   escape sequences repaint a terminal) and unbounded length;
//! - a file name: `.` and `..` (they name the directory itself or its parent, which a `--force`
//!   would then clear), path separators, and a leading `-` (it would read as a flag when the
//!   path is passed to a command).
//!
//! Where a value must hold such characters legitimately (a topic may contain spaces) the place
//! that uses it escapes it instead; this check is for the places that cannot.

/// Where a piece of user text ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextUse {
    /// One component of a path (a run directory's name).
    FileName,
    /// An argument of a process linecut starts, or a value in a file it generates.
    Argument,
}

/// The longest text accepted for each use. A file name component: 200 bytes keeps a run
/// directory (which adds a sweep cell's suffix) under the 255 bytes most file systems allow.
/// An argument: MQTT caps strings at 65,535 bytes.
impl TextUse {
    pub const fn max_len(self) -> usize {
        match self {
            TextUse::FileName => 200,
            TextUse::Argument => 65_535,
        }
    }
}

/// Why a piece of text was refused; the message names the rule, the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("must not contain control characters (found {found:?} at byte {at})")]
    Control { found: char, at: usize },
    #[error("must not be `.` or `..`: they name a directory, not a new one")]
    DotName,
    #[error("must not contain path separators (`/` or `\\`)")]
    Separator,
    #[error("must not start with `-`: it would read as a command-line flag")]
    LeadingDash,
}

/// Checks `text` for `usage`.
pub fn check_text(text: &str, usage: TextUse) -> Result<(), TextError> {
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.len() > usage.max_len() {
        return Err(TextError::TooLong {
            len: text.len(),
            max: usage.max_len(),
        });
    }
    if let Some((at, found)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(TextError::Control { found, at });
    }
    if usage == TextUse::FileName {
        if text == "." || text == ".." {
            return Err(TextError::DotName);
        }
        if text.contains(['/', '\\']) {
            return Err(TextError::Separator);
        }
        if text.starts_with('-') {
            return Err(TextError::LeadingDash);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_refuse_what_would_escape_or_inject() {
        for (bad, why) in [
            ("", TextError::Empty),
            (".", TextError::DotName),
            ("..", TextError::DotName),
            ("a/b", TextError::Separator),
            ("..\\x", TextError::Separator),
            ("-rf", TextError::LeadingDash),
            (
                "inj\nlistener 18830",
                TextError::Control { found: '\n', at: 3 },
            ),
            ("nul\0", TextError::Control { found: '\0', at: 3 }),
            (
                "esc\u{1b}[31m",
                TextError::Control {
                    found: '\u{1b}',
                    at: 3,
                },
            ),
        ] {
            assert_eq!(check_text(bad, TextUse::FileName), Err(why), "{bad:?}");
        }
        let long = "x".repeat(201);
        assert_eq!(
            check_text(&long, TextUse::FileName),
            Err(TextError::TooLong { len: 201, max: 200 })
        );
        for good in [
            "seed-2014",
            "a..b",
            ".hidden-ok",
            "ünï cödé",
            &"x".repeat(200),
        ] {
            assert_eq!(check_text(good, TextUse::FileName), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn arguments_allow_path_like_text_but_not_control_characters() {
        for good in ["a/b", "..", "-starts-with-dash", "sensors/+/temp"] {
            assert_eq!(check_text(good, TextUse::Argument), Ok(()), "{good:?}");
        }
        assert!(matches!(
            check_text("a\r\nb", TextUse::Argument),
            Err(TextError::Control { found: '\r', .. })
        ));
        assert!(check_text("", TextUse::Argument).is_err());
    }
}
