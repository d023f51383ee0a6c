//! What a domain function works with, and how every write ends.
//!
//! A domain function takes a [`DomainContext`] (the database, the two-level cache, the metrics
//! and this instance's name), not the whole application state, so its rules can be tested on a
//! SQLite file with no Redis and no server. Every write goes through a [`UnitOfWork`]: the
//! changes and their audit entries land in one transaction, and the cache keys the write made
//! stale are invalidated on every instance once it has committed.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::activity::model::TaskActivity;
use crate::activity::store::ActivityStore;
use crate::audit::model::Change;
use crate::audit::store::{AuditRecord, AuditStore};
use crate::cache::Cache;
use crate::db::{Db, StoreResult};
use crate::error::AppResult;
use crate::events::model::{Envelope, EventRecord, Position};
use crate::events::signal::EventSignal;
use crate::store::{self, Store, Transaction};
use crate::telemetry::metrics::Metrics;

/// The database, the cache in front of it, the metrics and the instance's name: what domain
/// functions need. Cheap to clone (every field is shared).
#[derive(Clone)]
pub struct DomainContext {
    /// The pool, PostgreSQL or SQLite.
    pub db: Db,
    /// The two-level cache (in-process, then Redis when configured).
    pub cache: Arc<Cache>,
    /// Counters of domain events (tasks created, logins, ...).
    pub metrics: Arc<Metrics>,
    /// This instance's `INSTANCE_ID`, stamped on every audit entry.
    pub instance_id: Arc<str>,
    /// Wakes the event feeds of this and every other instance when events commit.
    pub events: Arc<EventSignal>,
}

impl DomainContext {
    /// A pooled connection for reads (each statement commits on its own).
    pub async fn read(&self) -> StoreResult<Box<dyn Store>> {
        store::read(&self.db).await
    }

    /// A connection for a read by `reader` that may be slightly stale (a list): on the read
    /// replica when there is one that answers, is within the allowed lag and has replayed the
    /// reader's own last write (on any instance); otherwise on the primary. Authorization is
    /// never decided on it: callers check the reader's role first, through the cache or the
    /// primary.
    pub async fn read_stale(&self, reader: Uuid) -> StoreResult<Box<dyn Store>> {
        match self.replica_store(reader).await {
            Some(store) => Ok(store),
            None => self.read().await,
        }
    }

    /// [`DomainContext::read_stale`] for a caller that already holds a primary connection (for
    /// its authorization check): the replica's when the read may go there, else that one.
    pub async fn prefer_replica(&self, primary: Box<dyn Store>, reader: Uuid) -> Box<dyn Store> {
        self.replica_store(reader).await.unwrap_or(primary)
    }

    /// A replica connection when there is a replica and `reader`'s read may go to it (counted
    /// by where it went); `None` for the primary.
    async fn replica_store(&self, reader: Uuid) -> Option<Box<dyn Store>> {
        let replica = self.db.replica()?;
        let route = replica.route(replica.mark_of(reader).await);
        self.metrics.replica.read(route.reason());
        if route != crate::db::replica::Route::Replica {
            return None;
        }
        match store::read_replica(&self.db).await {
            Ok(store) => Some(store),
            // Down until the next check says otherwise; this read and the next go to the
            // primary.
            Err(_) => {
                replica.failed();
                None
            }
        }
    }

    /// Begins a write made by `actor` (`None` for the command line).
    pub async fn begin(&self, actor: Option<Uuid>) -> StoreResult<UnitOfWork<'_>> {
        Ok(UnitOfWork {
            context: self,
            tx: store::begin(&self.db).await?,
            actor,
            stale: Vec::new(),
            wrote_events: false,
        })
    }
}

/// A write in progress: a transaction, the actor its audit entries name, and the cache keys to
/// invalidate once it commits. Dropped without [`UnitOfWork::commit`], it rolls back and
/// invalidates nothing. Dereferences to the transaction's storage traits.
pub struct UnitOfWork<'a> {
    context: &'a DomainContext,
    tx: Box<dyn Transaction>,
    actor: Option<Uuid>,
    stale: Vec<String>,
    wrote_events: bool,
}

impl<'a> UnitOfWork<'a> {
    /// The context the write was begun in.
    pub fn context(&self) -> &'a DomainContext {
        self.context
    }

    /// Appends the audit entry of `change` and its event (the outbox), stamped with the actor,
    /// the request id, the request's trace context and the instance id, in this transaction.
    pub async fn record(&mut self, change: Change) -> StoreResult<()> {
        let occurred_at = crate::db::now();
        let request_id = crate::telemetry::context::request_id();
        let event = self.event(&change, occurred_at, &request_id);
        let entry = AuditRecord {
            id: Uuid::now_v7(),
            occurred_at,
            actor_id: self.actor,
            action: change.action.to_owned(),
            entity_type: change.entity_type.to_owned(),
            entity_id: change.entity_id,
            project_id: change.project_id,
            summary: sqlx::types::Json(change.summary),
            request_id,
            instance_id: self.context.instance_id.to_string(),
        };
        let audit: &mut dyn AuditStore = &mut *self.tx;
        audit.insert_audit(&entry).await?;
        self.tx.insert_event(&event).await?;
        self.wrote_events = true;
        Ok(())
    }

    /// Appends an event for a change that has no audit entry of its own (tasks unassigned by a
    /// member's removal, recorded under the removal's entry).
    pub async fn record_event(&mut self, change: Change) -> StoreResult<()> {
        let request_id = crate::telemetry::context::request_id();
        let event = self.event(&change, crate::db::now(), &request_id);
        self.tx.insert_event(&event).await?;
        self.wrote_events = true;
        Ok(())
    }

    /// The outbox event of `change`.
    fn event(&self, change: &Change, occurred_at: DateTime<Utc>, request_id: &str) -> EventRecord {
        let id = Uuid::now_v7();
        let envelope = Envelope {
            id,
            event_type: change.action,
            timestamp: occurred_at,
            project_id: change.project_id,
            actor_id: self.actor,
            request_id,
            data: &change.resource,
        };
        let (traceparent, tracestate) = match crate::telemetry::context::trace_context() {
            Some((parent, state)) => (Some(parent), state),
            None => (None, None),
        };
        EventRecord {
            id,
            position: Position::default(),
            event_type: change.action.to_owned(),
            project_id: change.project_id,
            actor_id: self.actor,
            entity_type: change.entity_type.to_owned(),
            entity_id: change.entity_id,
            // Serialising a `Value` and plain fields cannot fail.
            payload: serde_json::to_string(&envelope).unwrap_or_default(),
            request_id: request_id.to_owned(),
            traceparent,
            tracestate,
            instance_id: self.context.instance_id.to_string(),
            occurred_at,
        }
    }

    /// Appends `activity` to task `task_id`'s activity, stamped with the actor and the request
    /// id, in this transaction.
    pub async fn record_activity(
        &mut self,
        task_id: Uuid,
        activity: TaskActivity,
    ) -> StoreResult<()> {
        let request_id = crate::telemetry::context::request_id();
        let entries = activity.records(task_id, crate::db::now(), self.actor, &request_id);
        let store: &mut dyn ActivityStore = &mut *self.tx;
        store.insert_activity(&entries).await
    }

    /// Marks cache keys that this write makes stale.
    pub fn invalidate(&mut self, keys: impl IntoIterator<Item = String>) {
        self.stale.extend(keys);
    }

    /// Commits, then invalidates the stale keys on every instance and wakes every instance's
    /// event feed if the write made events.
    pub async fn commit(self) -> AppResult<()> {
        self.tx.commit().await?;
        // Read-your-writes: until the replica replays this commit, the actor reads from the
        // primary, on every instance. A position that cannot be read keeps them on the primary
        // for the mark's whole lifetime instead.
        if let (Some(replica), Some(actor)) = (self.context.db.replica(), self.actor) {
            let position = self.context.db.primary_wal_position().await;
            replica.remember(actor, position.unwrap_or(u64::MAX)).await;
        }
        if self.wrote_events {
            self.context.events.committed();
        }
        if !self.stale.is_empty() {
            self.context.cache.invalidate(&self.stale).await;
        }
        Ok(())
    }
}

impl Deref for UnitOfWork<'_> {
    type Target = dyn Transaction;

    fn deref(&self) -> &Self::Target {
        &*self.tx
    }
}

impl DerefMut for UnitOfWork<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.tx
    }
}

/// A [`DomainContext`] on a fresh SQLite file, with no Redis and no server, for unit tests of
/// domain rules.
#[cfg(test)]
pub mod testing {
    use std::collections::HashMap;
    use std::sync::Arc;

    use uuid::Uuid;

    use super::DomainContext;
    use crate::auth::Principal;
    use crate::config::Config;
    use crate::telemetry::metrics::Metrics;
    use crate::users::model::Role;
    use crate::users::store::UserRecord;

    /// The context and the directory its database lives in (removed when dropped).
    pub struct TestDomain {
        /// The context under test.
        pub ctx: DomainContext,
        _dir: tempfile::TempDir,
    }

    impl TestDomain {
        /// A migrated SQLite database in a temporary directory, and an in-process cache.
        pub async fn new() -> Self {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}", dir.path().join("unit.db").display());
            let vars = HashMap::from([
                ("DATABASE_URL".to_owned(), url),
                ("INSTANCE_ID".to_owned(), "unit".to_owned()),
            ]);
            let config = Config::from_map(&vars).expect("unit-test configuration");
            let metrics = Arc::new(Metrics::new("unit"));
            let db = crate::db::connect(&config, metrics.clone())
                .await
                .expect("SQLite opens");
            db.migrate().await.expect("migrations apply");
            let cache = crate::cache::Cache::new(&config, None, metrics.clone());
            let ctx = DomainContext {
                db,
                cache,
                metrics,
                instance_id: "unit".into(),
                events: crate::events::signal::EventSignal::new(None),
            };
            Self { ctx, _dir: dir }
        }

        /// A user stored directly (no password hashing), as the principal of their requests.
        pub async fn user(&self, name: &str) -> Principal {
            let now = crate::db::now();
            let user = UserRecord {
                id: Uuid::now_v7(),
                email: format!("{name}-{}@example.com", Uuid::new_v4().simple()),
                display_name: name.to_owned(),
                password_hash: "not a hash: unit tests never log in".to_owned(),
                role: Role::User.as_str().to_owned(),
                disabled: false,
                created_at: now,
                updated_at: now,
                email_verified_at: None,
            };
            let mut store = self.ctx.read().await.expect("connection");
            store.insert_user(&user).await.expect("user stored");
            Principal {
                user_id: user.id,
                session_id: Uuid::now_v7(),
                role: Role::User,
            }
        }
    }
}
