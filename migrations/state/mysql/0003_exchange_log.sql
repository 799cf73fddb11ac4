-- The exchange log (交换日志): one entry per batch that moved data and per
-- failed run, hash-chained: each entry's hash covers its fields and the hash
-- of the entry before it, so an altered, removed or re-ordered entry breaks
-- the chain (`hlx log verify`). Times are RFC 3339 UTC text, hashed as stored.
CREATE TABLE hlx_exchange_log (
    seq            BIGINT PRIMARY KEY,
    logged_at      VARCHAR(40) NOT NULL,
    kind           VARCHAR(20) NOT NULL,
    partner        VARCHAR(100),
    mapping        VARCHAR(200),
    direction      VARCHAR(10),
    run_id         BIGINT,
    wm_from        VARCHAR(1000),
    wm_to          VARCHAR(1000),
    rows_read      BIGINT NOT NULL DEFAULT 0,
    inserted       BIGINT NOT NULL DEFAULT 0,
    updated        BIGINT NOT NULL DEFAULT 0,
    unchanged      BIGINT NOT NULL DEFAULT 0,
    deleted        BIGINT NOT NULL DEFAULT 0,
    rejected       BIGINT NOT NULL DEFAULT 0,
    content_digest CHAR(64) COMMENT '本批次映射后内容的 SHA-256 摘要',
    mapping_digest CHAR(64) COMMENT '生效的映射文件与代码集的 SHA-256 摘要',
    outcome        VARCHAR(20) NOT NULL,
    error          TEXT,
    cut_seq        BIGINT,
    cut_hash       CHAR(64),
    algo           VARCHAR(10) NOT NULL,
    prev_hash      CHAR(64) NOT NULL COMMENT '前一条日志的哈希（哈希链）',
    hash           CHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='hlx 接口数据交换日志：每个批次一条，哈希链防篡改';
CREATE INDEX hlx_exchange_log_time ON hlx_exchange_log (logged_at);
CREATE INDEX hlx_exchange_log_mapping ON hlx_exchange_log (mapping, logged_at);

-- The chain's head: the last entry's seq and hash. Appenders lock this row,
-- so entries are numbered and linked one at a time.
CREATE TABLE hlx_exchange_log_head (
    id   INT PRIMARY KEY,
    seq  BIGINT  NOT NULL,
    hash CHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='hlx 交换日志链头';
INSERT INTO hlx_exchange_log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
