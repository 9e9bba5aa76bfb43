-- Signed firmware updates (issue 9): TUF metadata as published, the image catalogue, per-device
-- assignments signed by the director key, and each device's last update report.

-- Every version of every role, the signed JSON exactly as served (`/tuf/{n}.root.json` needs
-- the old roots too).
CREATE TABLE tuf_metadata (
    role       TEXT NOT NULL CHECK (role IN ('root', 'targets', 'snapshot', 'timestamp')),
    version    BIGINT NOT NULL CHECK (version >= 1),
    body       BYTEA NOT NULL,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (role, version)
);

-- Images uploaded (the bytes live in DATA_DIR/firmware/<sha256>).
CREATE TABLE firmware_images (
    sha256     TEXT PRIMARY KEY,              -- lowercase hex
    length     BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- The catalogue: the targets of the current targets metadata, one row per target.
CREATE TABLE firmware_targets (
    name       TEXT PRIMARY KEY,
    hardware   TEXT NOT NULL,
    version    TEXT NOT NULL,
    counter    BIGINT NOT NULL,
    sha256     TEXT NOT NULL REFERENCES firmware_images (sha256),
    length     BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX firmware_targets_hardware ON firmware_targets (hardware);

-- Every assignment signed for a device; the newest (highest `issued`) is the one served.
CREATE TABLE firmware_assignments (
    device_id  TEXT NOT NULL REFERENCES devices (id),
    issued     BIGINT NOT NULL CHECK (issued >= 1),
    target     TEXT NOT NULL,
    signed     TEXT NOT NULL,                 -- Signed<Assignment> JSON
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, issued)
);

-- The agent's last `update.*` event per device.
CREATE TABLE firmware_reports (
    device_id TEXT PRIMARY KEY REFERENCES devices (id),
    event     TEXT NOT NULL,
    target    TEXT,
    version   TEXT,
    detail    TEXT,
    at_ms     BIGINT NOT NULL
);
