-- The seal of the look-back window (src/window.rs): a digest of the (key,
-- watermark) pairs the window held when every one of them was known to match
-- hlx_row_state. An idle poll whose probe finds the same pairs skips the
-- per-key state lookups. NULL whenever the position or the mapping's row
-- state changes after it was written.
ALTER TABLE hlx.hlx_watermark ADD COLUMN window_seal text;
