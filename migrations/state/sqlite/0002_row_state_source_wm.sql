-- The source watermark each row had when hlx last processed it.
ALTER TABLE hlx_row_state ADD COLUMN source_wm TEXT;
