-- The rest of the default provincial schema (DOMAIN.md): flow events, call-back
-- visits, the knowledge base, the registry of merged hotlines and the Guangdong
-- appeal classification. No foreign keys: partners sometimes deliver a flow
-- event or a visit before its work order, and the exchange must not refuse it.
-- Times are timestamptz.

-- 业务协同：工单流转记录（派单、签收、退回、延期、办结反馈、督办、催办、回访……）
CREATE TABLE work_order_flow (
    flow_id        varchar(64)  PRIMARY KEY,
    order_no       varchar(64)  NOT NULL,
    seq_no         integer,
    action         varchar(4)   NOT NULL,
    action_time    timestamptz,
    from_unit      varchar(200),
    to_unit        varchar(200),
    opinion        text,
    reason_code    varchar(4),
    extend_days    integer,
    new_deadline   timestamptz,
    source_system  varchar(32)  NOT NULL,
    source_flow_id varchar(64),
    updated_at     timestamptz,
    UNIQUE (source_system, source_flow_id)
);
CREATE INDEX work_order_flow_order ON work_order_flow (order_no, seq_no);
CREATE INDEX work_order_flow_action_time ON work_order_flow (action, action_time);
CREATE INDEX work_order_flow_updated_at ON work_order_flow (updated_at);
COMMENT ON TABLE work_order_flow IS '工单流转记录（业务协同，一个事件一行）';
COMMENT ON COLUMN work_order_flow.flow_id IS '流转记录编号';
COMMENT ON COLUMN work_order_flow.order_no IS '工单编号';
COMMENT ON COLUMN work_order_flow.seq_no IS '流转序号';
COMMENT ON COLUMN work_order_flow.action IS '流转动作（C5）';
COMMENT ON COLUMN work_order_flow.action_time IS '动作时间';
COMMENT ON COLUMN work_order_flow.from_unit IS '发起单位';
COMMENT ON COLUMN work_order_flow.to_unit IS '接收单位';
COMMENT ON COLUMN work_order_flow.opinion IS '意见（退回理由、延期理由、办理结果、督办要求等）';
COMMENT ON COLUMN work_order_flow.reason_code IS '退回原因（C8）';
COMMENT ON COLUMN work_order_flow.extend_days IS '申请延期天数';
COMMENT ON COLUMN work_order_flow.new_deadline IS '新办理期限';
COMMENT ON COLUMN work_order_flow.source_system IS '来源系统（交换伙伴）';
COMMENT ON COLUMN work_order_flow.source_flow_id IS '来源流转记录编号';
COMMENT ON COLUMN work_order_flow.updated_at IS '更新时间';

-- 回访
CREATE TABLE callback_visit (
    visit_id        varchar(64)  PRIMARY KEY,
    order_no        varchar(64)  NOT NULL,
    visit_round     integer,
    visit_time      timestamptz,
    visit_mode      varchar(16),
    contact_result  varchar(16),
    resolved        boolean,
    satisfaction    varchar(2),
    note            text,
    need_redo       boolean NOT NULL DEFAULT false,
    source_system   varchar(32)  NOT NULL,
    source_visit_id varchar(64),
    updated_at      timestamptz,
    UNIQUE (source_system, source_visit_id)
);
CREATE INDEX callback_visit_order ON callback_visit (order_no, visit_round);
CREATE INDEX callback_visit_visit_time ON callback_visit (visit_time);
CREATE INDEX callback_visit_updated_at ON callback_visit (updated_at);
COMMENT ON TABLE callback_visit IS '回访记录';
COMMENT ON COLUMN callback_visit.visit_id IS '回访记录编号';
COMMENT ON COLUMN callback_visit.order_no IS '工单编号';
COMMENT ON COLUMN callback_visit.visit_round IS '回访轮次';
COMMENT ON COLUMN callback_visit.visit_time IS '回访时间';
COMMENT ON COLUMN callback_visit.visit_mode IS '回访方式（电话、短信、网络等）';
COMMENT ON COLUMN callback_visit.contact_result IS '联系结果（接通、未接通、拒访等）';
COMMENT ON COLUMN callback_visit.resolved IS '问题是否解决';
COMMENT ON COLUMN callback_visit.satisfaction IS '满意度（C6）';
COMMENT ON COLUMN callback_visit.note IS '回访情况说明';
COMMENT ON COLUMN callback_visit.need_redo IS '是否需要重办';
COMMENT ON COLUMN callback_visit.source_system IS '来源系统（交换伙伴）';
COMMENT ON COLUMN callback_visit.source_visit_id IS '来源回访记录编号';
COMMENT ON COLUMN callback_visit.updated_at IS '更新时间';

-- 知识库协同
CREATE TABLE knowledge_article (
    article_id        varchar(64)  PRIMARY KEY,
    title             varchar(500) NOT NULL,
    content           text,
    category_path     varchar(500),
    material_type     varchar(32),
    keywords          varchar(500),
    issuing_unit      varchar(200),
    doc_number        varchar(100),
    division_code     varchar(6),
    effective_date    date,
    expire_date       date,
    status            varchar(16),
    source_system     varchar(32)  NOT NULL,
    source_article_id varchar(64),
    updated_at        timestamptz,
    UNIQUE (source_system, source_article_id)
);
CREATE INDEX knowledge_article_updated_at ON knowledge_article (updated_at);
CREATE INDEX knowledge_article_status ON knowledge_article (status);
COMMENT ON TABLE knowledge_article IS '知识库条目（知识库协同）';
COMMENT ON COLUMN knowledge_article.article_id IS '知识条目编号';
COMMENT ON COLUMN knowledge_article.title IS '标题';
COMMENT ON COLUMN knowledge_article.content IS '正文';
COMMENT ON COLUMN knowledge_article.category_path IS '知识分类路径';
COMMENT ON COLUMN knowledge_article.material_type IS '材料类型（政策文件、问答、办事指南等）';
COMMENT ON COLUMN knowledge_article.keywords IS '关键词';
COMMENT ON COLUMN knowledge_article.issuing_unit IS '发布单位';
COMMENT ON COLUMN knowledge_article.doc_number IS '文号';
COMMENT ON COLUMN knowledge_article.division_code IS '适用行政区划（GB/T 2260）';
COMMENT ON COLUMN knowledge_article.effective_date IS '生效日期';
COMMENT ON COLUMN knowledge_article.expire_date IS '失效日期';
COMMENT ON COLUMN knowledge_article.status IS '状态（draft 草稿、review 审核中、published 已发布、withdrawn 已撤回、expired 已失效）';
COMMENT ON COLUMN knowledge_article.source_system IS '来源系统（交换伙伴）';
COMMENT ON COLUMN knowledge_article.source_article_id IS '来源知识条目编号';
COMMENT ON COLUMN knowledge_article.updated_at IS '更新时间';

-- 热线登记（归并热线名录）
CREATE TABLE hotline (
    hotline_code     varchar(32)  PRIMARY KEY,
    name             varchar(200) NOT NULL,
    service_number   varchar(32)  NOT NULL,
    department       varchar(200),
    kind             varchar(32)  NOT NULL,
    integration_mode varchar(32),
    exchange_mode    varchar(16),
    enabled          boolean NOT NULL DEFAULT true,
    note             text
);
CREATE INDEX hotline_service_number ON hotline (service_number);
COMMENT ON TABLE hotline IS '热线登记（归并热线名录）';
COMMENT ON COLUMN hotline.hotline_code IS '热线编码';
COMMENT ON COLUMN hotline.name IS '热线名称';
COMMENT ON COLUMN hotline.service_number IS '服务号码（12345、12315、12333、110 等）';
COMMENT ON COLUMN hotline.department IS '主管部门';
COMMENT ON COLUMN hotline.kind IS '热线类别（province_platform 省级平台、city_platform 市级平台、department_line 部门热线、emergency_line 紧急热线）';
COMMENT ON COLUMN hotline.integration_mode IS '整合方式（keep_number_interconnect 保留号码、互联互通；keep_number_parallel 保留号码、双号并行；merged 整合归并；emergency_linkage 紧急联动）';
COMMENT ON COLUMN hotline.exchange_mode IS '交换方式（push 单向推送、receive 单向接收、two-way 双向交换）';
COMMENT ON COLUMN hotline.enabled IS '是否启用';
COMMENT ON COLUMN hotline.note IS '备注';

-- 诉求事项分类（广东标准）
CREATE TABLE appeal_category (
    code        varchar(32)  PRIMARY KEY,
    level       smallint     NOT NULL,
    parent_code varchar(32),
    name        varchar(200) NOT NULL,
    is_other    boolean NOT NULL DEFAULT false,
    is_leaf     boolean NOT NULL DEFAULT true
);
CREATE INDEX appeal_category_parent ON appeal_category (parent_code);
COMMENT ON TABLE appeal_category IS '诉求事项分类（广东标准编码）';
COMMENT ON COLUMN appeal_category.code IS '分类编码（10 位基本码，六级及以上以 Z 连接）';
COMMENT ON COLUMN appeal_category.level IS '分类级别';
COMMENT ON COLUMN appeal_category.parent_code IS '上级分类编码';
COMMENT ON COLUMN appeal_category.name IS '分类名称';
COMMENT ON COLUMN appeal_category.is_other IS '是否“其他”收容项（代码 99）';
COMMENT ON COLUMN appeal_category.is_leaf IS '是否末级分类';

-- work_order: the indexes the exchange (watermark reads) and reports need, and
-- the two column comments 1001 left out.
CREATE INDEX work_order_updated_at ON work_order (updated_at);
CREATE INDEX work_order_source_updated_at ON work_order (source_system, updated_at);
CREATE INDEX work_order_division ON work_order (division_code);
COMMENT ON COLUMN work_order.title IS '标题';
COMMENT ON COLUMN work_order.time_limit_days IS '办理时限（天）';
