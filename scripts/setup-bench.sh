#!/usr/bin/env bash
# Installs the baselines `eddy bench` measures Eddy against, from Debian's packages, when missing:
#   redis-server  (Redis pub/sub: the speed reference, not durable)
#   postgresql    (PostgreSQL 15: LISTEN/NOTIFY from a trigger, durable; binaries in /usr/lib/postgresql/15/bin)
# Idempotent and quick when both are there. The bench starts its own instances on free loopback ports with
# temporary data directories, so the packages' own services are not needed: while installing, a temporary
# /usr/sbin/policy-rc.d keeps them from starting (unless the machine already has one).
set -euo pipefail

PG_BIN="${EDDY_BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" ]] || need+=(postgresql)

versions() {
    echo "setup-bench: $(redis-server --version 2>/dev/null | cut -d' ' -f1-3 || echo 'redis-server missing');" \
        "$("$PG_BIN/postgres" --version 2>/dev/null || echo "postgres missing from $PG_BIN")"
}

if ((${#need[@]} == 0)); then
    echo "setup-bench: up to date"
    versions
    exit 0
fi

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "setup-bench: need root (or sudo) to install ${need[*]}" >&2; exit 1; }
    sudo=(sudo)
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# written by eddy scripts/setup-bench.sh while installing; removed after\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
fi
cleanup() { ((made_policy)) && "${sudo[@]}" rm -f "$policy"; return 0; }
trap cleanup EXIT

echo "setup-bench: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
timeout 600 "${sudo[@]}" apt-get update -qq
timeout 900 "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
versions
