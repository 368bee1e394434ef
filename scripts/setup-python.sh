#!/usr/bin/env bash
# Creates (idempotently) the Python test environment under .work/:
#   .work/venv               python3 -m venv with scripts/requirements-test.txt installed
#   .work/pymongo-4.20.1     pymongo 4.20.1's source distribution (its test/ suite), with the
#                            sdist's own bson/, gridfs/ and pymongo/ package folders removed so the
#                            tests always import the RELEASED pymongo installed in the venv.
# Safe to run repeatedly: each part is skipped when its stamp file matches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.work"
VENV="$WORK/venv"
REQ="$ROOT/scripts/requirements-test.txt"
PYMONGO_VERSION="4.20.1"
SDIST_DIR="$WORK/pymongo-$PYMONGO_VERSION"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
PIP_NET_OPTS=(--retries 5 --timeout 60)

mkdir -p "$WORK"

# --- venv + packages --------------------------------------------------------------------
want_stamp="$(sha256sum "$REQ" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [[ -x "$VENV/bin/python" && -f "$VENV/.eddy-stamp" && "$(cat "$VENV/.eddy-stamp")" == "$want_stamp" ]] \
    && "$VENV/bin/python" -c 'import pymongo, pytest, pytest_asyncio, pytest_timeout, snappy; from backports import zstd' 2>/dev/null; then
    echo "setup-python: venv up to date ($VENV)"
else
    echo "setup-python: creating venv in $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    timeout 900 "$VENV/bin/python" -m pip install -q "${PIP_NET_OPTS[@]}" -r "$REQ"
    echo "$want_stamp" > "$VENV/.eddy-stamp"
fi

# --- pymongo sdist (for its test suite) ----------------------------------------------------
if [[ -f "$SDIST_DIR/.eddy-ready" ]]; then
    echo "setup-python: pymongo $PYMONGO_VERSION sdist already unpacked ($SDIST_DIR)"
else
    echo "setup-python: downloading pymongo $PYMONGO_VERSION source distribution"
    rm -rf "$SDIST_DIR" "$WORK/dl"
    mkdir -p "$WORK/dl"
    timeout 900 "$VENV/bin/python" -m pip download -q "${PIP_NET_OPTS[@]}" --no-deps --no-binary :all: \
        -d "$WORK/dl" "pymongo==$PYMONGO_VERSION"
    tar -xzf "$WORK/dl/pymongo-$PYMONGO_VERSION.tar.gz" -C "$WORK"
    # The suite must exercise the released driver from the venv: pytest (rootdir insertion) and
    # `python -m` put the sdist root on sys.path, where these folders would shadow it.
    rm -rf "$SDIST_DIR/pymongo" "$SDIST_DIR/bson" "$SDIST_DIR/gridfs"
    touch "$SDIST_DIR/.eddy-ready"
    rm -rf "$WORK/dl"
fi

# --- verify ------------------------------------------------------------------------------
(cd "$SDIST_DIR" && "$VENV/bin/python" - <<'PY'
import sys, os
sys.path.insert(0, os.getcwd())  # what pytest / python -m do: the sdist root first
import pymongo, bson, pytest
assert "site-packages" in pymongo.__file__, pymongo.__file__
assert pymongo.version == "4.20.1", pymongo.version
print(f"setup-python: pymongo {pymongo.version} from {pymongo.__file__} (C ext: {pymongo.has_c()}); pytest {pytest.__version__}")
PY
)
