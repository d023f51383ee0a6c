-- Webhook subscriptions of projects, their deliveries and each delivery's attempts, and the
-- position up to which the outbox has been turned into deliveries. See the README, "Webhooks".
CREATE TABLE webhooks (
    id                    uuid        PRIMARY KEY,
    project_id            uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url                   text        NOT NULL,
    description           text        NOT NULL,
    -- The event types to send, as a JSON array of strings.
    event_types           text        NOT NULL,
    -- Signing secrets (whsec_...): the current one, and the one before a rotation, which still
    -- signs until previous_expires_at.
    secret                text        NOT NULL,
    previous_secret       text,
    previous_expires_at   timestamptz,
    enabled               boolean     NOT NULL,
    -- Why the service disabled it (failing for too long); NULL while it is not.
    disabled_reason       text,
    -- Circuit breaker: closed, open (no request until retry_at), half_open (one probe).
    circuit               text        NOT NULL,
    consecutive_failures  integer     NOT NULL,
    circuit_retry_at      timestamptz,
    failing_since         timestamptz,
    -- The worker delivering to it now (one at a time, so deliveries go out in event order).
    lease_owner           text,
    lease_until           timestamptz,
    created_by            uuid        NOT NULL REFERENCES users (id),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX webhooks_project_idx ON webhooks (project_id, id);

CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    -- The event's position, the order of delivery.
    tx_id           bigint      NOT NULL,
    seq             bigint      NOT NULL,
    -- The body, as sent (kept after the outbox has swept the event, for redelivery).
    payload         text        NOT NULL,
    -- The trace context of the request that made the event.
    traceparent     text,
    request_id      text        NOT NULL,
    -- pending, delivered, dead
    status          text        NOT NULL,
    -- Attempts made in all; cycle_start is what it was when the current round of retries began
    -- (0, or the count at a redelivery by hand).
    attempts        integer     NOT NULL,
    cycle_start     integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE UNIQUE INDEX webhook_deliveries_event_idx ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (webhook_id, status, tx_id, seq);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id          uuid        PRIMARY KEY,
    delivery_id uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    latency_ms  integer     NOT NULL,
    status_code integer,
    error       text,
    instance_id text        NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempt);

-- How far each reader of the outbox has got (one row per reader, locked while it reads).
CREATE TABLE event_consumers (
    name   text   PRIMARY KEY,
    tx_id  bigint NOT NULL,
    seq    bigint NOT NULL
);
INSERT INTO event_consumers (name, tx_id, seq) VALUES ('webhooks', 0, 0);
