-- SBOMs and vulnerability advisories (issue 10). The exposure index is kept in memory and
-- rebuilt from these tables at start: the SBOM of each firmware build as uploaded, every
-- advisory file as imported, which file each advisory document currently comes from, and the
-- report of each import.

CREATE TABLE firmware_sboms (
    model       TEXT NOT NULL,
    version     TEXT NOT NULL,
    format      TEXT NOT NULL,                -- e.g. "CycloneDX 1.5", "SPDX-2.3"
    components  BIGINT NOT NULL,
    sha256      TEXT NOT NULL,                -- of the body, lowercase hex
    body        BYTEA NOT NULL,                -- the document as uploaded
    uploaded_ms BIGINT NOT NULL,
    PRIMARY KEY (model, version)
);

-- Advisory files, by content; a file imported twice is stored once.
CREATE TABLE advisory_sources (
    sha256      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,                -- file name as given (zip path, upload name)
    body        BYTEA NOT NULL,
    import_id   TEXT NOT NULL,                -- the import that first brought it
    position    BIGINT NOT NULL,             -- its place in that import
    imported_ms BIGINT NOT NULL
);

-- One row per advisory document (format and normalised id): the file it currently comes from.
CREATE TABLE advisories (
    doc_key     TEXT PRIMARY KEY,             -- e.g. "osv:GHSA-…", "csaf:CVE-…"
    source      TEXT NOT NULL REFERENCES advisory_sources (sha256),
    modified    TEXT,
    import_id   TEXT NOT NULL,
    imported_ms BIGINT NOT NULL
);
CREATE INDEX advisories_source ON advisories (source);

CREATE TABLE advisory_imports (
    id          TEXT PRIMARY KEY,
    actor       TEXT NOT NULL,
    files       BIGINT NOT NULL,
    documents   BIGINT NOT NULL,
    report      TEXT NOT NULL,                -- the import report (JSON)
    at_ms       BIGINT NOT NULL
);
CREATE INDEX advisory_imports_at ON advisory_imports (at_ms);
