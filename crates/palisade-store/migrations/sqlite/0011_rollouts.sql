-- Staged firmware rollouts: the rollout (its request and its engine state as JSON) and every
-- targeted device in assignment order with what it did.

CREATE TABLE rollouts (
    id         TEXT PRIMARY KEY,
    target     TEXT NOT NULL,      -- the catalogue target being rolled out
    spec       TEXT NOT NULL,      -- the request as accepted (JSON)
    state      TEXT NOT NULL,      -- the engine's state: phase, status, reason, rate counters (JSON)
    status     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX rollouts_status ON rollouts (status);

CREATE TABLE rollout_devices (
    rollout_id  TEXT NOT NULL REFERENCES rollouts (id),
    position    BIGINT NOT NULL,
    device_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,     -- waiting | assigned | committed | failed
    assigned_ms BIGINT,
    detail      TEXT,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_device ON rollout_devices (device_id, outcome);
