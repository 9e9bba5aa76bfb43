-- Command delivery: when a command was last sent, acknowledged or answered, and the answer.
ALTER TABLE device_commands ADD COLUMN updated_ms BIGINT;
ALTER TABLE device_commands ADD COLUMN result TEXT;
