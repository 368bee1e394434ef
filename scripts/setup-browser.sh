#!/usr/bin/env bash
# Installs Chromium from Debian's packages, when missing, for the browser test of the change-stream
# page (tests/python/test_sse_browser.py drives it headless over the DevTools protocol). Idempotent
# and quick when it is there. Needs root (or sudo) to install.
set -euo pipefail

find_chromium() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || return 1
}

if path="$(find_chromium)"; then
    echo "setup-browser: up to date ($path: $("$path" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "setup-browser: need root (or sudo) to install chromium" >&2; exit 1; }
    sudo=(sudo)
fi

echo "setup-browser: installing chromium"
export DEBIAN_FRONTEND=noninteractive
timeout 600 "${sudo[@]}" apt-get update -qq
timeout 900 "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
path="$(find_chromium)"
echo "setup-browser: $path: $("$path" --version)"
