-- Rows written with a partner code that fell back to its nearest ancestor's
-- 'other' (99) classification (fallback = "other" on a code set).
ALTER TABLE hlx_run ADD COLUMN fallbacks bigint NOT NULL DEFAULT 0;
