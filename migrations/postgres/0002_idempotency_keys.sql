-- Idempotency keys: a POST that creates something, retried with the same `Idempotency-Key`,
-- replays the first answer instead of creating it again. The row is written in the same
-- transaction as what it created, so every instance sees both or neither.
CREATE TABLE idempotency_keys (
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           text        NOT NULL,
    -- SHA-256 of the operation, its path parameters and the canonical JSON body.
    fingerprint   text        NOT NULL,
    status        integer     NOT NULL,
    response_body text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
