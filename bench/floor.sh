#!/usr/bin/env bash
# What the province's PostgreSQL itself needs to take a first load, with no
# exchange tool in the way: the floor under any tool's S1 on this machine.
#
#   bench/floor.sh [SCHEMA]      # default hlx_sanya (a target hlx's S1 filled)
#
# Run it after a benchmark run (bench/run.sh), which leaves the harness in
# bench/work/ and a loaded target SCHEMA.stg_gd_info in database `province`.
# It exports that target's rows once, in the order hlx reads them
# (update_time, gdbh), to bench/work/data/floor-rows.copy, then times, each
# after a CHECKPOINT, with psql alone:
#
#   keyed x1    COPY of every row into an empty copy of the target table
#               (gdbh PRIMARY KEY), on one connection;
#   keyed x2    the same rows as two halves, on two connections at once;
#   state x1    COPY of one state row per source row (mapping id, key,
#               SHA-256, deleted, source watermark) into an empty copy of
#               hlx.hlx_row_state, on one connection;
#   both x1     keyed x1 and state x1 in one transaction, one connection:
#               what hlx's first load asks of the province, with no source
#               read and no mapping.
#
# Nothing here touches hlx's state or the harness's schemas; it works in a
# schema `floor` that it drops at the end.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$BENCH/work"
SCHEMA="${1:-hlx_sanya}"
[ -f "$WORK/bench.env" ] || { echo "floor.sh: $WORK/bench.env missing: run bench/run.sh first" >&2; exit 2; }
. "$WORK/bench.env"
case "$SCHEMA" in *[!a-z0-9_]*|"") echo "floor.sh: schema '$SCHEMA': expected lower-case letters, digits, _" >&2; exit 2 ;; esac

tgt() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_TGT_DB" "$@"; }
checkpoint() { su postgres -c "psql -X -q -p $PG_PORT -d $PG_TGT_DB -c CHECKPOINT" >/dev/null 2>&1 || true; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

ROWS="$WORK/data/floor-rows.copy"
STATE="$WORK/data/floor-state.copy"
mkdir -p "$WORK/data"
n="$(tgt -Atc "SELECT count(*) FROM $SCHEMA.stg_gd_info")"
[ "$n" -gt 0 ] || { echo "floor.sh: $SCHEMA.stg_gd_info is empty" >&2; exit 2; }
echo "[floor] exporting $n rows of $SCHEMA.stg_gd_info" >&2
tgt -c "\\copy (SELECT * FROM $SCHEMA.stg_gd_info ORDER BY update_time, gdbh) TO '$ROWS'"
tgt -c "\\copy (SELECT 999999, gdbh, sha256(convert_to(gdbh || sqnr, 'UTF8')), false, to_char(update_time, 'YYYY-MM-DD HH24:MI:SS.US') FROM $SCHEMA.stg_gd_info ORDER BY update_time, gdbh) TO '$STATE'"
half=$(( (n + 1) / 2 ))
head -n "$half" "$ROWS" > "$ROWS.1"
tail -n +"$((half + 1))" "$ROWS" > "$ROWS.2"

fresh() {
  tgt <<SQL
DROP SCHEMA IF EXISTS floor CASCADE;
CREATE SCHEMA floor;
CREATE TABLE floor.stg_gd_info (LIKE $SCHEMA.stg_gd_info INCLUDING ALL);
CREATE TABLE floor.row_state (LIKE hlx.hlx_row_state INCLUDING ALL);
SQL
  checkpoint
}

fresh
t0=$(now); tgt -c "\\copy floor.stg_gd_info FROM '$ROWS'"; t1=$(now)
keyed1=$(secs "$t0" "$t1")

fresh
t0=$(now)
tgt -c "\\copy floor.stg_gd_info FROM '$ROWS.1'" &
tgt -c "\\copy floor.stg_gd_info FROM '$ROWS.2'" &
wait
t1=$(now)
keyed2=$(secs "$t0" "$t1")

fresh
t0=$(now); tgt -c "\\copy floor.row_state FROM '$STATE'"; t1=$(now)
state1=$(secs "$t0" "$t1")

fresh
t0=$(now)
tgt -1 -c "\\copy floor.stg_gd_info FROM '$ROWS'" -c "\\copy floor.row_state FROM '$STATE'"
t1=$(now)
both1=$(secs "$t0" "$t1")

tgt -c "DROP SCHEMA floor CASCADE"
rm -f "$ROWS.1" "$ROWS.2"
printf '| load (psql alone, %s rows) | wall s |\n|---|---|\n' "$n"
printf '| keyed target, 1 connection | %s |\n' "$keyed1"
printf '| keyed target, 2 connections | %s |\n' "$keyed2"
printf '| state rows, 1 connection | %s |\n' "$state1"
printf '| keyed target + state rows, 1 transaction | %s |\n' "$both1"
