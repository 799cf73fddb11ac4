#!/usr/bin/env bash
# Checks deploy/hlx.service with systemd-analyze, without installing it:
# builds a throw-away root holding the unit, the hlx binary at the path the
# unit names, and the system's own units, then runs `verify` and prints the
# `security` exposure score.
#
#   deploy/verify-unit.sh [path/to/hlx]     (default: target/release/hlx, else target/debug/hlx)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
if [[ -z $bin ]]; then
    for b in "$here/../target/release/hlx" "$here/../target/debug/hlx"; do
        [[ -x $b ]] && { bin=$b; break; }
    done
fi
[[ -x ${bin:-} ]] || { echo "verify-unit: no hlx binary (build it first, or pass its path)" >&2; exit 2; }
command -v systemd-analyze >/dev/null || { echo "verify-unit: systemd-analyze is not installed" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$bin" "$root/usr/local/bin/hlx"
cp /bin/kill "$root/bin/kill"
cp "$here/hlx.service" "$root/etc/systemd/system/hlx.service"
systemd-analyze verify --root="$root" "$root/etc/systemd/system/hlx.service"
echo "systemd-analyze verify: ok"
systemd-analyze security --offline=yes --root="$root" hlx.service | tail -1
