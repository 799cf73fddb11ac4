-- Two-way mappings: a shared field both sides changed since the last
-- exchange, the two values, and the one kept (by [conflict] policy).
CREATE TABLE hlx_conflict (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    mapping        VARCHAR(200) NOT NULL,
    row_key        VARCHAR(500) NOT NULL,
    field          VARCHAR(200) NOT NULL,
    agreed_value   LONGTEXT,
    province_value LONGTEXT,
    partner_value  LONGTEXT,
    kept           VARCHAR(16) NOT NULL,
    policy         VARCHAR(32) NOT NULL,
    detected_at    DATETIME(6) NOT NULL,
    run_id         BIGINT,
    INDEX hlx_conflict_mapping (mapping, detected_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='hlx 双向交换冲突：双方都修改了共有字段时的两个值与保留的一方';

-- Two-way: the other side's changes to fields it does not own, not taken.
ALTER TABLE hlx_run ADD COLUMN ignored BIGINT NOT NULL DEFAULT 0;

-- Two-way: the value of each shared field both sides last agreed on (what
-- a conflict started from).
CREATE TABLE hlx_shared_value (
    mapping VARCHAR(200) NOT NULL,
    row_key VARCHAR(500) NOT NULL,
    field   VARCHAR(200) NOT NULL,
    value   LONGTEXT,
    PRIMARY KEY (mapping, row_key(255), field)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='hlx 双向交换：共有字段上次双方一致的值';
