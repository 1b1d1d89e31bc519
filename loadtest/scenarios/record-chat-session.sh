#!/usr/bin/env bash
# Record a real `chat` session through `chatload record`, then replay it for 1,000 users.
#
#   bash loadtest/scenarios/record-chat-session.sh [OUT_DIR]     (about 1 minute)
#
# Five users (alice, bob, carol, dave, erin) run the real `chat` terminal client (the SDK:
# end-to-end encryption, key set-up, sync on reconnect) with scripted input: a group of five,
# two direct chats, 31 messages with pauses, and two network failures (`/drop`: the client
# reconnects by itself). The trace goes to OUT_DIR/chat-session.jsonl (default: a temp dir;
# loadtest/scenarios/chat-session.jsonl is one such recording). Then the trace is replayed
# against a fresh server at 1x, and for 1,000 users with --scale 200 at 1x and at 10x.
# Only 127.0.0.1 is ever a target.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SRV_PORT=$(free_port)
PROXY_PORT=$(free_port)
export CHATD_LIMITS__FRAMES_PER_SECOND=1000000 CHATD_LIMITS__FRAME_BURST=1000000
export CHATD_CONSENT__ADD_ME=everyone  # groups of accounts that never met: members, not invitations
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

"$PY" -m chatd serve --port "$SRV_PORT" --db "$OUT/record.db" >"$OUT/chatd-record.log" 2>&1 &
pids+=($!)
wait_port "$SRV_PORT"
"$PY" -m chatload record --listen "127.0.0.1:$PROXY_PORT" --upstream "ws://127.0.0.1:$SRV_PORT/ws" \
    --out "$OUT/chat-session.jsonl" >"$OUT/record.log" 2>&1 &
proxy=$!
pids+=("$proxy")
wait_port "$PROXY_PORT"
CHAT=("$PY" -m chatclient.cli --server "ws://127.0.0.1:$PROXY_PORT/ws")
for u in alice bob carol dave erin; do
    "${CHAT[@]}" --key "$OUT/$u.key" register "$u" "${u^}" >/dev/null
done

# say DELAY LINE [LINE...]: the first line typed after DELAY seconds, the others 0.8 s apart
say() { sleep "$1"; printf '%s\n' "$2"; shift 2; for line in "$@"; do sleep 0.8; printf '%s\n' "$line"; done; }
session() { "${CHAT[@]}" --key "$OUT/$1.key" >"$OUT/$1.out" 2>&1; }

# the others open the group 6 s in: alice's client (a fresh Python process) has created it by then
{ say 1 '/group "team" @bob @carol @dave @erin'
  say 0.8 "morning all" "standup in 5?" "agenda: release notes"
  say 6 "/dm @bob" "bob, can you take the notes?"
  say 2 "/open 1" "thanks everyone" "see you at 3"
  say 2 "/drop"
  say 2 "/open 1" "back: lost wifi" "notes are up"
  say 5 "/quit"; } | session alice &
pids+=($!)
{ say 6 "/open 1" "morning" "yes, 5 min"
  say 3 "/open @alice" "sure, I'll take them" "sending after"
  say 1.5 "/open 1" "notes: ship on friday"
  say 1.5 "/drop"
  say 2.5 "/open 1" "anything else?" "ok"
  say 5 "/quit"; } | session bob &
pids+=($!)
{ say 6.2 "/open 1" "hi" "can't make it, driving"
  say 3 "/dm @dave" "lunch later?" "12:30?"
  say 3 "/open 1" "read the notes, lgtm"
  say 6 "/quit"; } | session carol &
pids+=($!)
{ say 6.4 "/open 1" "o/" "agenda +1"
  say 5 "/open @carol" "sure" "12:30 works"
  say 2.5 "/open 1" "what about the beta?"
  say 6 "/quit"; } | session dave &
pids+=($!)
{ say 6.6 "/open 1" "here" "I'll be 2 min late"
  say 3 "two things from support" "1) login loop on android" "2) slow sync on 3g"
  say 3 "ack"
  say 7 "/quit"; } | session erin &
pids+=($!)
for p in "${pids[@]:2}"; do wait "$p"; done
sleep 0.5
kill -TERM "$proxy"
wait "$proxy" || true
echo "trace: $OUT/chat-session.jsonl ($(grep -c '"d":"c"' "$OUT/chat-session.jsonl") client frames)"
cat "$OUT/record.log"

# replay against a fresh server (its CPU read from /proc)
SRV2=$(free_port)
"$PY" -m chatd serve --port "$SRV2" --db "$OUT/replay.db" >"$OUT/chatd-replay.log" 2>&1 &
srv2=$!
pids+=("$srv2")
wait_port "$SRV2"
R=("$PY" -m chatload replay "$OUT/chat-session.jsonl" --target "ws://127.0.0.1:$SRV2/ws" --server-pid "$srv2" --quiet)
echo "== replay x1 (5 users)"
"${R[@]}" --json "$OUT/replay-x1.json" --fail-if "errors>0" --fail-if "lost>0"
echo "== replay x1 --scale 200 (1,000 users)"
"${R[@]}" --scale 200 --jitter 5 --json "$OUT/replay-1000.json" --csv "$OUT/replay-1000.csv" \
    --fail-if "errors>0" --fail-if "lost>0"
echo "== replay x10 --scale 200 (1,000 users)"
"${R[@]}" --speed 10 --scale 200 --jitter 0.5 --json "$OUT/replay-1000-x10.json" \
    --fail-if "errors>0" --fail-if "lost>0"
echo "results in $OUT"
