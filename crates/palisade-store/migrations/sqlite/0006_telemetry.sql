-- Telemetry facts derived from each accepted telemetry v1 report (the raw report stays in
-- device_messages), and the TLS facts of each connection.

CREATE TABLE telemetry (
    device_id     TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,   -- the report's own time (ts), else when it was received
    received_ms   INTEGER NOT NULL,
    seq           INTEGER,
    boot_id       TEXT,
    uptime_s      INTEGER,
    tx_bytes      INTEGER,
    rx_bytes      INTEGER,
    tx_bps        REAL,            -- derived from the counters; NULL across a reset
    rx_bps        REAL,
    counter_reset INTEGER NOT NULL,   -- 1 when the counters started again (reboot or reset)
    cpu_pct       REAL,
    mem_pct       REAL,
    failed_logins INTEGER
);
CREATE INDEX telemetry_device_time ON telemetry (device_id, at_ms);

ALTER TABLE device_connections ADD COLUMN tls_version TEXT;
ALTER TABLE device_connections ADD COLUMN cipher TEXT;
ALTER TABLE device_connections ADD COLUMN duration_ms INTEGER;
