-- The rest of the default provincial schema (DOMAIN.md): flow events, call-back
-- visits, the knowledge base, the registry of merged hotlines and the Guangdong
-- appeal classification. No foreign keys: partners sometimes deliver a flow
-- event or a visit before its work order, and the exchange must not refuse it.
-- Times are ISO-8601 text with offset (declared TIMESTAMPTZ, as in 1001).

-- 工单流转记录（业务协同，一个事件一行）
CREATE TABLE work_order_flow (
    flow_id        TEXT PRIMARY KEY,            -- 流转记录编号
    order_no       TEXT NOT NULL,               -- 工单编号
    seq_no         INTEGER,                     -- 流转序号
    action         TEXT NOT NULL,               -- 流转动作 C5
    action_time    TIMESTAMPTZ,                 -- 动作时间
    from_unit      TEXT,                        -- 发起单位
    to_unit        TEXT,                        -- 接收单位
    opinion        TEXT,                        -- 意见（退回理由、延期理由、办理结果、督办要求等）
    reason_code    TEXT,                        -- 退回原因 C8
    extend_days    INTEGER,                     -- 申请延期天数
    new_deadline   TIMESTAMPTZ,                 -- 新办理期限
    source_system  TEXT NOT NULL,               -- 来源系统（交换伙伴）
    source_flow_id TEXT,                        -- 来源流转记录编号
    updated_at     TIMESTAMPTZ,                 -- 更新时间
    UNIQUE (source_system, source_flow_id)
);
CREATE INDEX work_order_flow_order ON work_order_flow (order_no, seq_no);
CREATE INDEX work_order_flow_action_time ON work_order_flow (action, action_time);
CREATE INDEX work_order_flow_updated_at ON work_order_flow (updated_at);

-- 回访记录
CREATE TABLE callback_visit (
    visit_id        TEXT PRIMARY KEY,           -- 回访记录编号
    order_no        TEXT NOT NULL,              -- 工单编号
    visit_round     INTEGER,                    -- 回访轮次
    visit_time      TIMESTAMPTZ,                -- 回访时间
    visit_mode      TEXT,                       -- 回访方式（电话、短信、网络等）
    contact_result  TEXT,                       -- 联系结果（接通、未接通、拒访等）
    resolved        BOOLEAN,                    -- 问题是否解决
    satisfaction    TEXT,                       -- 满意度 C6
    note            TEXT,                       -- 回访情况说明
    need_redo       BOOLEAN NOT NULL DEFAULT 0, -- 是否需要重办
    source_system   TEXT NOT NULL,              -- 来源系统（交换伙伴）
    source_visit_id TEXT,                       -- 来源回访记录编号
    updated_at      TIMESTAMPTZ,                -- 更新时间
    UNIQUE (source_system, source_visit_id)
);
CREATE INDEX callback_visit_order ON callback_visit (order_no, visit_round);
CREATE INDEX callback_visit_visit_time ON callback_visit (visit_time);
CREATE INDEX callback_visit_updated_at ON callback_visit (updated_at);

-- 知识库条目（知识库协同）
CREATE TABLE knowledge_article (
    article_id        TEXT PRIMARY KEY,         -- 知识条目编号
    title             TEXT NOT NULL,            -- 标题
    content           TEXT,                     -- 正文
    category_path     TEXT,                     -- 知识分类路径
    material_type     TEXT,                     -- 材料类型（政策文件、问答、办事指南等）
    keywords          TEXT,                     -- 关键词
    issuing_unit      TEXT,                     -- 发布单位
    doc_number        TEXT,                     -- 文号
    division_code     TEXT,                     -- 适用行政区划（GB/T 2260）
    effective_date    DATE,                     -- 生效日期
    expire_date       DATE,                     -- 失效日期
    status            TEXT,                     -- 状态：draft 草稿、review 审核中、published 已发布、withdrawn 已撤回、expired 已失效
    source_system     TEXT NOT NULL,            -- 来源系统（交换伙伴）
    source_article_id TEXT,                     -- 来源知识条目编号
    updated_at        TIMESTAMPTZ,              -- 更新时间
    UNIQUE (source_system, source_article_id)
);
CREATE INDEX knowledge_article_updated_at ON knowledge_article (updated_at);
CREATE INDEX knowledge_article_status ON knowledge_article (status);

-- 热线登记（归并热线名录）
CREATE TABLE hotline (
    hotline_code     TEXT PRIMARY KEY,          -- 热线编码
    name             TEXT NOT NULL,             -- 热线名称
    service_number   TEXT NOT NULL,             -- 服务号码（12345、12315、12333、110 等）
    department       TEXT,                      -- 主管部门
    kind             TEXT NOT NULL,             -- 热线类别：province_platform、city_platform、department_line、emergency_line
    integration_mode TEXT,                      -- 整合方式：keep_number_interconnect、keep_number_parallel、merged、emergency_linkage
    exchange_mode    TEXT,                      -- 交换方式：push、receive、two-way
    enabled          BOOLEAN NOT NULL DEFAULT 1, -- 是否启用
    note             TEXT                       -- 备注
);
CREATE INDEX hotline_service_number ON hotline (service_number);

-- 诉求事项分类（广东标准编码）
CREATE TABLE appeal_category (
    code        TEXT PRIMARY KEY,               -- 分类编码（10 位基本码，六级及以上以 Z 连接）
    level       INTEGER NOT NULL,               -- 分类级别
    parent_code TEXT,                           -- 上级分类编码
    name        TEXT NOT NULL,                  -- 分类名称
    is_other    BOOLEAN NOT NULL DEFAULT 0,     -- 是否“其他”收容项（代码 99）
    is_leaf     BOOLEAN NOT NULL DEFAULT 1      -- 是否末级分类
);
CREATE INDEX appeal_category_parent ON appeal_category (parent_code);

-- work_order: the indexes the exchange (watermark reads) and reports need;
-- work_order_call_time is on the server engines since 1001.
CREATE INDEX work_order_updated_at ON work_order (updated_at);
CREATE INDEX work_order_source_updated_at ON work_order (source_system, updated_at);
CREATE INDEX work_order_division ON work_order (division_code);
CREATE INDEX work_order_call_time ON work_order (call_time);
