-- The source watermark each row had when hlx last processed it, so that a
-- poll can probe the look-back window by (key, watermark) and fetch only the
-- row versions it has not seen.
ALTER TABLE hlx.hlx_row_state ADD COLUMN source_wm text;
