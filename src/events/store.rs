//! Outbox storage: append an event in the change's transaction, and read events in order of
//! position.
//!
//! Reads take only events whose writing transaction is older than every transaction still
//! running ([`crate::db::Dialect::ENDED_TX_BOUND`]): on PostgreSQL, two transactions that write
//! events may commit in either order, and without that bound a reader could pass the later one's
//! position before the earlier one commits, and never see its event. With it, an event becomes
//! readable only once nothing can appear behind it; the price is that a long transaction
//! anywhere on the PostgreSQL server (in any of its databases) holds back events written after it began.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{EventRecord, Position};
use crate::db::{Connection, Dialect, StoreResult};

/// Storage of the outbox.
#[async_trait]
pub trait EventStore: Send {
    /// Appends an event (its position is the database's to assign).
    async fn insert_event(&mut self, event: &EventRecord) -> StoreResult<()>;
    /// Readable events after `after`, in order, at most `limit`; only `project_id`'s when given.
    async fn events_after(
        &mut self,
        after: Position,
        project_id: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>>;
    /// An event's position, if the outbox still holds it.
    async fn event_position(&mut self, id: Uuid) -> StoreResult<Option<Position>>;
    /// The position of the last readable event (the start when there is none).
    async fn head_position(&mut self) -> StoreResult<Position>;
    /// Deletes up to `limit` events that happened before `before`; returns how many went.
    async fn delete_events_before(&mut self, before: DateTime<Utc>, limit: u32)
    -> StoreResult<u64>;
    /// Stores a stream ticket.
    async fn insert_stream_ticket(&mut self, ticket: &StreamTicket) -> StoreResult<()>;
    /// Takes a stream ticket out (it can be used once), whether or not it has expired.
    async fn take_stream_ticket(&mut self, token_hash: &str) -> StoreResult<Option<StreamTicket>>;
    /// Deletes tickets that expired before `now`.
    async fn delete_expired_stream_tickets(&mut self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// A single-use ticket that opens one event stream.
#[derive(sqlx::FromRow)]
pub struct StreamTicket {
    /// SHA-256 of the ticket, hex.
    pub token_hash: String,
    /// Whose stream it opens.
    pub user_id: Uuid,
    /// The session it was issued in (the stream ends with it).
    pub session_id: Uuid,
    /// The project whose events it streams.
    pub project_id: Uuid,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The columns of [`EventRecord`], in the order `decode` reads them.
macro_rules! event_columns {
    () => {
        "id, tx_id, seq, event_type, project_id, actor_id, entity_type, entity_id, payload, \
         request_id, traceparent, tracestate, instance_id, occurred_at"
    };
}

crate::for_each_backend! {
    fn decode(row: &<DB as sqlx::Database>::Row) -> Result<EventRecord, sqlx::Error> {
        use sqlx::Row;
        Ok(EventRecord {
            id: row.try_get(0)?,
            position: Position { tx_id: row.try_get(1)?, seq: row.try_get(2)? },
            event_type: row.try_get(3)?,
            project_id: row.try_get(4)?,
            actor_id: row.try_get(5)?,
            entity_type: row.try_get(6)?,
            entity_id: row.try_get(7)?,
            payload: row.try_get(8)?,
            request_id: row.try_get(9)?,
            traceparent: row.try_get(10)?,
            tracestate: row.try_get(11)?,
            instance_id: row.try_get(12)?,
            occurred_at: row.try_get(13)?,
        })
    }

    #[async_trait]
    impl EventStore for Connection<DB> {
        async fn insert_event(&mut self, e: &EventRecord) -> StoreResult<()> {
            let sql = format!(
                "INSERT INTO events (id, tx_id, event_type, project_id, actor_id, entity_type, \
                 entity_id, payload, request_id, traceparent, tracestate, instance_id, occurred_at) \
                 VALUES ($1, {}, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                <DB as Dialect>::CURRENT_TX_ID
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(e.id)
                .bind(&e.event_type)
                .bind(e.project_id)
                .bind(e.actor_id)
                .bind(&e.entity_type)
                .bind(e.entity_id)
                .bind(&e.payload)
                .bind(&e.request_id)
                .bind(&e.traceparent)
                .bind(&e.tracestate)
                .bind(&e.instance_id)
                .bind(e.occurred_at)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn events_after(
            &mut self,
            after: Position,
            project_id: Option<Uuid>,
            limit: u32,
        ) -> StoreResult<Vec<EventRecord>> {
            let mut query = sqlx::QueryBuilder::<DB>::new(concat!("SELECT ", event_columns!(), " FROM events WHERE "));
            if let Some(project_id) = project_id {
                query.push("project_id = ").push_bind(project_id).push(" AND ");
            }
            query.push("(tx_id, seq) > (").push_bind(after.tx_id).push(", ").push_bind(after.seq);
            query.push(format!(") AND tx_id < {} ORDER BY tx_id, seq LIMIT ", <DB as Dialect>::ENDED_TX_BOUND));
            query.push_bind(i64::from(limit));
            let rows = query.build().fetch_all(self.db()).await?;
            Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
        }

        async fn event_position(&mut self, id: Uuid) -> StoreResult<Option<Position>> {
            let row: Option<(i64, i64)> = sqlx::query_as("SELECT tx_id, seq FROM events WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db())
                .await?;
            Ok(row.map(|(tx_id, seq)| Position { tx_id, seq }))
        }

        async fn head_position(&mut self) -> StoreResult<Position> {
            let sql = format!(
                "SELECT tx_id, seq FROM events WHERE tx_id < {} ORDER BY tx_id DESC, seq DESC LIMIT 1",
                <DB as Dialect>::ENDED_TX_BOUND
            );
            let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_optional(self.db()).await?;
            Ok(row.map(|(tx_id, seq)| Position { tx_id, seq }).unwrap_or_default())
        }

        async fn delete_events_before(&mut self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
            let done = sqlx::query(
                "DELETE FROM events WHERE id IN \
                 (SELECT id FROM events WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(self.db())
            .await?;
            Ok(done.rows_affected())
        }

        async fn insert_stream_ticket(&mut self, t: &StreamTicket) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO stream_tickets (token_hash, user_id, session_id, project_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.token_hash)
            .bind(t.user_id)
            .bind(t.session_id)
            .bind(t.project_id)
            .bind(t.expires_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn take_stream_ticket(&mut self, token_hash: &str) -> StoreResult<Option<StreamTicket>> {
            Ok(sqlx::query_as(
                "DELETE FROM stream_tickets WHERE token_hash = $1 \
                 RETURNING token_hash, user_id, session_id, project_id, expires_at",
            )
            .bind(token_hash)
            .fetch_optional(self.db())
            .await?)
        }

        async fn delete_expired_stream_tickets(&mut self, now: DateTime<Utc>) -> StoreResult<u64> {
            let done = sqlx::query("DELETE FROM stream_tickets WHERE expires_at < $1")
                .bind(now)
                .execute(self.db())
                .await?;
            Ok(done.rows_affected())
        }
    }
}
