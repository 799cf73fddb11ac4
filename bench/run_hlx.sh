#!/usr/bin/env bash
# hlx (this repository's exchange daemon) as a runner of the shared peer
# benchmark (/work/shared/bench, README "Add another tool").
#
#   run_hlx.sh SOURCE SCHEMA ACTION
#     SOURCE  mariadb  (haikou_stage.stg_gd_info)  or  postgres  (sanya_stage.public.stg_gd_info)
#     SCHEMA  target schema in the province database (table SCHEMA.stg_gd_info)
#     ACTION  reset  drop the target schema and hlx's state for this mapping
#             sync   one run: create the target table if missing, write the
#                    config and the mapping, then `hlx -c … run` (one-shot)
#
# This file is copied beside the harness (bench/work/) by bench/run.sh and
# sources bench.env from there. The hlx binary is $HLX_BIN, else the
# target/release/hlx of the repository this directory belongs to.
#
# Config and mapping go to $HERE/state/hlx/$SCHEMA/. hlx keeps its watermark,
# row checksums, runs and quarantine in schema `hlx` of the province database;
# the mapping name (<partner>.bench_<schema>) is unique per (source, schema).
# The mapping copies the 16 columns as they are (no `deleted` rule: the
# harness compares OP_FLAG as data).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/bench.env"
SOURCE="${1:?source: mariadb|postgres}"
SCHEMA="${2:?target schema}"
ACTION="${3:?action: reset|sync}"

if [ -z "${HLX_BIN:-}" ]; then
  for c in "$HERE/../../target/release/hlx" "$HERE/../target/release/hlx"; do
    [ -x "$c" ] && { HLX_BIN="$(cd "$(dirname "$c")" && pwd)/hlx"; break; }
  done
fi
[ -x "${HLX_BIN:-}" ] || { echo "run_hlx.sh: hlx binary not found (cargo build --release, or set HLX_BIN)" >&2; exit 2; }

case "$SCHEMA" in
  *[!a-z0-9_]*|"") echo "run_hlx.sh: schema '$SCHEMA': expected lower-case letters, digits, _" >&2; exit 2 ;;
esac
case "$SOURCE" in
  mariadb)  PARTNER=haikou; TITLE="海口市12345热线平台 (bench)"
            P_URL="mysql://$MY_USER@$MY_HOST:$MY_PORT/$MY_DB"; P_PASS_ENV=MY_PASS ;;
  postgres) PARTNER=sanya;  TITLE="三亚市12345热线平台 (bench)"
            P_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_SRC_DB"; P_PASS_ENV=PG_PASS ;;
  *) echo "run_hlx.sh: unknown source $SOURCE" >&2; exit 2 ;;
esac
MAPPING="$PARTNER.bench_$SCHEMA"
STATE="$HERE/state/hlx/$SCHEMA"
CFG="$STATE/exchange.toml"

tgt() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_TGT_DB" "$@"; }

write_config() {
  mkdir -p "$STATE/mappings"
  cat > "$CFG" <<TOML
# Written by run_hlx.sh for the peer benchmark ($SOURCE -> province.$SCHEMA).
[province]
url = "postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_TGT_DB"
password_env = "PG_PASS"

[defaults]
batch_size = 5000
lookback = "10m"
timezone = "+08:00"

[[partner]]
name = "$PARTNER"
title = "$TITLE"
url = "$P_URL"
password_env = "$P_PASS_ENV"

[mappings]
dir = "mappings"
TOML
  cat > "$STATE/mappings/bench.toml" <<TOML
# stg_gd_info copied column by column into province.$SCHEMA.stg_gd_info.
name = "$MAPPING"
partner = "$PARTNER"
direction = "pull"
title = "peer benchmark: $SOURCE -> $SCHEMA"

[source]
table = "stg_gd_info"
key = ["GDBH"]
watermark = "UPDATE_TIME"

[target]
table = "$SCHEMA.stg_gd_info"
key = ["gdbh"]

[fields]
gdbh        = "GDBH"
ldsj        = "LDSJ"
ldhm        = "LDHM"
qdlx        = "QDLX"
sqlx        = "SQLX"
sqfl        = "SQFL"
sqnr        = "SQNR"
sfdz        = "SFDZ"
xzqh        = "XZQH"
cbdw        = "CBDW"
gdzt        = "GDZT"
bjsj        = "BJSJ"
bljg        = "BLJG"
myd         = "MYD"
update_time = "UPDATE_TIME"
op_flag     = "OP_FLAG"
TOML
}

if [ "$ACTION" = reset ]; then
  tgt -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE"
  rm -f "$STATE/target-created"
  write_config
  # Watermark and row checksums, through hlx itself (creates schema hlx on first use).
  "$HLX_BIN" -c "$CFG" reset --mapping "$MAPPING" --rewrite --yes
  # The quarantine is not part of `hlx reset`; clear it for this mapping too.
  tgt -c "DO \$\$ BEGIN
    IF to_regclass('hlx.hlx_quarantine') IS NOT NULL THEN
      DELETE FROM hlx.hlx_quarantine WHERE mapping = '$MAPPING';
    END IF; END \$\$"
  # The peers' state goes with DROP SCHEMA; hlx's shares schema hlx with the
  # other mapping, so its rows are deleted instead. The benchmark cluster runs
  # with autovacuum = off: without this VACUUM every reset leaves the deleted
  # row checksums (N per source) as dead tuples that the next runs wade through.
  tgt -c "VACUUM hlx.hlx_row_state" -c "VACUUM hlx.hlx_watermark"
  exit 0
fi
[ "$ACTION" = sync ] || { echo "unknown action $ACTION" >&2; exit 2; }

# hlx does not create provincial tables (DBAs own that schema): the target is
# created here, in the timed run, the first time after a reset (S1), as the
# peers create theirs. Later syncs find the marker and run hlx alone.
if [ ! -f "$STATE/target-created" ]; then
  tgt <<SQL
CREATE SCHEMA IF NOT EXISTS $SCHEMA;
CREATE TABLE IF NOT EXISTS $SCHEMA.stg_gd_info (
  gdbh varchar(32) PRIMARY KEY, ldsj varchar(14), ldhm varchar(20), qdlx varchar(4), sqlx varchar(4),
  sqfl varchar(20), sqnr text, sfdz varchar(200), xzqh char(6), cbdw varchar(100), gdzt varchar(4),
  bjsj varchar(14), bljg text, myd varchar(2), update_time timestamp(6) NOT NULL, op_flag char(1));
SQL
  mkdir -p "$STATE" && touch "$STATE/target-created"
fi
write_config
exec "$HLX_BIN" -c "$CFG" run --mapping "$MAPPING"
