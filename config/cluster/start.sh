#!/usr/bin/env bash
# Run the 3-node example (config/cluster/node-{1,2,3}.toml) in the foreground, from any
# directory of a clone, and supervise it: a node that dies is started again (after 1 s, then
# backing off to 10 s while it keeps dying); Ctrl-C or SIGTERM drains all three and exits.
#
# Needs a PostgreSQL database and a Redis every node can reach. The defaults are those of the
# node-N.toml files: postgresql://postgres@127.0.0.1:5432/chatd and redis://127.0.0.1:6379/0.
# Create the database once (e.g. createdb -h 127.0.0.1 -U postgres chatd). Other places, and
# passwords, come from the environment (never from argv, so they do not show in ps):
#
#   CHATD_STORE__DB             PostgreSQL URL, without the password
#   CHATD_STORE__PASSWORD_FILE  a file holding its password (or CHATD_STORE__PASSWORD)
#   CHATD_BROKER__URL           Redis URL, without the password
#   CHATD_BROKER__PASSWORD_FILE a file holding its password (or CHATD_BROKER__PASSWORD)
#   BASE_PORT                   node N listens on BASE_PORT+N-1 (default 8801: 8801-8803)
#   LOGS                        where node-N.log goes (default /tmp/chatd-cluster)
#   CHATD                       the chatd program (default .venv/bin/chatd; created with
#                               python3 -m venv .venv && .venv/bin/pip install -e . if missing)
#
# Any other CHATD_SECTION__KEY variable reaches every node too (e.g. CHATD_LOG__LEVEL=DEBUG).
set -euo pipefail
cd "$(dirname "$0")/../.."
LOGS=${LOGS:-/tmp/chatd-cluster}
BASE_PORT=${BASE_PORT:-8801}
if [[ -z ${CHATD:-} ]]; then
    CHATD=.venv/bin/chatd
    if [[ ! -x $CHATD ]]; then
        echo "start.sh: $CHATD not found; installing chatd into .venv (about a minute)" >&2
        python3 -m venv .venv
        .venv/bin/pip install --quiet -e .
    fi
fi
mkdir -p "$LOGS"

# Once for all (each node would also do it, under an advisory lock); this is also the check
# that PostgreSQL is reachable with these settings, before anything starts.
if ! "$CHATD" migrate --config config/cluster/node-1.toml; then
    echo "start.sh: cannot migrate the database; is PostgreSQL reachable? Set CHATD_STORE__DB" \
        "(and CHATD_STORE__PASSWORD_FILE), see the top of $0" >&2
    exit 1
fi

stopping=0
supervisors=()

# One node, restarted whenever it exits until we stop; its SIGTERM is forwarded to chatd.
supervise() {
    local n=$1 port=$((BASE_PORT + $1 - 1)) child="" rc delay=1
    trap 'stopping=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM INT
    while ((!stopping)); do
        CHATD_SERVER__PORT=$port "$CHATD" serve --config "config/cluster/node-$n.toml" \
            2>>"$LOGS/node-$n.log" &
        child=$!
        local started=$SECONDS
        rc=0
        wait "$child" || rc=$?
        while kill -0 "$child" 2>/dev/null; do  # wait was cut short by our trap: wait again
            rc=0
            wait "$child" || rc=$?
        done
        child=""
        ((stopping)) && break
        if ((SECONDS - started > 30)); then delay=1; fi
        echo "start.sh: node-$n (port $port) exited with $rc; starting it again in ${delay}s" >&2
        sleep "$delay" &
        wait $! || true
        delay=$((delay * 2 > 10 ? 10 : delay * 2))
    done
}

stop() {
    trap - INT TERM EXIT
    stopping=1
    echo "start.sh: draining the nodes" >&2
    # A second signal to a draining node ends its [server] drain_grace at once: without a load
    # balancer in front there is nobody to wait for.
    kill -TERM "${supervisors[@]}" 2>/dev/null || true
    sleep 0.5
    kill -TERM "${supervisors[@]}" 2>/dev/null || true
    wait "${supervisors[@]}" 2>/dev/null || true
    echo "start.sh: stopped" >&2
    exit 0
}
trap stop INT TERM EXIT

for n in 1 2 3; do
    supervise "$n" &
    supervisors+=("$!")
done

for n in 1 2 3; do
    port=$((BASE_PORT + n - 1))
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    printf 'node-%s on port %s: %s\n' "$n" "$port" \
        "$(curl -sS "http://127.0.0.1:$port/readyz" 2>/dev/null || echo 'not answering')"
done
echo "clients: ws://127.0.0.1:$BASE_PORT/ws ws://127.0.0.1:$((BASE_PORT + 1))/ws" \
    "ws://127.0.0.1:$((BASE_PORT + 2))/ws (status: curl http://127.0.0.1:$BASE_PORT/status;" \
    "logs: $LOGS)"
while :; do  # until a signal (then stop exits): the supervisors never return on their own
    wait "${supervisors[@]}" 2>/dev/null || true
    sleep 1
done
