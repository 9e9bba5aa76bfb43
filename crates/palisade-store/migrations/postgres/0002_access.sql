-- People and API access: users, role bindings, custom roles, MFA, sessions, scoped API keys.

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    display_name         TEXT,
    email                BYTEA,              -- sealed (personal data)
    status               TEXT NOT NULL,     -- active | disabled
    password_hash        TEXT NOT NULL,     -- argon2id, PHC string
    must_change_password BIGINT NOT NULL,
    totp_secret          BYTEA,              -- sealed; set once enrolment is confirmed
    totp_pending         BYTEA,              -- sealed; during enrolment
    totp_last_step       BIGINT,           -- replay protection
    locked_until_ms      BIGINT,
    created_ms           BIGINT NOT NULL,
    updated_ms           BIGINT NOT NULL
);

CREATE TABLE role_bindings (
    user_id TEXT NOT NULL REFERENCES users (id),
    role    TEXT NOT NULL,
    groups  TEXT NOT NULL,   -- comma-separated; empty means every group
    regions TEXT NOT NULL,   -- comma-separated; empty means every region
    PRIMARY KEY (user_id, role, groups, regions)
);

CREATE TABLE custom_roles (
    name         TEXT PRIMARY KEY,
    permissions  TEXT NOT NULL,  -- comma-separated permission names
    mfa_required BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id),
    code_hash BYTEA NOT NULL,
    used_ms   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE sessions (
    id_hash      BYTEA PRIMARY KEY,  -- SHA-256 of the cookie value; the value itself is never stored
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    source_ip    TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE api_keys ADD COLUMN owner TEXT;         -- user id, or NULL for keys made locally
ALTER TABLE api_keys ADD COLUMN scopes TEXT;        -- comma-separated permissions; NULL: the role's
ALTER TABLE api_keys ADD COLUMN groups TEXT;
ALTER TABLE api_keys ADD COLUMN regions TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_ip TEXT;
