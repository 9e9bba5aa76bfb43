-- SBOMs and vulnerability advisories (issue 10). The exposure index is kept in memory and
-- rebuilt from these tables at start: the SBOM of each firmware build as uploaded, every
-- advisory file as imported, which file each advisory document currently comes from, and the
-- report of each import.

CREATE TABLE firmware_sboms (
    model       TEXT NOT NULL,
    version     TEXT NOT NULL,
    format      TEXT NOT NULL,                -- e.g. "CycloneDX 1.5", "SPDX-2.3"
    components  INTEGER NOT NULL,
    sha256      TEXT NOT NULL,                -- of the body, lowercase hex
    body        BLOB NOT NULL,                -- the document as uploaded
    uploaded_ms INTEGER NOT NULL,
    PRIMARY KEY (model, version)
);

-- Advisory files, by content; a file imported twice is stored once.
CREATE TABLE advisory_sources (
    sha256      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,                -- file name as given (zip path, upload name)
    body        BLOB NOT NULL,
    import_id   TEXT NOT NULL,                -- the import that first brought it
    position    INTEGER NOT NULL,             -- its place in that import
    imported_ms INTEGER NOT NULL
);

-- One row per advisory document (format and normalised id): the file it currently comes from.
CREATE TABLE advisories (
    doc_key     TEXT PRIMARY KEY,             -- e.g. "osv:GHSA-…", "csaf:CVE-…"
    source      TEXT NOT NULL REFERENCES advisory_sources (sha256),
    modified    TEXT,
    import_id   TEXT NOT NULL,
    imported_ms INTEGER NOT NULL
);
CREATE INDEX advisories_source ON advisories (source);

CREATE TABLE advisory_imports (
    id          TEXT PRIMARY KEY,
    actor       TEXT NOT NULL,
    files       INTEGER NOT NULL,
    documents   INTEGER NOT NULL,
    report      TEXT NOT NULL,                -- the import report (JSON)
    at_ms       INTEGER NOT NULL
);
CREATE INDEX advisory_imports_at ON advisory_imports (at_ms);
