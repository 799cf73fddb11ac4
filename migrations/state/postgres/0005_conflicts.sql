-- Two-way mappings: a shared field both sides changed since the last
-- exchange, the two values, and the one kept (by [conflict] policy).
CREATE TABLE hlx.hlx_conflict (
    id             bigserial PRIMARY KEY,
    mapping        text NOT NULL,
    row_key        text NOT NULL,
    field          text NOT NULL,
    agreed_value   text,
    province_value text,
    partner_value  text,
    kept           text NOT NULL,
    policy         text NOT NULL,
    detected_at    timestamptz NOT NULL,
    run_id         bigint
);
CREATE INDEX hlx_conflict_mapping ON hlx.hlx_conflict (mapping, detected_at);
COMMENT ON TABLE hlx.hlx_conflict IS 'hlx 双向交换冲突：双方都修改了共有字段时的两个值与保留的一方';

-- Two-way: the other side's changes to fields it does not own, not taken.
ALTER TABLE hlx.hlx_run ADD COLUMN ignored bigint NOT NULL DEFAULT 0;

-- Two-way: the value of each shared field both sides last agreed on (what
-- a conflict started from).
CREATE TABLE hlx.hlx_shared_value (
    mapping text NOT NULL,
    row_key text NOT NULL,
    field   text NOT NULL,
    value   text,
    PRIMARY KEY (mapping, row_key, field)
);
COMMENT ON TABLE hlx.hlx_shared_value IS 'hlx 双向交换：共有字段上次双方一致的值';
