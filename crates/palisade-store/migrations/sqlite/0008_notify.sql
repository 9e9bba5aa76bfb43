-- Notifications: channels and durable deliveries (written with issue 7).

CREATE TABLE channels (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('webhook', 'http_template', 'syslog', 'email')),
    config       TEXT NOT NULL,               -- JSON, per kind; holds no secret
    secret       BLOB,                        -- sealed, AAD channel/<id>/secret
    min_severity TEXT NOT NULL CHECK (min_severity IN ('critical', 'high', 'medium', 'low', 'info')),
    groups       TEXT NOT NULL,               -- JSON array of device groups; [] = every group
    enabled      INTEGER NOT NULL,
    routed       INTEGER NOT NULL,          -- 0: only escalation tiers name it
    created_ms   INTEGER NOT NULL
);

-- The outbox: one row per (notice, channel), written in the transaction that raised the notice.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,         -- also the webhook-id
    channel_id      TEXT NOT NULL REFERENCES channels (id),
    alert_id        TEXT NOT NULL,
    event           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    body            TEXT NOT NULL,            -- the JSON event delivered
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_ms) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, created_ms);
CREATE INDEX deliveries_alert ON deliveries (alert_id);
