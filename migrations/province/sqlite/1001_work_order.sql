-- The provincial work order (工单), DOMAIN.md. Times are ISO-8601 text with offset.
CREATE TABLE work_order (
    order_no            TEXT PRIMARY KEY,       -- 工单编号
    source_system       TEXT NOT NULL,          -- 来源系统
    source_order_no     TEXT,                   -- 来源工单编号
    channel             TEXT,                   -- 诉求渠道 C1
    appeal_type         TEXT,                   -- 诉求类型 C2
    appellant_type      TEXT,                   -- 诉求人类型 C3
    category_code       TEXT,                   -- 诉求事项分类
    title               TEXT,
    content             TEXT NOT NULL,          -- 诉求内容
    call_time           TIMESTAMPTZ,            -- 来电时间
    accept_time         TIMESTAMPTZ,            -- 受理时间
    caller_phone        TEXT,
    caller_phone_masked TEXT,
    appellant_name      TEXT,
    id_number           TEXT,
    is_confidential     BOOLEAN NOT NULL DEFAULT 0,
    division_code       TEXT,                   -- 行政区划
    incident_address    TEXT,                   -- 事发地址
    urgency             TEXT,
    handling_unit_code  TEXT,
    handling_unit_name  TEXT,
    time_limit_days     INTEGER,
    deadline            TIMESTAMPTZ,
    status              TEXT,                   -- 工单状态 C4
    finish_time         TIMESTAMPTZ,            -- 办结时间
    result              TEXT,                   -- 办理结果
    satisfaction        TEXT,                   -- 满意度 C6
    updated_at          TIMESTAMPTZ,
    UNIQUE (source_system, source_order_no)
);
CREATE INDEX work_order_status ON work_order (status);
