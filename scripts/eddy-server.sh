# Sourced by the test scripts: start / stop a throw-away `eddy serve` on a free loopback port.
#   eddy_start [extra serve args...]   sets EDDY_PID EDDY_PORT EDDY_DBPATH EDDY_LOG; returns 1 (after
#                                      printing the server log) if the port does not accept in time
#   eddy_alive                         true while the started server process runs
#   eddy_stop                          SIGTERM, then SIGKILL after 10 s; removes the dbpath
# Callers install `trap eddy_stop EXIT` so the server dies with the script, even on error.
# Env: EDDY_BIN (default target/release/eddy), EDDY_START_TIMEOUT (seconds, default 30),
#      EDDY_REPLSET (default rs0).

EDDY_PID=""
EDDY_PORT=""
EDDY_DBPATH=""
EDDY_LOG=""

eddy_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

eddy_port_open() { # port
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

eddy_alive() {
    [[ -n "$EDDY_PID" ]] && kill -0 "$EDDY_PID" 2>/dev/null
}

eddy_start() {
    local root bin deadline
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    bin="${EDDY_BIN:-$root/target/release/eddy}"
    if [[ ! -x "$bin" ]]; then
        echo "eddy_start: $bin not found (run cargo build --release)" >&2
        return 1
    fi
    EDDY_PORT="$(eddy_free_port)"
    EDDY_DBPATH="$(mktemp -d "${TMPDIR:-/tmp}/eddy-db.XXXXXX")"
    EDDY_LOG="${EDDY_LOG_FILE:-$EDDY_DBPATH.log}"
    "$bin" serve --port "$EDDY_PORT" --dbpath "$EDDY_DBPATH" --replSet "${EDDY_REPLSET:-rs0}" \
        --setParameter enableTestCommands=1 "$@" >"$EDDY_LOG" 2>&1 </dev/null &
    EDDY_PID=$!
    deadline=$((SECONDS + ${EDDY_START_TIMEOUT:-30}))
    while ! eddy_port_open "$EDDY_PORT"; do
        if ! eddy_alive; then
            echo "eddy_start: server exited before accepting connections; its log ($EDDY_LOG):" >&2
            tail -n 50 "$EDDY_LOG" >&2 || true
            EDDY_PID=""
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "eddy_start: port $EDDY_PORT not accepting after ${EDDY_START_TIMEOUT:-30}s; log ($EDDY_LOG):" >&2
            tail -n 50 "$EDDY_LOG" >&2 || true
            eddy_stop
            return 1
        fi
        sleep 0.2
    done
    echo "eddy_start: eddy (pid $EDDY_PID) serving on 127.0.0.1:$EDDY_PORT, dbpath $EDDY_DBPATH, log $EDDY_LOG"
}

eddy_stop() {
    if [[ -n "$EDDY_PID" ]]; then
        if kill -0 "$EDDY_PID" 2>/dev/null; then
            kill -TERM "$EDDY_PID" 2>/dev/null || true
            local i
            for i in $(seq 1 50); do
                kill -0 "$EDDY_PID" 2>/dev/null || break
                sleep 0.2
            done
            kill -KILL "$EDDY_PID" 2>/dev/null || true
        fi
        wait "$EDDY_PID" 2>/dev/null || true
        EDDY_PID=""
    fi
    if [[ -n "$EDDY_DBPATH" && -d "$EDDY_DBPATH" ]]; then
        rm -rf "$EDDY_DBPATH"
    fi
    EDDY_DBPATH=""
}
