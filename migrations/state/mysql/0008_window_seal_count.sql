-- The seal of the look-back window now leads with the number of pairs it
-- covers (`<pairs>:<64 hex digits>`, src/window.rs), longer than the 64
-- characters 0007 gave it. Seals written before read as none: the next poll
-- looks its window up once and seals it anew.
ALTER TABLE hlx_watermark MODIFY COLUMN window_seal VARCHAR(96) NULL;
