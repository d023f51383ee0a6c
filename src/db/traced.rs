//! An executor wrapper that gives every query a child span (`db.system.name`,
//! `db.operation.name`, `db.query.text` without values) and a duration sample by operation.
//!
//! sqlx routes `execute`, `fetch_all` and friends through `fetch_many`, and `fetch_one` through
//! `fetch_optional`, so wrapping those two covers every query the storage layer runs.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use sqlx::database::Database;
use sqlx::error::BoxDynError;
use sqlx::{Either, Error, Execute, Executor, SqlStr};
use tracing::Span;
use tracing::field::Empty;

use crate::telemetry::metrics::DbMetrics;

/// A connection that traces and times each query.
pub struct Traced<'c, DB: Database> {
    conn: &'c mut DB::Connection,
    metrics: &'c DbMetrics,
    system: &'static str,
}

impl<'c, DB: Database> Traced<'c, DB> {
    /// Wraps a connection.
    pub fn new(conn: &'c mut DB::Connection, metrics: &'c DbMetrics, system: &'static str) -> Self {
        Self {
            conn,
            metrics,
            system,
        }
    }
}

impl<DB: Database> std::fmt::Debug for Traced<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traced")
    }
}

/// The operation and the text of a query, learnt when sqlx asks for its SQL.
struct QueryInfo {
    operation: &'static str,
}

/// Passes a query through, recording its SQL on the span as sqlx reads it.
struct Probe<E> {
    inner: E,
    span: Span,
    info: Arc<OnceLock<QueryInfo>>,
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Probe<E> {
    fn sql(self) -> SqlStr {
        let sql = self.inner.sql();
        let (operation, target) = describe(sql.as_str());
        let _ = self.info.set(QueryInfo { operation });
        self.span.record("db.operation.name", operation);
        self.span.record("db.query.text", sql.as_str());
        if crate::telemetry::tracing_enabled() {
            // The span may have started already, when `otel.name` is no longer read: rename
            // the OpenTelemetry span itself.
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let name = match target {
                Some(target) => format!("{operation} {target}"),
                None => operation.to_owned(),
            };
            self.span.context().span().update_name(name);
        }
        sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.inner.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.inner.take_arguments()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
}

/// The operation (first keyword) and main table of a statement, from its text.
pub fn describe(sql: &str) -> (&'static str, Option<String>) {
    let mut words = sql.split_ascii_whitespace();
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    let (operation, table_after) = match first.as_str() {
        "SELECT" => ("SELECT", "FROM"),
        "INSERT" => ("INSERT", "INTO"),
        "UPDATE" => ("UPDATE", "UPDATE"),
        "DELETE" => ("DELETE", "FROM"),
        "WITH" => ("WITH", ""),
        _ => ("OTHER", ""),
    };
    if table_after.is_empty() {
        return (operation, None);
    }
    let mut words = sql.split_ascii_whitespace();
    let table = if operation == "UPDATE" {
        words.nth(1)
    } else {
        words
            .by_ref()
            .position(|w| w.eq_ignore_ascii_case(table_after))
            .and_then(|_| words.next())
    };
    let table = table.map(|t| {
        t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .to_owned()
    });
    (operation, table.filter(|t| !t.is_empty()))
}

fn query_span(system: &'static str) -> Span {
    tracing::info_span!(
        target: "tasklight::db",
        "db.query",
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = Empty,
        db.query.text = Empty,
    )
}

/// Records the duration under the query's operation when the query is done (or dropped).
struct Timing<'m> {
    started: Instant,
    info: Arc<OnceLock<QueryInfo>>,
    metrics: &'m DbMetrics,
}

impl Drop for Timing<'_> {
    fn drop(&mut self) {
        let operation = self.info.get().map_or("OTHER", |i| i.operation);
        self.metrics
            .record(operation, self.started.elapsed().as_secs_f64());
    }
}

struct TracedStream<'m, S> {
    inner: S,
    span: Span,
    _timing: Timing<'m>,
}

impl<S: Stream + Unpin> Stream for TracedStream<'_, S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        this.inner.poll_next_unpin(cx)
    }
}

impl<'c, DB: Database> Executor<'c> for Traced<'c, DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let span = query_span(self.system);
        let info = Arc::new(OnceLock::new());
        let probe = Probe {
            inner: query,
            span: span.clone(),
            info: info.clone(),
        };
        let timing = Timing {
            started: Instant::now(),
            info,
            metrics: self.metrics,
        };
        let inner = {
            let _entered = span.enter();
            self.conn.fetch_many(probe)
        };
        TracedStream {
            inner,
            span,
            _timing: timing,
        }
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        use tracing::Instrument;
        let span = query_span(self.system);
        let info = Arc::new(OnceLock::new());
        let probe = Probe {
            inner: query,
            span: span.clone(),
            info: info.clone(),
        };
        let metrics = self.metrics;
        let conn = self.conn;
        Box::pin(
            async move {
                let _timing = Timing {
                    started: Instant::now(),
                    info,
                    metrics,
                };
                conn.fetch_optional(probe).await
            }
            .instrument(span),
        )
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'c: 'e,
    {
        self.conn.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, Error>>
    where
        'c: 'e,
    {
        self.conn.describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn statements_are_named_by_operation_and_table() {
        assert_eq!(
            describe("SELECT id FROM tasks WHERE id = $1"),
            ("SELECT", Some("tasks".into()))
        );
        assert_eq!(
            describe("INSERT INTO audit_log (id) VALUES ($1)"),
            ("INSERT", Some("audit_log".into()))
        );
        assert_eq!(
            describe("UPDATE sessions SET x = 1"),
            ("UPDATE", Some("sessions".into()))
        );
        assert_eq!(
            describe("DELETE FROM tasks"),
            ("DELETE", Some("tasks".into()))
        );
        assert_eq!(describe("SELECT 1"), ("SELECT", None));
        assert_eq!(describe("VACUUM"), ("OTHER", None));
    }
}
