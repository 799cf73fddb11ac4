-- The exchange log (交换日志): one entry per batch that moved data and per
-- failed run, hash-chained: each entry's hash covers its fields and the hash
-- of the entry before it, so an altered, removed or re-ordered entry breaks
-- the chain (`hlx log verify`). Times are RFC 3339 UTC text, hashed as stored.
CREATE TABLE hlx.hlx_exchange_log (
    seq            bigint PRIMARY KEY,
    logged_at      text   NOT NULL,
    kind           text   NOT NULL,
    partner        text,
    mapping        text,
    direction      text,
    run_id         bigint,
    wm_from        text,
    wm_to          text,
    rows_read      bigint NOT NULL DEFAULT 0,
    inserted       bigint NOT NULL DEFAULT 0,
    updated        bigint NOT NULL DEFAULT 0,
    unchanged      bigint NOT NULL DEFAULT 0,
    deleted        bigint NOT NULL DEFAULT 0,
    rejected       bigint NOT NULL DEFAULT 0,
    content_digest text,
    mapping_digest text,
    outcome        text   NOT NULL,
    error          text,
    cut_seq        bigint,
    cut_hash       text,
    algo           text   NOT NULL,
    prev_hash      text   NOT NULL,
    hash           text   NOT NULL
);
CREATE INDEX hlx_exchange_log_time ON hlx.hlx_exchange_log (logged_at);
CREATE INDEX hlx_exchange_log_mapping ON hlx.hlx_exchange_log (mapping, logged_at);
COMMENT ON TABLE hlx.hlx_exchange_log IS 'hlx 接口数据交换日志：每个批次一条，哈希链防篡改';
COMMENT ON COLUMN hlx.hlx_exchange_log.content_digest IS '本批次映射后内容的 SHA-256 摘要';
COMMENT ON COLUMN hlx.hlx_exchange_log.mapping_digest IS '生效的映射文件与代码集的 SHA-256 摘要';
COMMENT ON COLUMN hlx.hlx_exchange_log.prev_hash IS '前一条日志的哈希（哈希链）';

-- The chain's head: the last entry's seq and hash. Appenders lock this row,
-- so entries are numbered and linked one at a time.
CREATE TABLE hlx.hlx_exchange_log_head (
    id   integer PRIMARY KEY,
    seq  bigint  NOT NULL,
    hash text    NOT NULL
);
INSERT INTO hlx.hlx_exchange_log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
COMMENT ON TABLE hlx.hlx_exchange_log_head IS 'hlx 交换日志链头';
