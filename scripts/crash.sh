#!/usr/bin/env bash
# The crash harness (tests/crash.rs) with more kill -9 cycles than CI's 20:
#   bash scripts/crash.sh [--cycles N] [--seed S] [--release]
# Every cycle kill -9s `eddy serve` at a random (seeded) moment under write and change-stream
# load (with multi-document transactions beside the writer), restarts it on the same dbpath, and
# the end checks that no acknowledged write or transaction (and no part of a failed one) and no
# change event was lost, duplicated or reordered. The seed is printed; --seed S replays a run.
# --release runs it against the optimised build (more writes per cycle).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cycles=100
profile=()
while (($#)); do
    case "$1" in
        --cycles) cycles="$2"; shift 2 ;;
        --seed) export EDDY_CRASH_SEED="$2"; shift 2 ;;
        --release) profile=(--release); shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "crash.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
export EDDY_CRASH_CYCLES="$cycles"
exec cargo test "${profile[@]}" --test crash -- --nocapture --test-threads 1
