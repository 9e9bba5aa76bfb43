-- Detection: security profiles (as written, validated by the server), alerts deduplicated per
-- (device, profile, rule) while not resolved, and every alert's history.

CREATE TABLE security_profiles (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,        -- the profile's JSON as accepted
    source     TEXT NOT NULL,        -- api | config
    updated_ms BIGINT NOT NULL
);

CREATE TABLE alerts (
    id                  TEXT PRIMARY KEY,
    device_id           TEXT NOT NULL,
    device_group        TEXT,
    profile             TEXT NOT NULL,
    rule                TEXT NOT NULL,
    severity            TEXT NOT NULL,      -- critical | high | medium | low | info
    status              TEXT NOT NULL,      -- open | acknowledged | resolved
    title               TEXT NOT NULL,
    detail              TEXT NOT NULL,
    count               BIGINT NOT NULL,   -- occurrences while not resolved
    first_ms            BIGINT NOT NULL,
    last_ms             BIGINT NOT NULL,
    response            TEXT NOT NULL,      -- what the rule's response did (or would have, in dry run)
    acked_by            TEXT,
    acked_ms            BIGINT,
    resolved_ms         BIGINT,
    resolution          TEXT,               -- cleared | resolved | false_positive
    escalation_step     BIGINT NOT NULL DEFAULT 0,
    suppressed_until_ms BIGINT
);
CREATE INDEX alerts_active ON alerts (device_id, profile, rule, status);
CREATE INDEX alerts_recent ON alerts (last_ms);

CREATE TABLE alert_events (
    alert_id TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    kind     TEXT NOT NULL,                 -- opened | repeated | cleared | acknowledged | resolved | suppressed | escalated | response
    actor    TEXT,
    detail   TEXT
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, at_ms);
