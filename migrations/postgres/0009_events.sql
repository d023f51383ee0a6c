-- The transactional outbox: one event per audited change, written in the change's transaction
-- (no event without its change, no change without its event). Webhook delivery and the live
-- event streams read it; rows older than TASKLIGHT_EVENT_RETENTION_SECS are swept.
--
-- An event's position is (tx_id, seq): the id of the transaction that wrote it, then the order
-- of insertion. Readers take only rows whose transaction is older than every transaction still
-- running (pg_snapshot_xmin of their snapshot), so a transaction that commits late can never
-- slip an event in behind a position a reader has already passed: resuming "after position P"
-- has no gap, whichever instance wrote what. See the README, "Events".
CREATE TABLE events (
    id          uuid        PRIMARY KEY,
    tx_id       bigint      NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    event_type  text        NOT NULL,
    project_id  uuid,
    actor_id    uuid,
    entity_type text        NOT NULL,
    entity_id   uuid        NOT NULL,
    -- The JSON document delivered to webhooks and streams, as written.
    payload     text        NOT NULL,
    request_id  text        NOT NULL,
    -- The W3C trace context of the request that made the change.
    traceparent text,
    tracestate  text,
    instance_id text        NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX events_position_idx ON events (tx_id, seq);
CREATE INDEX events_project_position_idx ON events (project_id, tx_id, seq);
CREATE INDEX events_occurred_idx ON events (occurred_at);

-- Single-use tickets that open one event stream: a browser's EventSource cannot send an
-- Authorization header, and a long-lived token must never travel in a URL. Stored as SHA-256.
CREATE TABLE stream_tickets (
    token_hash text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id uuid        NOT NULL,
    project_id uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);
CREATE INDEX stream_tickets_expires_idx ON stream_tickets (expires_at);
