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
# Measure a snapshot of the binary, so a rebuild during the run (the tree is
# being edited) does not change what is measured half-way.
mkdir -p "$WORK/bin"
cp -f "$REPO/target/release/hlx" "$WORK/bin/hlx"
export HLX_BIN="$WORK/bin/hlx"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "hlx: $("$HLX_BIN" --version)"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock migrations 2>/dev/null || echo ' + uncommitted changes in src/')"
  echo "binary sha256: $(sha256sum "$HLX_BIN" | cut -d' ' -f1)"
  echo "rustc: $(rustc --version 2>/dev/null || echo unknown)"
} > "$WORK/bin/hlx-build.txt"
# The uncommitted part of what was built, if any, so a result can be traced.
git -C "$REPO" diff HEAD -- src Cargo.toml Cargo.lock migrations > "$WORK/bin/hlx-build.diff" 2>/dev/null || true
cat "$WORK/bin/hlx-build.txt" >&2

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
rc=0
./bench.sh "$N" || rc=$?
LOG="$WORK/logs/$N${RESULTS_TAG:+-$RESULTS_TAG}"
if [ -d "$LOG" ]; then
  cp -f "$WORK/bin/hlx-build.txt" "$LOG/hlx-build.txt"
  [ -s "$WORK/bin/hlx-build.diff" ] && cp -f "$WORK/bin/hlx-build.diff" "$LOG/hlx-build.diff"
fi
exit "$rc"
