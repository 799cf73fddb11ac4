-- hlx's own state: mappings and their leases, watermarks, row checksums,
-- runs and the quarantine. Times are ISO-8601 UTC text.
CREATE TABLE hlx_mapping (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    partner     TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE hlx_watermark (
    mapping_id INTEGER PRIMARY KEY REFERENCES hlx_mapping (id),
    position   TEXT NOT NULL,
    wm_text    TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE hlx_row_state (
    mapping_id INTEGER NOT NULL,
    row_key    TEXT NOT NULL,
    checksum   BLOB NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (mapping_id, row_key)
) WITHOUT ROWID;

CREATE TABLE hlx_run (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    mapping        TEXT NOT NULL,
    partner        TEXT NOT NULL,
    direction      TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    status         TEXT NOT NULL,
    batches        INTEGER NOT NULL DEFAULT 0,
    rows_read      INTEGER NOT NULL DEFAULT 0,
    inserted       INTEGER NOT NULL DEFAULT 0,
    updated        INTEGER NOT NULL DEFAULT 0,
    unchanged      INTEGER NOT NULL DEFAULT 0,
    deleted        INTEGER NOT NULL DEFAULT 0,
    rejected       INTEGER NOT NULL DEFAULT 0,
    null_watermark INTEGER NOT NULL DEFAULT 0,
    wm_from        TEXT,
    wm_to          TEXT,
    error          TEXT
);
CREATE INDEX hlx_run_mapping_started ON hlx_run (mapping, started_at);

CREATE TABLE hlx_quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    mapping     TEXT NOT NULL,
    partner     TEXT NOT NULL,
    row_key     TEXT NOT NULL,
    raw         TEXT NOT NULL,
    raw_digest  BLOB NOT NULL,
    field       TEXT,
    column_name TEXT,
    rule        TEXT NOT NULL,
    value       TEXT,
    reason      TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open',
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    run_id      INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (mapping, row_key)
);
CREATE INDEX hlx_quarantine_status ON hlx_quarantine (mapping, status);
