-- The rest of the default provincial schema (DOMAIN.md): flow events, call-back
-- visits, the knowledge base, the registry of merged hotlines and the Guangdong
-- appeal classification. No foreign keys: partners sometimes deliver a flow
-- event or a visit before its work order, and the exchange must not refuse it.
-- DATETIME(6) columns hold wall-clock time in the province's zone.
CREATE TABLE work_order_flow (
    flow_id        VARCHAR(64)  NOT NULL PRIMARY KEY COMMENT '流转记录编号',
    order_no       VARCHAR(64)  NOT NULL COMMENT '工单编号',
    seq_no         INT          COMMENT '流转序号',
    action         VARCHAR(4)   NOT NULL COMMENT '流转动作（C5）',
    action_time    DATETIME(6)  COMMENT '动作时间',
    from_unit      VARCHAR(200) COMMENT '发起单位',
    to_unit        VARCHAR(200) COMMENT '接收单位',
    opinion        TEXT         COMMENT '意见（退回理由、延期理由、办理结果、督办要求等）',
    reason_code    VARCHAR(4)   COMMENT '退回原因（C8）',
    extend_days    INT          COMMENT '申请延期天数',
    new_deadline   DATETIME(6)  COMMENT '新办理期限',
    source_system  VARCHAR(32)  NOT NULL COMMENT '来源系统（交换伙伴）',
    source_flow_id VARCHAR(64)  COMMENT '来源流转记录编号',
    updated_at     DATETIME(6)  COMMENT '更新时间',
    UNIQUE KEY work_order_flow_source (source_system, source_flow_id),
    INDEX work_order_flow_order (order_no, seq_no),
    INDEX work_order_flow_action_time (action, action_time),
    INDEX work_order_flow_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='工单流转记录（业务协同，一个事件一行）';

CREATE TABLE callback_visit (
    visit_id        VARCHAR(64)  NOT NULL PRIMARY KEY COMMENT '回访记录编号',
    order_no        VARCHAR(64)  NOT NULL COMMENT '工单编号',
    visit_round     INT          COMMENT '回访轮次',
    visit_time      DATETIME(6)  COMMENT '回访时间',
    visit_mode      VARCHAR(16)  COMMENT '回访方式（电话、短信、网络等）',
    contact_result  VARCHAR(16)  COMMENT '联系结果（接通、未接通、拒访等）',
    resolved        BOOLEAN      COMMENT '问题是否解决',
    satisfaction    VARCHAR(2)   COMMENT '满意度（C6）',
    note            TEXT         COMMENT '回访情况说明',
    need_redo       BOOLEAN NOT NULL DEFAULT FALSE COMMENT '是否需要重办',
    source_system   VARCHAR(32)  NOT NULL COMMENT '来源系统（交换伙伴）',
    source_visit_id VARCHAR(64)  COMMENT '来源回访记录编号',
    updated_at      DATETIME(6)  COMMENT '更新时间',
    UNIQUE KEY callback_visit_source (source_system, source_visit_id),
    INDEX callback_visit_order (order_no, visit_round),
    INDEX callback_visit_visit_time (visit_time),
    INDEX callback_visit_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='回访记录';

CREATE TABLE knowledge_article (
    article_id        VARCHAR(64)  NOT NULL PRIMARY KEY COMMENT '知识条目编号',
    title             VARCHAR(500) NOT NULL COMMENT '标题',
    content           MEDIUMTEXT   COMMENT '正文',
    category_path     VARCHAR(500) COMMENT '知识分类路径',
    material_type     VARCHAR(32)  COMMENT '材料类型（政策文件、问答、办事指南等）',
    keywords          VARCHAR(500) COMMENT '关键词',
    issuing_unit      VARCHAR(200) COMMENT '发布单位',
    doc_number        VARCHAR(100) COMMENT '文号',
    division_code     VARCHAR(6)   COMMENT '适用行政区划（GB/T 2260）',
    effective_date    DATE         COMMENT '生效日期',
    expire_date       DATE         COMMENT '失效日期',
    status            VARCHAR(16)  COMMENT '状态（draft 草稿、review 审核中、published 已发布、withdrawn 已撤回、expired 已失效）',
    source_system     VARCHAR(32)  NOT NULL COMMENT '来源系统（交换伙伴）',
    source_article_id VARCHAR(64)  COMMENT '来源知识条目编号',
    updated_at        DATETIME(6)  COMMENT '更新时间',
    UNIQUE KEY knowledge_article_source (source_system, source_article_id),
    INDEX knowledge_article_updated_at (updated_at),
    INDEX knowledge_article_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='知识库条目（知识库协同）';

CREATE TABLE hotline (
    hotline_code     VARCHAR(32)  NOT NULL PRIMARY KEY COMMENT '热线编码',
    name             VARCHAR(200) NOT NULL COMMENT '热线名称',
    service_number   VARCHAR(32)  NOT NULL COMMENT '服务号码（12345、12315、12333、110 等）',
    department       VARCHAR(200) COMMENT '主管部门',
    kind             VARCHAR(32)  NOT NULL COMMENT '热线类别（province_platform 省级平台、city_platform 市级平台、department_line 部门热线、emergency_line 紧急热线）',
    integration_mode VARCHAR(32)  COMMENT '整合方式（keep_number_interconnect 保留号码、互联互通；keep_number_parallel 保留号码、双号并行；merged 整合归并；emergency_linkage 紧急联动）',
    exchange_mode    VARCHAR(16)  COMMENT '交换方式（push 单向推送、receive 单向接收、two-way 双向交换）',
    enabled          BOOLEAN NOT NULL DEFAULT TRUE COMMENT '是否启用',
    note             TEXT         COMMENT '备注',
    INDEX hotline_service_number (service_number)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='热线登记（归并热线名录）';

CREATE TABLE appeal_category (
    code        VARCHAR(32)  NOT NULL PRIMARY KEY COMMENT '分类编码（10 位基本码，六级及以上以 Z 连接）',
    level       SMALLINT     NOT NULL COMMENT '分类级别',
    parent_code VARCHAR(32)  COMMENT '上级分类编码',
    name        VARCHAR(200) NOT NULL COMMENT '分类名称',
    is_other    BOOLEAN NOT NULL DEFAULT FALSE COMMENT '是否“其他”收容项（代码 99）',
    is_leaf     BOOLEAN NOT NULL DEFAULT TRUE COMMENT '是否末级分类',
    INDEX appeal_category_parent (parent_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='诉求事项分类（广东标准编码）';

-- work_order: the indexes the exchange (watermark reads) and reports need.
CREATE INDEX work_order_updated_at ON work_order (updated_at);
CREATE INDEX work_order_source_updated_at ON work_order (source_system, updated_at);
CREATE INDEX work_order_division ON work_order (division_code);
