-- Two-way mappings: a shared field both sides changed since the last
-- exchange, the two values, and the one kept (by [conflict] policy).
CREATE TABLE hlx_conflict (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    mapping        TEXT NOT NULL,
    row_key        TEXT NOT NULL,
    field          TEXT NOT NULL,
    agreed_value   TEXT,
    province_value TEXT,
    partner_value  TEXT,
    kept           TEXT NOT NULL,
    policy         TEXT NOT NULL,
    detected_at    TEXT NOT NULL,
    run_id         INTEGER
);
CREATE INDEX hlx_conflict_mapping ON hlx_conflict (mapping, detected_at);

-- Two-way: the other side's changes to fields it does not own, not taken.
ALTER TABLE hlx_run ADD COLUMN ignored INTEGER NOT NULL DEFAULT 0;

-- Two-way: the value of each shared field both sides last agreed on (what
-- a conflict started from).
CREATE TABLE hlx_shared_value (
    mapping TEXT NOT NULL,
    row_key TEXT NOT NULL,
    field   TEXT NOT NULL,
    value   TEXT,
    PRIMARY KEY (mapping, row_key, field)
);
