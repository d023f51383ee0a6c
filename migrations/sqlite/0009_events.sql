-- The transactional outbox: one event per audited change, written in the change's transaction
-- (no event without its change, no change without its event). Webhook delivery and the live
-- event streams read it; rows older than TASKLIGHT_EVENT_RETENTION_SECS are swept.
--
-- An event's position is (tx_id, seq). SQLite has one writer at a time (every write begins
-- IMMEDIATE), so insertion order is commit order: tx_id is always 0 and seq alone orders.
CREATE TABLE events (
    seq         integer PRIMARY KEY AUTOINCREMENT,
    tx_id       integer NOT NULL,
    id          blob    NOT NULL UNIQUE,
    event_type  text    NOT NULL,
    project_id  blob,
    actor_id    blob,
    entity_type text    NOT NULL,
    entity_id   blob    NOT NULL,
    payload     text    NOT NULL,
    request_id  text    NOT NULL,
    traceparent text,
    tracestate  text,
    instance_id text    NOT NULL,
    occurred_at text    NOT NULL
);
CREATE INDEX events_position_idx ON events (tx_id, seq);
CREATE INDEX events_project_position_idx ON events (project_id, tx_id, seq);
CREATE INDEX events_occurred_idx ON events (occurred_at);

-- Single-use tickets that open one event stream: a browser's EventSource cannot send an
-- Authorization header, and a long-lived token must never travel in a URL. Stored as SHA-256.
CREATE TABLE stream_tickets (
    token_hash text PRIMARY KEY,
    user_id    blob NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id blob NOT NULL,
    project_id blob NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    expires_at text NOT NULL
);
CREATE INDEX stream_tickets_expires_idx ON stream_tickets (expires_at);
