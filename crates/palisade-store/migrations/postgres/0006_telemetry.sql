-- Telemetry facts derived from each accepted telemetry v1 report (the raw report stays in
-- device_messages), and the TLS facts of each connection.

CREATE TABLE telemetry (
    device_id     TEXT NOT NULL,
    at_ms         BIGINT NOT NULL,   -- the report's own time (ts), else when it was received
    received_ms   BIGINT NOT NULL,
    seq           BIGINT,
    boot_id       TEXT,
    uptime_s      BIGINT,
    tx_bytes      BIGINT,
    rx_bytes      BIGINT,
    tx_bps        DOUBLE PRECISION,            -- derived from the counters; NULL across a reset
    rx_bps        DOUBLE PRECISION,
    counter_reset BIGINT NOT NULL,   -- 1 when the counters started again (reboot or reset)
    cpu_pct       DOUBLE PRECISION,
    mem_pct       DOUBLE PRECISION,
    failed_logins BIGINT
);
CREATE INDEX telemetry_device_time ON telemetry (device_id, at_ms);

ALTER TABLE device_connections ADD COLUMN tls_version TEXT;
ALTER TABLE device_connections ADD COLUMN cipher TEXT;
ALTER TABLE device_connections ADD COLUMN duration_ms BIGINT;
