-- Row keys compare byte by byte (COLLATE "C"). Keys are only ever looked up
-- by equality, which is byte equality under every deterministic collation,
-- so nothing changes in what matches; but the index on (mapping_id, row_key)
-- no longer calls the locale's strcoll on every comparison, which made a
-- first load's checksum COPY about 15% slower (bench/README.md). The column
-- and its index are rewritten once.
ALTER TABLE hlx.hlx_row_state ALTER COLUMN row_key TYPE text COLLATE "C";
