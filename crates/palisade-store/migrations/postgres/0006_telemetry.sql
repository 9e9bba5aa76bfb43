-- Telemetry facts, derived from each accepted telemetry v1 report, live on the report's row: one
-- row and one index entry per message keeps the ingest path to a single B-tree insert per index.
-- Messages are indexed by device and the device's own time (at_ms: the report's ts, else when it
-- was received), which serves the latest report, time series and message listings alike.

ALTER TABLE device_messages ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
UPDATE device_messages SET at_ms = received_ms;
ALTER TABLE device_messages ADD COLUMN boot_id TEXT;
ALTER TABLE device_messages ADD COLUMN uptime_s BIGINT;
ALTER TABLE device_messages ADD COLUMN tx_bytes BIGINT;
ALTER TABLE device_messages ADD COLUMN rx_bytes BIGINT;
-- Derived from the counters; NULL across a reset (counter_reset = 1).
ALTER TABLE device_messages ADD COLUMN tx_bps DOUBLE PRECISION;
ALTER TABLE device_messages ADD COLUMN rx_bps DOUBLE PRECISION;
ALTER TABLE device_messages ADD COLUMN counter_reset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE device_messages ADD COLUMN cpu_pct DOUBLE PRECISION;
ALTER TABLE device_messages ADD COLUMN mem_pct DOUBLE PRECISION;
ALTER TABLE device_messages ADD COLUMN failed_logins BIGINT;
DROP INDEX device_messages_device;
CREATE INDEX device_messages_device_time ON device_messages (device_id, at_ms);

-- The TLS facts and length of each connection.
ALTER TABLE device_connections ADD COLUMN tls_version TEXT;
ALTER TABLE device_connections ADD COLUMN cipher TEXT;
ALTER TABLE device_connections ADD COLUMN duration_ms BIGINT;
