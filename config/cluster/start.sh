#!/usr/bin/env bash
# Start the 3-node example (config/cluster/node-{1,2,3}.toml) in the foreground; Ctrl-C or
# SIGTERM drains all three (each: /readyz 503, clients closed with 1001, queued writes committed).
#
# Needs the PostgreSQL database and the Redis named in the files (defaults: 127.0.0.1:5432,
# database "chatd"; 127.0.0.1:6379). Create the database once:
#     createdb -h 127.0.0.1 -U postgres chatd
# Logs (JSON lines, each with its "node") go to $LOGS/node-N.log (default /tmp/chatd-cluster).
set -euo pipefail
cd "$(dirname "$0")/../.."
CHATD=${CHATD:-.venv/bin/chatd}
LOGS=${LOGS:-/tmp/chatd-cluster}
mkdir -p "$LOGS"

"$CHATD" migrate --config config/cluster/node-1.toml   # once for all (serve would do it too)

pids=()
for n in 1 2 3; do
    "$CHATD" serve --config "config/cluster/node-$n.toml" 2>>"$LOGS/node-$n.log" &
    pids+=("$!")
done
stop() {
    trap - INT TERM
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    echo "stopped"
}
trap stop INT TERM

for port in 8801 8802 8803; do
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    printf 'node on port %s: %s\n' "$port" "$(curl -sS "http://127.0.0.1:$port/readyz" || echo 'not answering')"
done
echo "clients: ws://127.0.0.1:8801/ws ws://127.0.0.1:8802/ws ws://127.0.0.1:8803/ws" \
    "(status: curl http://127.0.0.1:8801/status; logs: $LOGS)"
wait "${pids[@]}"
