-- Device identity: certificates, enrollment tokens, manufacturer trust, findings, commands.

CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,          -- hex
    device_id         TEXT NOT NULL REFERENCES devices (id),
    fingerprint       TEXT NOT NULL,             -- SHA-256 of the certificate, hex
    spki_sha256       TEXT NOT NULL,             -- SHA-256 of the public key, hex
    key_kind          TEXT NOT NULL,
    not_before_ms     INTEGER NOT NULL,
    not_after_ms      INTEGER NOT NULL,
    status            TEXT NOT NULL,             -- valid | revoked
    revoked_ms        INTEGER,
    revocation_reason TEXT,
    method            TEXT NOT NULL,             -- token | factory | renewal
    pem               TEXT NOT NULL,
    created_ms        INTEGER NOT NULL
);
CREATE INDEX certificates_device ON certificates (device_id);
CREATE INDEX certificates_spki ON certificates (spki_sha256);

CREATE TABLE enrollment_tokens (
    token_hash BLOB PRIMARY KEY,                 -- SHA-256; the token itself is shown once
    device_id  TEXT NOT NULL REFERENCES devices (id),
    expires_ms INTEGER NOT NULL,
    used_ms    INTEGER,
    created_ms INTEGER NOT NULL
);

CREATE TABLE manufacturer_cas (
    fingerprint TEXT PRIMARY KEY,                -- SHA-256 of the CA certificate, hex
    vendor      TEXT NOT NULL,
    model       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    pem         TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE manufacturer_serials (
    vendor TEXT NOT NULL,
    model  TEXT NOT NULL,
    serial TEXT NOT NULL,
    PRIMARY KEY (vendor, model, serial)
);

CREATE TABLE findings (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    device_id  TEXT,
    detail     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX findings_kind ON findings (kind);

CREATE TABLE device_commands (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices (id),
    command    TEXT NOT NULL,
    status     TEXT NOT NULL,                    -- queued | sent | done | failed
    created_ms INTEGER NOT NULL
);
CREATE INDEX device_commands_device ON device_commands (device_id);
