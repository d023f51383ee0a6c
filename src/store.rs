//! Every storage trait as one: what a domain function works against, and the transactions that
//! make several writes land together. It sits above `db` (which knows no domain area) and above
//! each area's storage trait.

use async_trait::async_trait;

use crate::activity::store::ActivityStore;
use crate::audit::store::AuditStore;
use crate::auth::store::AuthStore;
use crate::comments::store::CommentStore;
use crate::db::{AnyConnection, Connection, Db, StoreResult};
use crate::events::store::EventStore;
use crate::idempotency::store::IdempotencyStore;
use crate::invitations::store::InvitationStore;
use crate::projects::store::ProjectStore;
use crate::tasks::store::TaskStore;
use crate::users::store::UserStore;
use crate::verification::store::VerificationStore;
use crate::webhooks::store::WebhookStore;

/// All storage traits together. A function that needs one area's storage takes that trait
/// (`&mut dyn AuditStore`); a `&mut dyn Store` coerces to any of them.
pub trait Store:
    UserStore
    + AuthStore
    + ProjectStore
    + TaskStore
    + CommentStore
    + ActivityStore
    + AuditStore
    + EventStore
    + IdempotencyStore
    + InvitationStore
    + VerificationStore
    + WebhookStore
    + Send
{
}

impl<T> Store for T where
    T: UserStore
        + AuthStore
        + ProjectStore
        + TaskStore
        + CommentStore
        + ActivityStore
        + AuditStore
        + EventStore
        + IdempotencyStore
        + InvitationStore
        + VerificationStore
        + WebhookStore
        + Send
{
}

/// A unit of work: every write made through it lands together on [`Transaction::commit`], or
/// not at all when it is dropped.
#[async_trait]
pub trait Transaction: Store {
    /// Commits the transaction.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[async_trait]
impl<DB: sqlx::Database> Transaction for Connection<DB>
where
    Connection<DB>: Store,
{
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.commit_if_in_transaction().await
    }
}

/// A pooled connection for reads (each statement commits on its own).
pub async fn read(db: &Db) -> StoreResult<Box<dyn Store>> {
    Ok(match db.acquire().await? {
        AnyConnection::Postgres(conn) => Box::new(conn),
        AnyConnection::Sqlite(conn) => Box::new(conn),
    })
}

/// A connection to the read replica (see [`Db::acquire_replica`]).
pub async fn read_replica(db: &Db) -> StoreResult<Box<dyn Store>> {
    Ok(match db.acquire_replica().await? {
        AnyConnection::Postgres(conn) => Box::new(conn),
        AnyConnection::Sqlite(conn) => Box::new(conn),
    })
}

/// Starts a transaction (see [`Db::begin`]).
pub async fn begin(db: &Db) -> StoreResult<Box<dyn Transaction>> {
    Ok(match db.begin().await? {
        AnyConnection::Postgres(conn) => Box::new(conn),
        AnyConnection::Sqlite(conn) => Box::new(conn),
    })
}
