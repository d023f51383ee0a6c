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
        Self {
            writer,
            static_fields: static_fields(instance_id, service),
        }
    }

    /// What [`install_access_writer`] needs to write access lines straight to this layer's
    /// sink, in the same format.
    pub fn access_writer(&self) -> AccessWriter {
        AccessWriter {
            writer: self.writer.clone(),
            static_fields: self.static_fields.clone(),
        }
    }
}

/// Lets [`write_access`] write; called once the JSON layer is installed (later calls do
/// nothing).
pub fn install_access_writer(writer: AccessWriter) {
    let _ = ACCESS.set(writer);
}

/// `,"instance_id":"...","service":"...","version":"..."`, the end of every line.
fn static_fields(instance_id: &str, service: &str) -> String {
    let mut fields = String::new();
    for (key, value) in [
        ("instance_id", instance_id),
        ("service", service),
        ("version", env!("CARGO_PKG_VERSION")),
    ] {
        fields.push_str(",\"");
        fields.push_str(key);
        fields.push_str("\":");
        push_json_str(&mut fields, value);
    }
    fields
}

/// The fields of one access-log line (`target` `tasklight::access`, `message` "request
/// completed").
pub struct AccessLine<'a> {
    /// The request method as sent.
    pub method: &'a str,
    /// The route template.
    pub route: &'a str,
    /// The raw path.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// Milliseconds, to the microsecond.
    pub duration_ms: f64,
    /// The body's length, when known without reading it.
    pub bytes: Option<u64>,
    /// The authenticated user.
    pub user_id: Option<&'a str>,
    /// The client address (empty when unknown).
    pub client_address: &'a str,
}

/// Writes access lines to a [`JsonLayer`]'s sink.
pub struct AccessWriter {
    writer: LogSink,
    static_fields: String,
}

static ACCESS: std::sync::OnceLock<AccessWriter> = std::sync::OnceLock::new();

/// Writes an access line the way [`JsonLayer`] writes the same event, without the `tracing`
/// event machinery (the dispatch, a visitor per field, a filter per layer): about a third of
/// what the line cost. Returns false when no JSON log is installed; the caller then sends the
/// event through `tracing` (the pretty format, tests). The caller checks the log filter first.
pub fn write_access(access: &AccessLine<'_>, request: &context::RequestContext) -> bool {
    let Some(writer) = ACCESS.get() else {
        return false;
    };
    BUFFER.with(|buffer| {
        let Ok(mut line) = buffer.try_borrow_mut() else {
            return false;
        };
        line.clear();
        format_access(&mut line, access, request, &writer.static_fields);
        writer.writer.write_line(line.as_bytes());
        true
    })
}

fn format_access(
    line: &mut String,
    access: &AccessLine<'_>,
    request: &context::RequestContext,
    static_fields: &str,
) {
    line.push_str("{\"timestamp\":\"");
    push_timestamp(line, std::time::SystemTime::now());
    line.push_str(
        "\",\"level\":\"INFO\",\"target\":\"tasklight::access\",\"message\":\"request completed\",\"method\":",
    );
    push_json_str(line, access.method);
    line.push_str(",\"route\":");
    push_json_str(line, access.route);
    line.push_str(",\"path\":");
    push_json_str(line, access.path);
    let _ = write!(line, ",\"status\":{}", access.status);
    if access.duration_ms.is_finite() {
        line.push_str(",\"duration_ms\":");
        push_millis(line, access.duration_ms);
    }
    if let Some(bytes) = access.bytes {
        let _ = write!(line, ",\"bytes\":{bytes}");
    }
    if let Some(user_id) = access.user_id {
        line.push_str(",\"user_id\":");
        push_json_str(line, user_id);
    }
    line.push_str(",\"client_address\":");
    push_json_str(line, access.client_address);
    push_request_ids(line, request);
    line.push_str(static_fields);
    line.push_str("}\n");
}

/// `,"request_id":...,"trace_id":...,"span_id":...`.
fn push_request_ids(line: &mut String, request: &context::RequestContext) {
    line.push_str(",\"request_id\":");
    push_json_str(line, &request.request_id);
    line.push_str(",\"trace_id\":\"");
    line.push_str(&request.trace_id);
    line.push_str("\",\"span_id\":\"");
    line.push_str(&request.span_id);
    line.push('"');
}

/// Writes `ms` as `Display` does. A duration in whole microseconds (as the access line's is:
/// rounded to the microsecond, then divided by 1,000) is written from the integer: the shortest
/// decimal that reads back as that `f64` has at most three decimals, and `f64`'s `Display`
/// costs several hundred instructions for the same text. Any other value goes to `Display`.
fn push_millis(line: &mut String, ms: f64) {
    let micros = (ms * 1000.0).round();
    if (0.0..1e15).contains(&micros) && micros / 1000.0 == ms {
        let micros = micros as u64;
        // Digits by hand: `write!` costs as much as the float formatting it replaces.
        let mut digits = [0u8; 24];
        let mut at = digits.len();
        let mut rest = micros;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 && at <= digits.len() - 4 {
                break;
            }
        }
        // `digits[at..]` has at least four digits; the last three are the fraction.
        let text = &digits[at..];
        let (whole, fraction) = text.split_at(text.len() - 3);
        let fraction = match fraction.iter().rposition(|&d| d != b'0') {
            Some(last) => &fraction[..=last],
            None => &[],
        };
        // ASCII digits only.
        line.push_str(std::str::from_utf8(whole).unwrap_or("0"));
        if !fraction.is_empty() {
            line.push('.');
            line.push_str(std::str::from_utf8(fraction).unwrap_or("0"));
        }
    } else {
        let _ = write!(line, "{ms}");
    }
}

/// The access line as a `tracing` event (for the pretty format, and while Sentry is on); call it
/// inside the request's context.
pub fn access_event(access: &AccessLine<'_>) {
    tracing::info!(
        target: "tasklight::access",
        method = access.method,
        route = access.route,
        path = access.path,
        status = access.status,
        duration_ms = access.duration_ms,
        bytes = access.bytes,
        user_id = access.user_id,
        client_address = access.client_address,
        "request completed"
    );
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
    push_timestamp(line, std::time::SystemTime::now());
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push_str("\",\"target\":");
    push_json_str(line, meta.target());
    let mut visitor = FieldWriter {
        line,
        has_message: false,
    };
    event.record(&mut visitor);
    let FieldWriter { line, has_message } = visitor;
    if !has_message {
        line.push_str(",\"message\":\"\"");
    }
    context::with(|c| push_request_ids(line, c));
    line.push_str(static_fields);
    line.push_str("}\n");
}

thread_local! {
    /// The second last formatted, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends `time` as RFC 3339 UTC with milliseconds (`2026-11-29T06:07:08.123Z`). The date and
/// time of day are formatted once a second per thread; each line adds only the milliseconds.
fn push_timestamp(line: &mut String, time: std::time::SystemTime) {
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let formatted = chrono::DateTime::from_timestamp(second as i64, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            *cached = (second, formatted);
        }
        line.push_str(&cached.1);
    });
    let millis = since_epoch.subsec_millis();
    line.push('.');
    line.push(char::from(b'0' + (millis / 100) as u8));
    line.push(char::from(b'0' + (millis / 10 % 10) as u8));
    line.push(char::from(b'0' + (millis % 10) as u8));
    line.push('Z');
}

/// Appends each field as `,"name":value`, the message included.
struct FieldWriter<'a> {
    line: &'a mut String,
    has_message: bool,
}

/// What the log does with a field, by its name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// Written as it is.
    Plain,
    /// One of the keys every line has: left out.
    Reserved,
    /// Its name says secret: written as `[redacted]`.
    Secret,
}

fn classify(name: &str) -> FieldKind {
    if RESERVED_FIELDS.contains(&name) {
        FieldKind::Reserved
    } else if is_secret(name) {
        FieldKind::Secret
    } else {
        FieldKind::Plain
    }
}

thread_local! {
    /// Field names seen lately and their kind, by the address of the name (field names are
    /// `&'static str` from the call site): the checks above cost more than the rest of a field.
    static KINDS: RefCell<Vec<(usize, FieldKind)>> = const { RefCell::new(Vec::new()) };
}

/// Kinds remembered per thread at most (the service has a few dozen field names).
const KINDS_MAX: usize = 256;

fn kind_of(name: &'static str) -> FieldKind {
    let address = name.as_ptr() as usize ^ (name.len() << 48);
    KINDS.with(|kinds| {
        let Ok(mut kinds) = kinds.try_borrow_mut() else {
            return classify(name);
        };
        if let Some((_, kind)) = kinds.iter().find(|(a, _)| *a == address) {
            return *kind;
        }
        let kind = classify(name);
        if kinds.len() < KINDS_MAX {
            kinds.push((address, kind));
        }
        kind
    })
}

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        let kind = if name == "message" {
            if self.has_message {
                return false;
            }
            self.has_message = true;
            FieldKind::Plain
        } else {
            kind_of(name)
        };
        if kind == FieldKind::Reserved {
            return false;
        }
        self.line.push_str(",\"");
        self.line.push_str(name);
        self.line.push_str("\":");
        if kind == FieldKind::Secret {
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
        if self.key(field) {
            push_json_str(self.line, value);
        }
    }

    /// Formats straight into the line, escaping on the way: no string per field.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.line.push('"');
            let _ = write!(JsonEscaped(self.line), "{value:?}");
            self.line.push('"');
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
    push_escaped(out, value);
    out.push('"');
}

/// Appends `value` escaped for the inside of a JSON string literal.
fn push_escaped(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = first_to_escape(rest.as_bytes()) {
        out.push_str(&rest[..at]);
        match rest.as_bytes()[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "\\u{other:04x}");
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// The index of the first byte that JSON needs escaped (`"`, `\\` or a control character).
/// Eight bytes are checked at a time; most log text has nothing to escape.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `word` is below 0x20, or equals `"` or `\\` (exact as a test of
    // "any"; which byte is found afterwards, one at a time).
    let special = |word: u64| {
        let below = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        (below | quote | backslash) & HIGH != 0
    };
    let needs = |b: &u8| *b == b'"' || *b == b'\\' || *b < 0x20;
    let mut start = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if special(word) {
            return chunk.iter().position(needs).map(|i| start + i);
        }
        start += 8;
    }
    bytes[start..].iter().position(needs).map(|i| start + i)
}

/// A `fmt::Write` that escapes what is written into it for a JSON string literal.
struct JsonEscaped<'a>(&'a mut String);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_access_line_is_the_line_the_layer_writes_for_the_event() {
        use tracing_subscriber::layer::SubscriberExt;
        let out = crate::telemetry::sink::tests::Collect::default();
        let (sink, guard) = LogSink::new(out.clone());
        let layer = JsonLayer::new(sink, "instance-1", "tasklight");
        let access_writer = layer.access_writer();
        let request = std::sync::Arc::new(context::RequestContext {
            request_id: "req-\"1\"".into(),
            trace_id: opentelemetry::trace::TraceId::from(7u128).into(),
            span_id: opentelemetry::trace::SpanId::from(9u64).into(),
            otel: None,
            route: "/api/v1/tasks/{task_id}",
            user_id: Default::default(),
            client_ip: None,
            account_rate_limit: Default::default(),
            cache_l1_hits: Default::default(),
            rate_limit: Default::default(),
        });
        let line = AccessLine {
            method: "GET",
            route: "/api/v1/tasks/{task_id}",
            path: "/api/v1/tasks/x\"y",
            status: 200,
            duration_ms: 0.125,
            bytes: Some(321),
            user_id: Some("0194f0aa-0000-7000-8000-000000000001"),
            client_address: "127.0.0.1",
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            context::sync_scope(request.clone(), || access_event(&line));
        });
        let mut direct = String::new();
        format_access(&mut direct, &line, &request, &access_writer.static_fields);
        drop(guard);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut through_tracing: serde_json::Value = serde_json::from_str(written.trim()).unwrap();
        let mut direct: serde_json::Value = serde_json::from_str(direct.trim()).unwrap();
        for line in [&mut through_tracing, &mut direct] {
            let timestamp = line["timestamp"].take();
            assert!(
                timestamp
                    .as_str()
                    .is_some_and(|t| t.ends_with('Z') && t.len() == 24)
            );
        }
        assert_eq!(direct, through_tracing);
        assert_eq!(direct["path"], "/api/v1/tasks/x\"y");
        assert_eq!(direct["trace_id"], "00000000000000000000000000000007");
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn the_first_byte_to_escape_is_found_in_any_position() {
        for len in 0..40 {
            let plain = "a".repeat(len);
            assert_eq!(first_to_escape(plain.as_bytes()), None, "{len}");
            for at in 0..len {
                for special in [b'"', b'\\', b'\n', 0x01, 0x1f] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = special;
                    assert_eq!(first_to_escape(&bytes), Some(at), "{len} {at} {special}");
                }
            }
        }
        // Bytes that only look special once 0x20 or 0x80 is taken from them.
        assert_eq!(first_to_escape("é ~\u{7f}ÿ€ !#[]".as_bytes()), None);
    }

    #[test]
    fn formatted_values_are_escaped_as_json() {
        let mut out = String::from("\"");
        let _ = write!(JsonEscaped(&mut out), "{:?}", "quote\" and\ttab");
        out.push('"');
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "\"quote\\\" and\\ttab\"");
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_932_447_007);
        let mut out = String::new();
        push_timestamp(&mut out, time);
        assert_eq!(out, "2026-11-29T06:07:27.007Z");
        out.clear();
        push_timestamp(&mut out, time + std::time::Duration::from_millis(993));
        assert_eq!(out, "2026-11-29T06:07:28.000Z");
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

    #[test]
    fn durations_in_whole_microseconds_are_written_as_display_writes_them() {
        let check = |ms: f64| {
            let mut line = String::new();
            super::push_millis(&mut line, ms);
            assert_eq!(line, format!("{ms}"), "{ms}");
        };
        for ms in [
            0.0, 0.001, 0.01, 0.1, 0.125, 1.0, 1.5, 12.3, 1234.567, 60_000.0, 0.3, 2.05,
        ] {
            check(ms);
        }
        // Whole microseconds divided by 1,000, as the access line's duration is made, over a
        // spread of magnitudes; and values that are not, which take Display's path.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let micros = (x % 1_000_000_000) >> (x % 30);
            check((micros as f64 / 1_000_000.0 * 1_000_000.0).round() / 1000.0);
        }
        for ms in [1e-7, 0.0004, 1.23456789, 1e300, f64::MIN_POSITIVE] {
            check(ms);
        }
    }
}
