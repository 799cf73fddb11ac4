#!/usr/bin/env bash
# The first idle poll after a delta, again and again: what S3 of the shared
# benchmark measures once per run, measured ROUNDS times on the tables a
# finished `bench/run.sh N` left behind.
#
#   bench/s3.sh [SOURCE] [ROUNDS]        # SOURCE postgres (default) or mariadb
#
# Each round does what bench.sh does between S2 and S3 for hlx: a mutation
# round (mutate.py: 1% of rows updated, 0.5% inserted), an hlx run that takes
# the delta (S2), the harness's verify.py over source and target, a
# CHECKPOINT, then the timed idle run (S3: run_hlx.sh under /usr/bin/time, as
# bench.sh times it). It prints both wall times and, from the idle run's
# debug log, how long its look-back probe took. Every round grows the source
# table by 0.5%.
#
# Needs bench/work/ from an earlier `bench/run.sh N` (data loaded, hlx state
# present) and HLX_BIN or bench/work/bin/hlx.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$BENCH/work"
SRC="${1:-postgres}"
ROUNDS="${2:-5}"
case "$SRC" in
  postgres) CITY=sanya ;;
  mariadb) CITY=haikou ;;
  *) echo "s3.sh: unknown source $SRC (postgres or mariadb)" >&2; exit 2 ;;
esac
[ -x "$WORK/run_hlx.sh" ] || { echo "s3.sh: run bench/run.sh first ($WORK/run_hlx.sh missing)" >&2; exit 2; }
export HLX_BIN="${HLX_BIN:-$WORK/bin/hlx}"
cd "$WORK"
. ./bench.env
PY="$WORK/.venv/bin/python"
SCHEMA="hlx_$CITY"
LOGS="$WORK/logs/s3"
mkdir -p "$LOGS"
secs() { awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }' <<<"$1"; }
wall() { secs "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$1")"; }

printf 'round\tS2_wall_s\tS3_wall_s\tS3_probe_ms\tS3_rss_mb\n'
for r in $(seq "$ROUNDS"); do
  "$PY" mutate.py --source "$SRC" --seed "$((1000 + r + $(date +%s) % 100000))" > /dev/null
  su postgres -c "psql -X -q -p $PG_PORT -d $PG_TGT_DB -c CHECKPOINT" > /dev/null 2>&1 || true
  /usr/bin/time -v -o "$LOGS/S2-$r.time" ./run_hlx.sh "$SRC" "$SCHEMA" sync > "$LOGS/S2-$r.log" 2>&1
  "$PY" verify.py "$SRC" "$SCHEMA" > /dev/null 2>> "$LOGS/S2-$r.log"
  su postgres -c "psql -X -q -p $PG_PORT -d $PG_TGT_DB -c CHECKPOINT" > /dev/null 2>&1 || true
  HLX_LOG="warn,hotline_exchange=debug" /usr/bin/time -v -o "$LOGS/S3-$r.time" \
    ./run_hlx.sh "$SRC" "$SCHEMA" sync > "$LOGS/S3-$r.log" 2>&1
  probe="$(sed -n 's/.*look-back probe ms=\([0-9]*\).*/\1/p' "$LOGS/S3-$r.log" | head -n 1)"
  rss="$(awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }' "$LOGS/S3-$r.time")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$(wall "$LOGS/S2-$r.time")" "$(wall "$LOGS/S3-$r.time")" "${probe:--}" "$rss"
done
