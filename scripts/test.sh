#!/usr/bin/env bash
# THE test command for Eddy (CI runs it through .ci/run):  bash scripts/test.sh [--skip STEP]...
#
# Steps, each timed, in order:
#   setup     scripts/setup-python.sh (+ scripts/setup-node.sh for mongosh; a failure there is
#             reported and makes tests/python/test_mongosh.py fail, not the whole run; + scripts/
#             setup-bench.sh for eddy bench's Redis/PostgreSQL baselines, soft the same way: without
#             them tests/bench_smoke.rs checks that they are reported unavailable; + scripts/
#             setup-browser.sh for Chromium, soft too: without it tests/python/test_sse_browser.py
#             fails)
#   fmt       cargo fmt --all -- --check
#   clippy    cargo clippy --workspace --all-targets -- -D warnings
#   build     cargo build --release
#   cargo     cargo test --workspace --no-fail-fast
#   python    pytest tests/python (each test starts its own target/release/eddy)
#   pymongo   scripts/pymongo-suite.sh (pymongo 4.20.1's own tests against target/release/eddy), then
#             its authentication tests against `eddy serve --auth` (--auth), and its change-stream
#             tests over each wire compressor (COMPRESSORS=zstd, snappy, zlib)
# setup..build are hard: the first failure stops the run. cargo/python/pymongo always all run
# when the build succeeded, so one run measures everything; their failures make the exit status
# non-zero at the end. Failures listed in tests/python/expected-failures.txt or
# tests/pymongo/expected-failures.txt are counted as failed but do not fail the run.
# The last line is the overall count: `N passed, N failed, N skipped`.
# `--skip STEP` (repeatable, or EDDY_TEST_SKIP="fmt clippy") leaves a step out, for local use.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$ROOT/.work"
RESULTS="$WORK/results"
mkdir -p "$RESULTS"

skip=" ${EDDY_TEST_SKIP:-} "
while (($#)); do
    case "$1" in
        --skip) skip+=" $2 "; shift 2 ;;
        --skip=*) skip+=" ${1#--skip=} "; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
total_passed=0 total_failed=0 total_skipped=0
soft_failures=()
timings=()
run_start=$SECONDS

header() {
    printf '\n==================== [%s] %s ====================\n' "$(date -u +%H:%M:%S)" "$1"
}

# step NAME CMD...: runs CMD with a header and its duration; returns CMD's status.
step() {
    local name="$1" start rc
    shift
    header "$name: $*"
    start=$SECONDS
    "$@"
    rc=$?
    timings+=("$(printf '%-8s %5ss  exit %s' "$name" $((SECONDS - start)) "$rc")")
    printf -- '---- %s: exit %s after %ss\n' "$name" "$rc" $((SECONDS - start))
    return "$rc"
}

skipped_step() { [[ "$skip" == *" $1 "* ]]; }

finish() {
    local status=$1
    header "summary"
    printf '%s\n' "${timings[@]}"
    printf 'total    %5ss\n' $((SECONDS - run_start))
    if ((${#soft_failures[@]})); then
        printf 'FAILED: %s\n' "${soft_failures[@]}"
        status=1
    fi
    ((status == 0)) && echo "RESULT: OK" || echo "RESULT: FAILED"
    echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
    exit "$status"
}

hard() { # name cmd...: a failing hard step ends the run
    local name="$1"
    skipped_step "$name" && { header "$name: skipped (--skip)"; return 0; }
    if ! step "$@"; then
        echo "test.sh: step '$name' failed; stopping."
        total_failed=$((total_failed + 1))
        finish 1
    fi
}

add_totals() { # name totals-file
    local p f s e u
    if [[ ! -f "$2" ]]; then
        soft_failures+=("$1: produced no totals")
        total_failed=$((total_failed + 1))
        return
    fi
    read -r p f s e u <"$2"
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    total_skipped=$((total_skipped + s))
    ((u > 0)) && soft_failures+=("$1: $u unexpected failure(s)")
    ((e > 0)) && echo "test.sh: $1: $e expected failure(s) (listed) counted as failed"
    return 0
}

# ---- hard steps ---------------------------------------------------------------------------
hard setup bash scripts/setup-python.sh
if ! skipped_step setup && ! skipped_step node; then
    step setup-node bash scripts/setup-node.sh ||
        echo "test.sh: setup-node failed: tests/python/test_mongosh.py will fail"
fi
if ! skipped_step setup && ! skipped_step setup-browser; then
    step setup-browser bash scripts/setup-browser.sh ||
        echo "test.sh: setup-browser failed: tests/python/test_sse_browser.py will fail"
fi
if ! skipped_step setup && ! skipped_step setup-bench; then
    step setup-bench bash scripts/setup-bench.sh ||
        echo "test.sh: setup-bench failed: eddy bench runs without its Redis/PostgreSQL baselines"
fi
hard fmt cargo fmt --all -- --check
hard clippy cargo clippy --workspace --all-targets -- -D warnings
hard build cargo build --release

# ---- cargo test -----------------------------------------------------------------------------
cargo_tests() {
    local log="$RESULTS/cargo-test.log" rc p=0 f=0 s=0 line
    cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    while read -r line; do
        # "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
        [[ "$line" =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]] || continue
        p=$((p + BASH_REMATCH[1])); f=$((f + BASH_REMATCH[2])); s=$((s + BASH_REMATCH[3]))
    done < <(grep -E '^test result: ' "$log")
    echo "cargo test: $p passed, $f failed, $s ignored (summed over all test binaries)"
    if ((rc != 0 && f == 0)); then
        echo "test.sh: cargo test exited $rc without a failing test (compile error?)"
        f=1
    fi
    echo "$p $f $s 0 $f" >"$RESULTS/cargo.totals"
    return "$rc"
}
if skipped_step cargo; then header "cargo: skipped (--skip)"; else
    rm -f "$RESULTS/cargo.totals"
    step cargo cargo_tests
    add_totals "cargo test" "$RESULTS/cargo.totals"
fi

# ---- our python tests ------------------------------------------------------------------------
python_tests() {
    local out="$RESULTS/python" rc=0 start=$SECONDS
    rm -rf "$out"
    mkdir -p "$out"
    EDDY_BIN="$ROOT/target/release/eddy" PYTHONDONTWRITEBYTECODE=1 \
        timeout --signal=INT --kill-after=30 "${PYTHON_TESTS_TIMEOUT:-900}" \
        "$WORK/venv/bin/python" -m pytest tests/python -p no:cacheprovider -ra \
        -o junit_family=xunit1 --junitxml="$out/tests_python.xml" --timeout="${PYTHON_TEST_TIMEOUT:-120}" </dev/null || rc=$?
    printf '{"file": "tests/python", "rc": %d, "seconds": %d, "timed_out": %s}\n' "$rc" \
        $((SECONDS - start)) "$([[ $rc -eq 124 || $rc -eq 137 ]] && echo true || echo false)" \
        >"$out/tests_python.meta.json"
    python3 scripts/junit_summary.py "$out" --label "python tests" \
        --expected tests/python/expected-failures.txt --totals-out "$RESULTS/python.totals"
}
if skipped_step python; then header "python: skipped (--skip)"; else
    rm -f "$RESULTS/python.totals"
    step python python_tests
    add_totals "python tests" "$RESULTS/python.totals"
fi

# ---- pymongo's own suite ---------------------------------------------------------------------
if skipped_step pymongo; then header "pymongo: skipped (--skip)"; else
    rm -f "$WORK/results/pymongo/totals"
    step pymongo bash scripts/pymongo-suite.sh
    add_totals "pymongo suite" "$WORK/results/pymongo/totals"
    # pymongo's authentication tests, against `eddy serve --auth`.
    rm -f "$WORK/results/pymongo-auth/totals"
    PYMONGO_RESULTS="$WORK/results/pymongo-auth" \
        step pymongo-auth bash scripts/pymongo-suite.sh --auth test/test_auth.py test/test_auth_spec.py
    add_totals "pymongo suite (--auth)" "$WORK/results/pymongo-auth/totals"
    # Its change-stream tests again over compressed connections (pymongo's harness reads
    # COMPRESSORS into every client it makes): zstd, then snappy, then zlib.
    for compressor in zstd snappy zlib; do
        rm -f "$WORK/results/pymongo-$compressor/totals"
        COMPRESSORS="$compressor" PYMONGO_RESULTS="$WORK/results/pymongo-$compressor" \
            step "pymongo-$compressor" bash scripts/pymongo-suite.sh test/test_change_stream.py
        add_totals "pymongo suite (compressors=$compressor)" "$WORK/results/pymongo-$compressor/totals"
    done
fi

finish 0
