//! An executor wrapper that gives every query a child span (`db.system.name`,
//! `db.operation.name`, `db.query.text` without values) and a duration sample by operation.
//!
//! sqlx routes `execute`, `fetch_all` and friends through `fetch_many`, and `fetch_one` through
//! `fetch_optional`, so wrapping those two covers every query the storage layer runs.
//!
//! The spans are made with the OpenTelemetry API directly, as children of the request's server
//! span, and only when trace export is on: going through `tracing` and its OpenTelemetry bridge
//! cost about 5 µs a query (measured with `loadtests/bench-telemetry.sh`), and without export
//! nobody would see them.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Tracer as _};
use sqlx::database::Database;
use sqlx::error::BoxDynError;
use sqlx::{Either, Error, Execute, Executor, SqlStr};

use crate::telemetry::metrics::DbMetrics;
use crate::telemetry::{context, traces};

/// A connection that traces and times each query.
pub struct Traced<'c, DB: Database> {
    conn: &'c mut DB::Connection,
    metrics: &'c DbMetrics,
    system: &'static str,
    unclean: Option<&'c AtomicBool>,
}

impl<'c, DB: Database> Traced<'c, DB> {
    /// Wraps a connection. `unclean`, if given, is set when a query fails or is dropped before
    /// it finished (such a connection is not kept warm: see `super::warm`).
    pub fn new(
        conn: &'c mut DB::Connection,
        metrics: &'c DbMetrics,
        system: &'static str,
        unclean: Option<&'c AtomicBool>,
    ) -> Self {
        Self {
            conn,
            metrics,
            system,
            unclean,
        }
    }
}

impl<DB: Database> std::fmt::Debug for Traced<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traced")
    }
}

/// What a statement's span is called and says, worked out once per distinct statement.
struct Statement {
    operation: &'static str,
    name: std::borrow::Cow<'static, str>,
    text: opentelemetry::StringValue,
}

/// Distinct statements seen so far (the storage layer has a bounded set of them).
static STATEMENTS: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<Box<str>, Arc<Statement>>>,
> = std::sync::LazyLock::new(Default::default);
/// Statements kept at most; beyond that, each query works its description out again.
const STATEMENTS_MAX: usize = 4096;

fn statement(sql: &str) -> Arc<Statement> {
    if let Some(found) = STATEMENTS.read().ok().and_then(|m| m.get(sql).cloned()) {
        return found;
    }
    let (operation, target) = describe(sql);
    let name = match target {
        Some(target) => format!("{operation} {target}"),
        None => operation.to_owned(),
    };
    let Ok(mut map) = STATEMENTS.write() else {
        return Arc::new(Statement {
            operation,
            name: name.into(),
            text: Arc::<str>::from(sql).into(),
        });
    };
    if map.len() >= STATEMENTS_MAX {
        return Arc::new(Statement {
            operation,
            name: name.into(),
            text: Arc::<str>::from(sql).into(),
        });
    }
    // Kept for the life of the process (at most STATEMENTS_MAX names), so spans can borrow it.
    let name: &'static str = Box::leak(name.into_boxed_str());
    let statement = Arc::new(Statement {
        operation,
        name: name.into(),
        text: Arc::<str>::from(sql).into(),
    });
    map.insert(sql.into(), statement.clone());
    statement
}

/// What is learnt about a query when sqlx asks for its SQL: its operation, and its span.
#[derive(Default)]
struct QueryInfo {
    operation: OnceLock<&'static str>,
    span: Mutex<Option<opentelemetry_sdk::trace::Span>>,
}

/// Passes a query through, starting its span as sqlx reads its SQL.
struct Probe<E> {
    inner: E,
    system: &'static str,
    info: Arc<QueryInfo>,
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Probe<E> {
    fn sql(self) -> SqlStr {
        let sql = self.inner.sql();
        let statement = statement(sql.as_str());
        let _ = self.info.operation.set(statement.operation);
        let parent = context::with(|c| c.otel.clone()).flatten();
        if let (Some(tracer), Some(parent)) = (traces::tracer(), parent) {
            let span = tracer
                .span_builder(statement.name.clone())
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("db.system.name", self.system),
                    KeyValue::new("db.operation.name", statement.operation),
                    KeyValue::new("db.query.text", statement.text.clone()),
                ])
                .start_with_context(tracer, &parent);
            if let Ok(mut slot) = self.info.span.lock() {
                *slot = Some(span);
            }
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
        // The keyword at the top level: a subquery in the select list has a FROM of its own.
        let mut depth = 0i32;
        words
            .by_ref()
            .position(|w| {
                let top = depth == 0;
                depth += parens(w);
                top && w.eq_ignore_ascii_case(table_after)
            })
            .and_then(|_| words.next())
    };
    let table = table.map(|t| {
        t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .to_owned()
    });
    (operation, table.filter(|t| !t.is_empty()))
}

/// Parentheses a word opens, less those it closes.
fn parens(word: &str) -> i32 {
    word.bytes()
        .map(|b| match b {
            b'(' => 1,
            b')' => -1,
            _ => 0,
        })
        .sum()
}

/// When the query is done (or dropped): records its duration and ends its span.
struct Finish<'m> {
    started: Instant,
    info: Arc<QueryInfo>,
    metrics: &'m DbMetrics,
    /// Set when the query fails, or on drop unless it ran to its end (`clean`).
    unclean: Option<&'m AtomicBool>,
    clean: bool,
}

impl Finish<'_> {
    fn failed(&mut self) {
        if let Some(flag) = self.unclean.take() {
            flag.store(true, Ordering::Release);
        }
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if !self.clean {
            self.failed();
        }
        let operation = self.info.operation.get().copied().unwrap_or("OTHER");
        self.metrics
            .record(operation, self.started.elapsed().as_secs_f64());
        if let Ok(mut slot) = self.info.span.lock() {
            drop(slot.take());
        }
    }
}

struct TracedStream<'m, S> {
    inner: S,
    _finish: Finish<'m>,
}

impl<S, T> Stream for TracedStream<'_, S>
where
    S: Stream<Item = Result<T, Error>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let next = this.inner.poll_next_unpin(cx);
        match &next {
            Poll::Ready(None) => this._finish.clean = true,
            Poll::Ready(Some(Err(_))) => this._finish.failed(),
            _ => {}
        }
        next
    }
}

impl<'c, DB: Database> Traced<'c, DB> {
    fn probe<E>(&self, query: E) -> (Probe<E>, Arc<QueryInfo>) {
        let info = Arc::new(QueryInfo::default());
        let probe = Probe {
            inner: query,
            system: self.system,
            info: info.clone(),
        };
        (probe, info)
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
        let (probe, info) = self.probe(query);
        let finish = Finish {
            started: Instant::now(),
            info,
            metrics: self.metrics,
            unclean: self.unclean,
            clean: false,
        };
        TracedStream {
            inner: self.conn.fetch_many(probe),
            _finish: finish,
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
        let (probe, info) = self.probe(query);
        let metrics = self.metrics;
        let unclean = self.unclean;
        let conn = self.conn;
        Box::pin(async move {
            let mut finish = Finish {
                started: Instant::now(),
                info,
                metrics,
                unclean,
                clean: false,
            };
            let row = conn.fetch_optional(probe).await;
            finish.clean = row.is_ok();
            row
        })
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
        assert_eq!(
            describe(
                "SELECT id, (SELECT json_group_array(g.tag) FROM task_tags g WHERE g.task_id = tasks.id) AS tags FROM tasks WHERE project_id = $1"
            ),
            ("SELECT", Some("tasks".into()))
        );
        assert_eq!(
            describe(
                "SELECT id, COALESCE((SELECT array_agg(tag) FROM task_tags), '{}') FROM tasks"
            ),
            ("SELECT", Some("tasks".into()))
        );
        assert_eq!(describe("SELECT 1"), ("SELECT", None));
        assert_eq!(describe("VACUUM"), ("OTHER", None));
    }
}
