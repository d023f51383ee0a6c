//! The OpenAPI tags that group operations in the document and in Swagger UI (their doc comments
//! become the tag descriptions). Imports nothing, so every API area can name its tag.

use poem_openapi::Tags;

/// The tags that group operations in the document and in Swagger UI.
#[derive(Tags)]
pub enum Tag {
    /// Registration, login, token refresh and logout.
    Auth,
    /// The caller's own profile.
    Users,
    /// Projects the caller belongs to, and their members.
    Projects,
    /// Tasks inside projects: filters, sorting, cursor pagination, ETags.
    Tasks,
    /// Comments on tasks (Markdown, stored as sent).
    Comments,
    /// Invitations by email into projects: owners invite, the invitee accepts or declines.
    Invitations,
    /// Live updates: a project's events as a stream (SSE), and the tickets that open one from a
    /// browser.
    Events,
    /// Webhooks: a project's events POSTed to its subscriptions, signed, retried, with a
    /// circuit breaker per endpoint (owners).
    Webhooks,
    /// The audit log of changes.
    Audit,
    /// Administration: users and the whole audit log (administrators only).
    Admin,
    /// Liveness and readiness.
    Health,
}
