#!/usr/bin/env bash
# Installs (idempotently, cached) mongosh and the Node.js `mongodb` driver into .work/node, used by
# tests/python/test_mongosh.py. Needs node >= 18 and npm; bounded by a 10-minute timeout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.work/node"
MONGOSH_VERSION="2.12.0"
NODE_DRIVER_VERSION="7.9.0"
want="mongosh@$MONGOSH_VERSION mongodb@$NODE_DRIVER_VERSION node-$(node --version)"

if [[ -x "$PREFIX/node_modules/.bin/mongosh" && -f "$PREFIX/.eddy-stamp" && "$(cat "$PREFIX/.eddy-stamp")" == "$want" ]]; then
    echo "setup-node: up to date ($PREFIX: $want)"
else
    echo "setup-node: installing $want into $PREFIX"
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    timeout 600 npm install --prefix "$PREFIX" --no-audit --no-fund --no-update-notifier --loglevel=error \
        "mongosh@$MONGOSH_VERSION" "mongodb@$NODE_DRIVER_VERSION"
    echo "$want" >"$PREFIX/.eddy-stamp"
fi
echo "setup-node: mongosh $(timeout 60 "$PREFIX/node_modules/.bin/mongosh" --version), node driver $(node -p "require('$PREFIX/node_modules/mongodb/package.json').version")"
