-- The source watermark each row had when hlx last processed it (see the
-- PostgreSQL migration of the same number).
ALTER TABLE hlx_row_state ADD COLUMN source_wm VARCHAR(100) NULL;
