-- The exchange log (交换日志): one entry per batch that moved data and per
-- failed run, hash-chained: each entry's hash covers its fields and the hash
-- of the entry before it, so an altered, removed or re-ordered entry breaks
-- the chain (`hlx log verify`). Times are RFC 3339 UTC TEXT, hashed as stored.
CREATE TABLE hlx_exchange_log (
    seq            INTEGER PRIMARY KEY,
    logged_at      TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    partner        TEXT,
    mapping        TEXT,
    direction      TEXT,
    run_id         INTEGER,
    wm_from        TEXT,
    wm_to          TEXT,
    rows_read      INTEGER NOT NULL DEFAULT 0,
    inserted       INTEGER NOT NULL DEFAULT 0,
    updated        INTEGER NOT NULL DEFAULT 0,
    unchanged      INTEGER NOT NULL DEFAULT 0,
    deleted        INTEGER NOT NULL DEFAULT 0,
    rejected       INTEGER NOT NULL DEFAULT 0,
    content_digest TEXT,
    mapping_digest TEXT,
    outcome        TEXT   NOT NULL,
    error          TEXT,
    cut_seq        INTEGER,
    cut_hash       TEXT,
    algo           TEXT   NOT NULL,
    prev_hash      TEXT   NOT NULL,
    hash           TEXT   NOT NULL
);
CREATE INDEX hlx_exchange_log_time ON hlx_exchange_log (logged_at);
CREATE INDEX hlx_exchange_log_mapping ON hlx_exchange_log (mapping, logged_at);

-- The chain's head: the last entry's seq and hash. Appenders lock this row,
-- so entries are numbered and linked one at a time.
CREATE TABLE hlx_exchange_log_head (
    id   INTEGER PRIMARY KEY,
    seq  INTEGER  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO hlx_exchange_log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
