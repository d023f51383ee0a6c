//! What an internal error says about itself, fit for an error tracker: the kind of each error in
//! its cause chain and a message with the values taken out. Sentry groups events by it, so two
//! different causes on one route are two issues, and the same cause on different rows is one.
//!
//! Values are taken out by [`scrub`]: numbers, UUIDs, e-mail addresses, long hex strings and
//! quoted text that is not a plain identifier become `?`. What stays is the shape of the message
//! and the schema names a database error quotes (`relation "tasks" does not exist`,
//! `no such table: tasks`). The log line of the request keeps the whole chain.

use std::error::Error as StdError;

/// One error of a cause chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// What kind of error: `sqlx::Error::Database`, `std::io::Error`, ..., or `error` for one
    /// the report does not know (an `anyhow` context among them).
    pub kind: String,
    /// Its message without values; a database error starts with its code (SQLSTATE on
    /// PostgreSQL, the extended result code on SQLite).
    pub detail: String,
}

/// The cause chain of an internal error, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// Outermost first, as `anyhow` walks it; never empty.
    pub causes: Vec<Cause>,
}

impl ErrorReport {
    /// Describes `error` and everything under it.
    pub fn of(error: &anyhow::Error) -> Self {
        let mut causes = Vec::new();
        for link in error.chain() {
            let (cause, known) = describe(link);
            causes.push(cause);
            // A known error's description covers what lies under it (a database error's
            // driver error, say), which would only repeat it.
            if known {
                break;
            }
        }
        Self { causes }
    }

    /// The innermost cause: what actually went wrong.
    pub fn root(&self) -> &Cause {
        self.causes.last().expect("a chain has at least one error")
    }
}

/// The name of an enum variant from its `Debug` text (`PoolTimedOut`, `Database(...)`).
fn variant(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    &debug[..end]
}

/// Describes one error; `true` when its type is one this module knows.
fn describe(error: &(dyn StdError + 'static)) -> (Cause, bool) {
    let known = |kind: &str, detail: String| {
        (
            Cause {
                kind: kind.into(),
                detail,
            },
            true,
        )
    };
    if let Some(sql) = error.downcast_ref::<sqlx::Error>() {
        return match sql {
            sqlx::Error::Database(db) => known(
                "sqlx::Error::Database",
                format!(
                    "{}: {}",
                    db.code().as_deref().unwrap_or("no code"),
                    scrub(db.message())
                ),
            ),
            sqlx::Error::Io(io) => known("sqlx::Error::Io", format!("{:?}", io.kind())),
            other => known(
                &format!("sqlx::Error::{}", variant(&format!("{other:?}"))),
                scrub(&other.to_string()),
            ),
        };
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        return known("std::io::Error", format!("{:?}", io.kind()));
    }
    if let Some(redis) = error.downcast_ref::<redis::RedisError>() {
        return known("redis::RedisError", format!("{:?}", redis.kind()));
    }
    if let Some(json) = error.downcast_ref::<serde_json::Error>() {
        return known("serde_json::Error", format!("{:?}", json.classify()));
    }
    if let Some(join) = error.downcast_ref::<tokio::task::JoinError>() {
        let what = if join.is_panic() {
            "panic"
        } else {
            "cancelled"
        };
        return known("tokio::task::JoinError", what.into());
    }
    (
        Cause {
            kind: "error".into(),
            detail: scrub(&error.to_string()),
        },
        false,
    )
}

/// Whether quoted text is a schema name (table, column, constraint), which stays.
fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A word that carries a value: it holds a digit or an `@`.
fn is_value(word: &str) -> bool {
    word.chars().any(|c| c.is_ascii_digit() || c == '@')
}

/// Takes the values out of a message (see the module documentation).
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '\'']) {
        scrub_words(&rest[..start], &mut out);
        let quote = rest.as_bytes()[start] as char;
        let after = &rest[start + 1..];
        match after.find(quote) {
            Some(end) => {
                let inner = &after[..end];
                out.push(quote);
                out.push_str(if is_identifier(inner) { inner } else { "?" });
                out.push(quote);
                rest = &after[end + 1..];
            }
            None => {
                // An unclosed quote: whatever follows it is a value.
                out.push(quote);
                out.push('?');
                rest = "";
            }
        }
    }
    scrub_words(rest, &mut out);
    out
}

/// Unquoted text: a word (between spaces and the punctuation `,;:()[]{}=`) that carries a value
/// becomes `?`.
fn scrub_words(text: &str, out: &mut String) {
    let separator = |c: char| c.is_whitespace() || ",;:()[]{}=".contains(c);
    let mut word_start = None;
    for (i, c) in text.char_indices() {
        if separator(c) {
            if let Some(start) = word_start.take() {
                push_word(&text[start..i], out);
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(start) = word_start {
        push_word(&text[start..], out);
    }
}

fn push_word(word: &str, out: &mut String) {
    out.push_str(if is_value(word) { "?" } else { word });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_leave_and_schema_names_stay() {
        for (message, scrubbed) in [
            (
                r#"relation "tasks" does not exist"#,
                r#"relation "tasks" does not exist"#,
            ),
            ("no such table: tasks", "no such table: tasks"),
            (
                "cache entry task:0192f1e2-aaaa-7bbb-8ccc-123456789abc has another type",
                "cache entry task:? has another type",
            ),
            (
                r#"invalid input syntax for type uuid: "not-a-uuid""#,
                r#"invalid input syntax for type uuid: "?""#,
            ),
            (
                "duplicate key (email)=(ada@example.com) in users_email_key",
                "duplicate key (email)=(?) in users_email_key",
            ),
            ("row 42 of 1000, named 'a b'", "row ? of ?, named '?'"),
            ("unclosed 'secret value", "unclosed '?"),
            ("", ""),
        ] {
            assert_eq!(scrub(message), scrubbed, "{message}");
        }
    }

    #[test]
    fn a_chain_is_described_outermost_first_with_kinds() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer 10.0.0.7 left");
        let error = anyhow::Error::new(sqlx::Error::Io(io)).context("reading task 17");
        let report = ErrorReport::of(&error);
        assert_eq!(
            report.causes,
            vec![
                Cause {
                    kind: "error".into(),
                    detail: "reading task ?".into()
                },
                Cause {
                    kind: "sqlx::Error::Io".into(),
                    detail: "ConnectionReset".into()
                },
            ]
        );
        assert_eq!(report.root().kind, "sqlx::Error::Io");
        let timed_out = ErrorReport::of(&anyhow::Error::new(sqlx::Error::PoolTimedOut));
        assert_eq!(timed_out.root().kind, "sqlx::Error::PoolTimedOut");
    }
}
