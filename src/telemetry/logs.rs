//! The JSON log layer: one object per line with `timestamp`, `level`, `target`, `message`,
//! `request_id`, `trace_id`, `span_id`, `instance_id`, `service`, `version` and the event's
//! fields, written by hand into a reused buffer (several times cheaper than a generic JSON
//! formatter), then handed to the [`LogSink`], which drops lines rather than block.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use crate::telemetry::sink::LogSink;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::telemetry::context;

/// Keys every line has; an event field with one of these names is left out, so keys stay unique.
const RESERVED_FIELDS: [&str; 10] = [
    "timestamp",
    "level",
    "target",
    "message",
    "request_id",
    "trace_id",
    "span_id",
    "instance_id",
    "service",
    "version",
];

/// Field names whose values are never written, whatever an event passes in them.
const SECRET_FIELDS: [&str; 6] = [
    "password",
    "token",
    "secret",
    "authorization",
    "cookie",
    "hash",
];

/// Writes each event as one JSON line.
pub struct JsonLayer {
    writer: LogSink,
    /// `"instance_id":"...","service":"...","version":"..."` with its leading comma, built once.
    static_fields: String,
}

impl JsonLayer {
    /// A layer writing to `writer`, stamping every line with these identities.
    pub fn new(writer: LogSink, instance_id: &str, service: &str) -> Self {
        let mut static_fields = String::new();
        for (key, value) in [
            ("instance_id", instance_id),
            ("service", service),
            ("version", env!("CARGO_PKG_VERSION")),
        ] {
            static_fields.push_str(",\"");
            static_fields.push_str(key);
            static_fields.push_str("\":");
            push_json_str(&mut static_fields, value);
        }
        Self {
            writer,
            static_fields,
        }
    }
}

thread_local! {
    static BUFFER: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        BUFFER.with(|buffer| {
            let Ok(mut line) = buffer.try_borrow_mut() else {
                return;
            };
            line.clear();
            format_line(&mut line, event, &self.static_fields);
            self.writer.write_line(line.as_bytes());
        });
    }
}

fn format_line(line: &mut String, event: &Event<'_>, static_fields: &str) {
    let meta = event.metadata();
    line.push_str("{\"timestamp\":\"");
    let _ = write!(
        line,
        "{}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push_str("\",\"target\":");
    push_json_str(line, meta.target());
    let mut visitor = FieldWriter {
        line,
        message: None,
    };
    event.record(&mut visitor);
    let FieldWriter { line, message } = visitor;
    line.push_str(",\"message\":");
    push_json_str(line, message.as_deref().unwrap_or(""));
    context::with(|c| {
        line.push_str(",\"request_id\":");
        push_json_str(line, &c.request_id);
        line.push_str(",\"trace_id\":\"");
        line.push_str(&c.trace_id);
        line.push_str("\",\"span_id\":\"");
        line.push_str(&c.span_id);
        line.push('"');
    });
    line.push_str(static_fields);
    line.push_str("}\n");
}

/// Appends each field as `,"name":value`, and keeps the message aside.
struct FieldWriter<'a> {
    line: &'a mut String,
    message: Option<String>,
}

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if RESERVED_FIELDS.contains(&name) {
            return false;
        }
        self.line.push_str(",\"");
        self.line.push_str(name);
        self.line.push_str("\":");
        if is_secret(name) {
            self.line.push_str("\"[redacted]\"");
            return false;
        }
        true
    }
}

fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_FIELDS.iter().any(|secret| lower.contains(secret))
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else if self.key(field) {
            push_json_str(self.line, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else if self.key(field) {
            push_json_str(self.line, &format!("{value:?}"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            if value.is_finite() {
                let _ = write!(self.line, "{value}");
            } else {
                self.line.push_str("null");
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.line.push_str(if value { "true" } else { "false" });
        }
    }

    /// Errors are written with their whole cause chain: `outer: inner: root`.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            let mut chain = value.to_string();
            let mut source = value.source();
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            push_json_str(self.line, &chain);
        }
    }
}

/// Appends `value` as a JSON string literal.
pub fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn secret_field_names_are_recognised() {
        for name in [
            "password",
            "new_password",
            "refresh_token",
            "Authorization",
            "token_hash",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["user_id", "route", "status"] {
            assert!(!is_secret(name), "{name}");
        }
    }
}
