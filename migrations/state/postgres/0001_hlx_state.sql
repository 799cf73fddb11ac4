-- hlx's own state: mappings and their leases, watermarks, row checksums,
-- runs and the quarantine. Lives in schema hlx, apart from the provincial data.
CREATE SCHEMA IF NOT EXISTS hlx;

CREATE TABLE hlx.hlx_mapping (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    partner     text NOT NULL,
    lease_owner text,
    lease_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE hlx.hlx_mapping IS 'hlx 映射登记与运行租约';

CREATE TABLE hlx.hlx_watermark (
    mapping_id bigint PRIMARY KEY REFERENCES hlx.hlx_mapping (id),
    position   text NOT NULL,
    wm_text    text,
    updated_at timestamptz NOT NULL
);
COMMENT ON TABLE hlx.hlx_watermark IS 'hlx 水位线：已处理到的（水位值，主键）位置';

CREATE TABLE hlx.hlx_row_state (
    mapping_id bigint NOT NULL,
    row_key    text   NOT NULL,
    checksum   bytea  NOT NULL,
    deleted    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (mapping_id, row_key)
);
COMMENT ON TABLE hlx.hlx_row_state IS 'hlx 行校验和：映射后内容的 SHA-256，用于只传增量';

CREATE TABLE hlx.hlx_run (
    id             bigserial PRIMARY KEY,
    mapping        text NOT NULL,
    partner        text NOT NULL,
    direction      text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    status         text NOT NULL,
    batches        bigint NOT NULL DEFAULT 0,
    rows_read      bigint NOT NULL DEFAULT 0,
    inserted       bigint NOT NULL DEFAULT 0,
    updated        bigint NOT NULL DEFAULT 0,
    unchanged      bigint NOT NULL DEFAULT 0,
    deleted        bigint NOT NULL DEFAULT 0,
    rejected       bigint NOT NULL DEFAULT 0,
    null_watermark bigint NOT NULL DEFAULT 0,
    wm_from        text,
    wm_to          text,
    error          text
);
CREATE INDEX hlx_run_mapping_started ON hlx.hlx_run (mapping, started_at);
COMMENT ON TABLE hlx.hlx_run IS 'hlx 运行记录：每次运行的计数与结果';

CREATE TABLE hlx.hlx_quarantine (
    id          bigserial PRIMARY KEY,
    mapping     text NOT NULL,
    partner     text NOT NULL,
    row_key     text NOT NULL,
    raw         text NOT NULL,
    raw_digest  bytea NOT NULL,
    field       text,
    column_name text,
    rule        text NOT NULL,
    value       text,
    reason      text NOT NULL,
    status      text NOT NULL DEFAULT 'open',
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    run_id      bigint,
    attempts    bigint NOT NULL DEFAULT 1,
    UNIQUE (mapping, row_key)
);
CREATE INDEX hlx_quarantine_status ON hlx.hlx_quarantine (mapping, status);
COMMENT ON TABLE hlx.hlx_quarantine IS 'hlx 隔离区：映射失败的行、原始内容与原因';
