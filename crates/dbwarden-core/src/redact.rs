//! Redaction of free text that may carry values from the database, such as
//! an error message ("Key (email)=(bob@example.com) already exists").
//!
//! Query text is protected by fingerprinting; error messages are prose, so
//! they get a cruder treatment: anything quoted, anything in parentheses
//! after `=`, and every run of digits becomes `?`. What remains names the
//! kind of failure without the data that caused it.

/// The longest redacted message kept; longer ones are cut with "…".
pub const MAX_MESSAGE_LEN: usize = 512;

/// Returns `message` with quoted text, `=(…)` values and numbers replaced by
/// `?`, control characters turned into spaces, and the result cut to
/// [`MAX_MESSAGE_LEN`] bytes.
///
/// ```
/// use dbwarden_core::redact::redact_message;
/// assert_eq!(
///     redact_message(r#"duplicate key value violates unique constraint "users_email_key" Key (email)=(bob@example.com) already exists."#),
///     "duplicate key value violates unique constraint ? Key (email)=(?) already exists."
/// );
/// ```
pub fn redact_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_LEN) + 4);
    let mut chars = message.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        if out.len() >= MAX_MESSAGE_LEN {
            out.push('…');
            return out;
        }
        match c {
            '\'' | '"' | '`' => {
                // Skip to the matching quote; an unterminated quote hides the rest.
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                }
                out.push('?');
            }
            '(' if prev == Some('=') => {
                let mut depth = 1usize;
                for q in chars.by_ref() {
                    match q {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push_str("(?)");
            }
            c if c.is_ascii_digit() && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_') => {
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || matches!(d, '.' | '-' | ':')) {
                    chars.next();
                }
                out.push('?');
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
        prev = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_do_not_survive() {
        let cases = [
            ("invalid input syntax for type integer: \"abc123\"", "invalid input syntax for type integer: ?"),
            ("Duplicate entry 'alice@x.org' for key 'users.email'", "Duplicate entry ? for key ?"),
            ("Key (id)=(42) is not present in table \"users\".", "Key (id)=(?) is not present in table ?."),
            ("canceling statement due to statement timeout", "canceling statement due to statement timeout"),
            ("connection to 10.0.0.5:5432 refused", "connection to ? refused"),
            ("deadlock detected\nDETAIL: Process 123 waits", "deadlock detected DETAIL: Process ? waits"),
            ("column t2 does not exist", "column t2 does not exist"),
            ("unterminated 'secret", "unterminated ?"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_message(input), expected, "{input}");
        }
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(10_000);
        let out = redact_message(&long);
        assert!(out.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
        assert!(out.ends_with('…'));
    }
}
