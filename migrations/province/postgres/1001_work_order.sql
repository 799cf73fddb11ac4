-- The provincial work order (工单), DOMAIN.md. Times are timestamptz.
CREATE TABLE work_order (
    order_no            varchar(64)  PRIMARY KEY,
    source_system       varchar(32)  NOT NULL,
    source_order_no     varchar(64),
    channel             varchar(8),
    appeal_type         varchar(8),
    appellant_type      varchar(4),
    category_code       varchar(32),
    title               varchar(200),
    content             text NOT NULL,
    call_time           timestamptz,
    accept_time         timestamptz,
    caller_phone        varchar(512),
    caller_phone_masked varchar(32),
    appellant_name      varchar(256),
    id_number           varchar(512),
    is_confidential     boolean NOT NULL DEFAULT false,
    division_code       varchar(6),
    incident_address    varchar(500),
    urgency             varchar(2),
    handling_unit_code  varchar(64),
    handling_unit_name  varchar(200),
    time_limit_days     integer,
    deadline            timestamptz,
    status              varchar(4),
    finish_time         timestamptz,
    result              text,
    satisfaction        varchar(2),
    updated_at          timestamptz,
    UNIQUE (source_system, source_order_no)
);
CREATE INDEX work_order_status ON work_order (status);
CREATE INDEX work_order_call_time ON work_order (call_time);
COMMENT ON TABLE work_order IS '工单（业务汇聚）';
COMMENT ON COLUMN work_order.order_no IS '工单编号';
COMMENT ON COLUMN work_order.source_system IS '来源系统（交换伙伴）';
COMMENT ON COLUMN work_order.source_order_no IS '来源工单编号';
COMMENT ON COLUMN work_order.channel IS '诉求渠道（C1）';
COMMENT ON COLUMN work_order.appeal_type IS '诉求类型（C2）';
COMMENT ON COLUMN work_order.appellant_type IS '诉求人类型（C3）';
COMMENT ON COLUMN work_order.category_code IS '诉求事项分类（广东标准编码）';
COMMENT ON COLUMN work_order.content IS '诉求内容';
COMMENT ON COLUMN work_order.call_time IS '来电时间';
COMMENT ON COLUMN work_order.accept_time IS '受理时间';
COMMENT ON COLUMN work_order.caller_phone IS '来电号码（加密或脱敏）';
COMMENT ON COLUMN work_order.caller_phone_masked IS '来电号码（脱敏显示）';
COMMENT ON COLUMN work_order.appellant_name IS '诉求人姓名（加密或脱敏）';
COMMENT ON COLUMN work_order.id_number IS '证件号码（加密或脱敏）';
COMMENT ON COLUMN work_order.is_confidential IS '保密件';
COMMENT ON COLUMN work_order.division_code IS '行政区划（GB/T 2260）';
COMMENT ON COLUMN work_order.incident_address IS '事发地址';
COMMENT ON COLUMN work_order.urgency IS '紧急程度（C7）';
COMMENT ON COLUMN work_order.handling_unit_code IS '承办单位编码';
COMMENT ON COLUMN work_order.handling_unit_name IS '承办单位名称';
COMMENT ON COLUMN work_order.deadline IS '办理期限';
COMMENT ON COLUMN work_order.status IS '工单状态（C4）';
COMMENT ON COLUMN work_order.finish_time IS '办结时间';
COMMENT ON COLUMN work_order.result IS '办理结果';
COMMENT ON COLUMN work_order.satisfaction IS '满意度（C6）';
COMMENT ON COLUMN work_order.updated_at IS '更新时间';
