#!/usr/bin/env bash
# Runs pymongo 4.20.1's own test suite (from its source distribution) against Eddy.
#
#   scripts/pymongo-suite.sh [options] [FILES...]
#
# FILES are paths inside the sdist (default: the files below). Options:
#   --port P           test a server already listening on 127.0.0.1:P instead of starting eddy
#                      (e.g. a real mongod 7.0 replica set, to check the harness itself)
#   --no-server        start nothing and point pymongo at a closed port (plumbing check: every
#                      test is skipped, and the run FAILS because nothing passed)
#   --auth             start eddy with --auth (pymongo's harness then creates and logs in as a root
#                      user); results go to PYMONGO_RESULTS, which the caller sets apart
#   --write-expected   rewrite tests/pymongo/expected-failures.txt from this run's failures
#                      (keeps the reasons of entries already listed)
# Env: EDDY_BIN, PYMONGO_FILE_TIMEOUT (s per file, default 420), PYMONGO_TEST_TIMEOUT (s per
#      test, default 60), PYMONGO_RESULTS (default .work/results/pymongo).
#
# One eddy server (temp dbpath, --replSet rs0, enableTestCommands=1) serves all files; if it
# dies, that is reported as a failure and a fresh one is started for the remaining files.
# Per file: a junit XML, a log, passed/failed/skipped counts. Failures are compared with
# tests/pymongo/expected-failures.txt (`test/file.py::Class::test # reason` per line).
# Exit status is non-zero on an unexpected failure, a crashed/timed-out file, a server crash,
# or when no test passed at all (pymongo SKIPS tests when it cannot reach a server).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$ROOT/.work"
VENV="$WORK/venv"
SDIST="$WORK/pymongo-4.20.1"
EXPECTED="$ROOT/tests/pymongo/expected-failures.txt"
RESULTS="${PYMONGO_RESULTS:-$WORK/results/pymongo}"
FILE_TIMEOUT="${PYMONGO_FILE_TIMEOUT:-420}"
TEST_TIMEOUT="${PYMONGO_TEST_TIMEOUT:-60}"
DEFAULT_FILES=(
    test/test_change_stream.py
    test/test_crud_unified.py
    test/test_collection.py
    test/test_cursor.py
    test/test_database.py
    test/test_bulk.py
    test/test_collation.py
    test/test_command_monitoring.py
    test/test_custom_types.py
    test/test_raw_bson.py
    test/test_session.py
    test/test_sessions_unified.py
    test/test_read_write_concern_spec.py
    test/test_retryable_reads_unified.py
    test/test_retryable_writes_unified.py
    test/test_streaming_protocol.py
    test/test_versioned_api.py
    test/test_versioned_api_integration.py
    test/test_read_concern.py
    test/test_command_logging.py
    test/test_collection_management.py
    test/test_examples.py
    test/test_gridfs.py
    test/test_gridfs_bucket.py
    test/test_grid_file.py
    test/test_monitoring.py
    test/test_connection_monitoring.py
    # Last: they leave pymongo_test.coll behind (as against mongod), whose
    # create_collection in test_read_concern.py's setUp would then fail.
    test/test_transactions.py
    test/test_transactions_unified.py
)

mode=eddy
port=""
auth=0
write_expected=0
files=()
while (($#)); do
    case "$1" in
        --port) mode=external; port="$2"; shift 2 ;;
        --port=*) mode=external; port="${1#--port=}"; shift ;;
        --no-server) mode=none; shift ;;
        --write-expected) write_expected=1; shift ;;
        --auth) auth=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "pymongo-suite: unknown option $1" >&2; exit 2 ;;
        *) files+=("$1"); shift ;;
    esac
done
((${#files[@]})) || files=("${DEFAULT_FILES[@]}")
# pymongo marks its authentication tests `auth`, which its pyproject's `-m` leaves out.
markers=()
((auth)) && markers=(-m "auth or default")

if [[ ! -f "$SDIST/.eddy-ready" || ! -x "$VENV/bin/python" ]]; then
    bash "$ROOT/scripts/setup-python.sh"
fi
for f in "${files[@]}"; do
    [[ -f "$SDIST/$f" ]] || { echo "pymongo-suite: no such test file in the sdist: $f" >&2; exit 2; }
done

# shellcheck source=scripts/eddy-server.sh
source "$ROOT/scripts/eddy-server.sh"
trap eddy_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
crashes=()

start_server() {
    case "$mode" in
        eddy)
            if ((auth)); then
                EDDY_LOG_FILE="$RESULTS/eddy-$(date +%s).log" eddy_start --auth || return 1
            else
                EDDY_LOG_FILE="$RESULTS/eddy-$(date +%s).log" eddy_start || return 1
            fi
            port="$EDDY_PORT"
            ;;
        none)
            port="$(eddy_free_port)"
            echo "pymongo-suite: --no-server: pointing pymongo at closed port $port"
            ;;
        external)
            eddy_port_open "$port" || { echo "pymongo-suite: nothing listens on 127.0.0.1:$port" >&2; return 1; }
            echo "pymongo-suite: using the server on 127.0.0.1:$port"
            ;;
    esac
}

if ! start_server; then
    echo "pymongo-suite: could not start the server under test" >&2
    echo "0 1 0 0 1" >"$RESULTS/totals"
    exit 1
fi

for f in "${files[@]}"; do
    if [[ "$mode" == eddy ]] && ! eddy_alive; then
        crashes+=("eddy died before $f (log: $EDDY_LOG)")
        echo "pymongo-suite: SERVER CRASHED before $f; last lines of $EDDY_LOG:" >&2
        tail -n 40 "$EDDY_LOG" >&2 || true
        EDDY_PID=""
        eddy_stop
        start_server || { echo "pymongo-suite: could not restart the server" >&2; break; }
    fi
    stem="$(echo "${f%.py}" | tr '/' '_')"
    echo "---- pymongo suite: $f (port $port, timeout ${FILE_TIMEOUT}s/file ${TEST_TIMEOUT}s/test)"
    start=$SECONDS
    rc=0
    # Run from the sdist root so `test/` (and its conftest) is found; the sdist's bson/ gridfs/
    # pymongo/ folders were removed by setup-python.sh, and pytest_eddy_plugin refuses any
    # pymongo that is not the venv's. SIGINT on timeout lets pytest write the junit XML so far.
    # With --auth, pymongo's harness creates DB_USER (root) through the localhost exception
    # and authenticates every client as that user.
    (cd "$SDIST" && DB_IP=127.0.0.1 DB_PORT="$port" EDDY_EXPECT_PYMONGO_VERSION=4.20.1 \
        DB_USER=eddy-test-root DB_PASSWORD='pencil!' \
        PYTHONPATH="$ROOT/scripts" PYTHONDONTWRITEBYTECODE=1 \
        timeout --signal=INT --kill-after=30 "$FILE_TIMEOUT" \
        "$VENV/bin/python" -m pytest "$f" "${markers[@]}" -p pytest_eddy_plugin -p no:cacheprovider \
        --junitxml="$RESULTS/$stem.xml" --timeout="$TEST_TIMEOUT" -o console_output_style=classic \
        </dev/null >"$RESULTS/$stem.log" 2>&1) || rc=$?
    secs=$((SECONDS - start))
    timed_out=false
    [[ $rc -eq 124 || $rc -eq 137 ]] && timed_out=true
    printf '{"file": "%s", "rc": %d, "seconds": %d, "timed_out": %s}\n' "$f" "$rc" "$secs" "$timed_out" \
        >"$RESULTS/$stem.meta.json"
    grep -m1 "eddy harness: pymongo" "$RESULTS/$stem.log" || true
    tail -n 1 "$RESULTS/$stem.log"
    if [[ $rc -ne 0 && $rc -ne 1 ]]; then
        echo "pymongo-suite: pytest exited $rc for $f$($timed_out && echo " (timed out after ${FILE_TIMEOUT}s)"); last lines of $RESULTS/$stem.log:"
        tail -n 15 "$RESULTS/$stem.log"
    fi
done

if [[ "$mode" == eddy ]] && ! eddy_alive; then
    crashes+=("eddy died during the last file (log: $EDDY_LOG)")
    tail -n 40 "$EDDY_LOG" >&2 || true
fi

summary_args=("$RESULTS" --expected "$EXPECTED" --label "pymongo suite" --totals-out "$RESULTS/totals"
    --fail-on-skip-reason '^Cannot connect to MongoDB')
((write_expected)) && summary_args+=(--write-expected "$EXPECTED")
status=0
python3 "$ROOT/scripts/junit_summary.py" "${summary_args[@]}" || status=$?
if ((${#crashes[@]})); then
    for c in "${crashes[@]}"; do echo "pymongo suite: PROBLEM: $c"; done
    read -r p fl s e u <"$RESULTS/totals"
    echo "$p $((fl + ${#crashes[@]})) $s $e $((u + ${#crashes[@]}))" >"$RESULTS/totals"
    status=1
fi
echo "pymongo suite: results, logs and junit XML in $RESULTS"
exit "$status"
