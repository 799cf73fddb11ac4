-- Keyed hashes (hash = "hmac-sm3") of personal values, for equality look-ups
-- without the plain value: `hlx hash --mapping M --field caller_phone_hash 138…`.
ALTER TABLE work_order ADD COLUMN caller_phone_hash TEXT;  -- 来电号码摘要（HMAC-SM3）
ALTER TABLE work_order ADD COLUMN id_number_hash TEXT;     -- 证件号码摘要（HMAC-SM3）
CREATE INDEX work_order_caller_phone_hash ON work_order (caller_phone_hash);
CREATE INDEX work_order_id_number_hash ON work_order (id_number_hash);
