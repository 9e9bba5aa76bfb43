-- The web console's per-user state: saved filters of the device list.

CREATE TABLE console_filters (
    user_id    TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    query      TEXT NOT NULL,      -- the list's query string, without `?`
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, name)
);
