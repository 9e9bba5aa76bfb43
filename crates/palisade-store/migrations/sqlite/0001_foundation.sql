-- Foundation: inventory, audit chain, envelope keys, sealed secrets, API keys.

CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    serial           TEXT NOT NULL,
    model            TEXT NOT NULL,
    vendor           TEXT NOT NULL,
    owner            TEXT,
    owner_contact    BLOB,             -- sealed (personal data)
    purpose          TEXT,
    criticality      TEXT NOT NULL,
    device_group     TEXT,
    region           TEXT,
    location         BLOB,             -- sealed (personal data)
    firmware_version TEXT,
    state            TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    UNIQUE (vendor, model, serial)
);
CREATE INDEX devices_state ON devices (state);
CREATE INDEX devices_group ON devices (device_group);
CREATE INDEX devices_region ON devices (region);
CREATE INDEX devices_criticality ON devices (criticality);
CREATE INDEX devices_model ON devices (model);

CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices (id),
    tag       TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);
CREATE INDEX device_tags_tag ON device_tags (tag);

CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    at_ms          INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    source_ip      TEXT,
    before_summary TEXT,
    after_summary  TEXT,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor);
CREATE INDEX audit_log_target ON audit_log (target);
CREATE INDEX audit_log_at ON audit_log (at_ms);

-- Append-only: the application never updates or deletes audit rows. (Someone with direct
-- access to the file can drop these triggers; the hash chain catches what they do next.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB NOT NULL,
    at_ms     INTEGER NOT NULL,
    signature BLOB NOT NULL
);

CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    wrapped       BLOB NOT NULL,
    created_ms    INTEGER NOT NULL
);

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    revoked_ms  INTEGER
);
