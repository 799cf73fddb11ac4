#!/usr/bin/env bash
# Runs the shared peer benchmark with hlx beside the peers.
#
#   bench/run.sh [N]                          # N rows per source, default 200000
#   TOOLS="copy sling hlx" bench/run.sh 1000000
#
# Builds target/release/hlx, copies the harness (BENCH_SRC, default
# /work/shared/bench) into bench/work/ (gitignored), puts run_hlx.sh beside it
# and runs `./bench.sh N` there with TOOLS (default "copy sling dlt hlx").
# Every other knob of bench.sh passes through the environment (SOURCES, SEED,
# MUT_SEED, RUN_TIMEOUT, LATE, BENCH_TZ, RESULTS_TAG). Results land in
# bench/work/results-N[-TAG].tsv and bench/work/logs/N[-TAG]/.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH/.." && pwd)"
SRC="${BENCH_SRC:-/work/shared/bench}"
WORK="$BENCH/work"
N="${1:-${N:-200000}}"

echo "[run] cargo build --release" >&2
(cd "$REPO" && cargo build --release --quiet)
export HLX_BIN="$REPO/target/release/hlx"
"$HLX_BIN" --version >&2

mkdir -p "$WORK"
# The harness files (not its .venv/, data/, state/, logs/, which stay in work/,
# nor its published results-*.tsv, which our runs would overwrite).
for f in "$SRC"/* "$SRC"/.gitignore; do
  [ -f "$f" ] || continue
  case "$(basename "$f")" in results-*.tsv) continue ;; esac
  cp -f "$f" "$WORK/"
  chmod u+w "$WORK/$(basename "$f")"
done
cp -f "$BENCH/run_hlx.sh" "$WORK/run_hlx.sh"
chmod +x "$WORK"/*.sh "$WORK"/*.py

cd "$WORK"
export TOOLS="${TOOLS:-copy sling dlt hlx}"
echo "[run] TOOLS=\"$TOOLS\" ./bench.sh $N  (in $WORK)" >&2
exec ./bench.sh "$N"
