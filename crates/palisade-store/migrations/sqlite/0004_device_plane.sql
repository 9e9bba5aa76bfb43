-- Device plane: messages from devices (telemetry, events, command results) and connection facts.

CREATE TABLE device_messages (
    device_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,      -- telemetry | event | command_result
    received_ms INTEGER NOT NULL,
    seq         INTEGER,
    quarantined INTEGER NOT NULL,   -- sent while quarantined (kept for forensics)
    payload     TEXT NOT NULL
);
CREATE INDEX device_messages_device ON device_messages (device_id, kind, received_ms);

CREATE TABLE device_connections (
    device_id TEXT NOT NULL,
    event     TEXT NOT NULL,        -- connected | disconnected | refused
    at_ms     INTEGER NOT NULL,
    source_ip TEXT,
    detail    TEXT
);
CREATE INDEX device_connections_device ON device_connections (device_id, at_ms);
