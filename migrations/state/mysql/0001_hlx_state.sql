-- hlx's own state: mappings and their leases, watermarks, row checksums,
-- runs and the quarantine. Times are UTC.
CREATE TABLE hlx_mapping (
    id          BIGINT AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(200) NOT NULL UNIQUE,
    partner     VARCHAR(100) NOT NULL,
    lease_owner VARCHAR(200),
    lease_until DATETIME(6),
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='hlx 映射登记与运行租约';

CREATE TABLE hlx_watermark (
    mapping_id BIGINT PRIMARY KEY,
    position   MEDIUMTEXT NOT NULL,
    wm_text    VARCHAR(1000),
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (mapping_id) REFERENCES hlx_mapping (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='hlx 水位线';

CREATE TABLE hlx_row_state (
    mapping_id BIGINT NOT NULL,
    row_key    VARCHAR(512) NOT NULL,
    checksum   BINARY(32) NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (mapping_id, row_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='hlx 行校验和';

CREATE TABLE hlx_run (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    mapping        VARCHAR(200) NOT NULL,
    partner        VARCHAR(100) NOT NULL,
    direction      VARCHAR(10) NOT NULL,
    started_at     DATETIME(6) NOT NULL,
    finished_at    DATETIME(6),
    status         VARCHAR(20) NOT NULL,
    batches        BIGINT NOT NULL DEFAULT 0,
    rows_read      BIGINT NOT NULL DEFAULT 0,
    inserted       BIGINT NOT NULL DEFAULT 0,
    updated        BIGINT NOT NULL DEFAULT 0,
    unchanged      BIGINT NOT NULL DEFAULT 0,
    deleted        BIGINT NOT NULL DEFAULT 0,
    rejected       BIGINT NOT NULL DEFAULT 0,
    null_watermark BIGINT NOT NULL DEFAULT 0,
    wm_from        VARCHAR(1000),
    wm_to          VARCHAR(1000),
    error          MEDIUMTEXT,
    INDEX hlx_run_mapping_started (mapping, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='hlx 运行记录';

CREATE TABLE hlx_quarantine (
    id          BIGINT AUTO_INCREMENT PRIMARY KEY,
    mapping     VARCHAR(200) NOT NULL,
    partner     VARCHAR(100) NOT NULL,
    row_key     VARCHAR(512) NOT NULL,
    raw         MEDIUMTEXT NOT NULL,
    raw_digest  BINARY(32) NOT NULL,
    field       VARCHAR(200),
    column_name VARCHAR(200),
    rule        VARCHAR(50) NOT NULL,
    value       TEXT,
    reason      TEXT NOT NULL,
    status      VARCHAR(20) NOT NULL DEFAULT 'open',
    first_seen  DATETIME(6) NOT NULL,
    last_seen   DATETIME(6) NOT NULL,
    run_id      BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 1,
    UNIQUE KEY hlx_quarantine_key (mapping, row_key),
    INDEX hlx_quarantine_status (mapping, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='hlx 隔离区';
