#!/usr/bin/env bash
# Reruns the figures of BENCHMARKS.md: builds the release server and load tool, starts the
# server on a loopback port with a fresh SQLite database, runs every scenario against it and
# prints each run's JSON line (also kept in target/bench/results.jsonl).
#
#   scripts/bench.sh            # the full budget runs (about 7 minutes of load)
#   QUICK=1 scripts/bench.sh    # small numbers, to check the set-up
set -euo pipefail
cd "$(dirname "$0")/.."

REVERB_PUSHER_SKIP_UI=1 cargo build --release -q -p reverb-pusher -p reverb-pusher-bench
SERVER=target/release/reverb-pusher
BENCH=target/release/reverb-pusher-bench
PORT=${PORT:-6101}
WORK=$(mktemp -d)
OUT=target/bench
mkdir -p "$OUT"
: > "$OUT/results.jsonl"

export REVERB_PUSHER_DATABASE_URL="sqlite://$WORK/bench.db"
export REVERB_PUSHER_MASTER_KEY_FILE="$WORK/master.key"
export REVERB_PUSHER_LOG_LEVEL=warn
# Idle connections get a server ping every 15 s, so that the 60 s hold shows pings answered.
export REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS=${REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS:-15}
"$SERVER" --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/up" >/dev/null 2>&1 && break; sleep 0.1; done

read -r PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET < <("$SERVER" app list --secrets --json |
  python3 -c 'import json,sys; a=json.load(sys.stdin)[0]; print(a["id"], a["key"], a["secret"])')
export PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET

# A second app that floods the server in the `abuse` scenario; `limited` gives it rate limits.
abuser() {
  local app
  app=$("$SERVER" app create --name "abuser-$1" --json)
  ABUSER_APP_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$app")
  ABUSER_APP_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' <<<"$app")
  ABUSER_APP_SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' <<<"$app")
  export ABUSER_APP_ID ABUSER_APP_KEY ABUSER_APP_SECRET
  if [ "$1" = limited ]; then
    "$SERVER" app set "$ABUSER_APP_ID" --limit max_backend_events_per_second=200 \
      --limit max_new_connections_per_second=20 --limit max_new_connections_per_second_per_ip=10 >/dev/null
  fi
  # The running server picks the app up within app_sync_interval_ms (1 s): until then its
  # REST path answers 404 (an unsigned request to a known app gets 401).
  for _ in $(seq 50); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/apps/$ABUSER_APP_ID/channels")" = 404 ] || break
    sleep 0.1
  done
}

run() {
  echo "== $*" >&2
  "$BENCH" --url "http://127.0.0.1:$PORT" --server-pid "$PID" --source-addresses 16 "$@" | tee "$WORK/run.out" >&2
  tail -1 "$WORK/run.out" >> "$OUT/results.jsonl"
}

if [ -n "${QUICK:-}" ]; then
  run connections --connections 1000 --rate 2000 --hold 2
  run fanout --subscribers 1000 --channels 1 --rate 5 --duration 3
  run fanout --subscribers 1000 --channels 10 --publishers 4 --rate 0 --duration 3
  run http --concurrency 32 --duration 3
  run http-floor --concurrency 32 --duration 3
  run churn --rate 200 --duration 3
  run floor --connections 1000 --writers 2 --rate 5 --duration 3
  abuser limited
  run abuse --subscribers 200 --rate 50 --duration 3
else
  run connections --connections 19000 --rate 2000 --channels 1 --hold 60
  run fanout --subscribers 10000 --channels 1 --publishers 1 --rate 5 --duration 20
  run fanout --subscribers 10000 --channels 100 --publishers 4 --rate 0 --duration 20
  run http --concurrency 32 --duration 20
  run http-floor --concurrency 32 --duration 20
  run churn --rate 500 --duration 30
  # The same deliveries without a server: the kernel's floor on this machine (both ends of each
  # connection are in the tool, so 9,900 fit under a 20,000 open-file cap).
  run floor --connections 9900 --writers 2 --rate 5 --duration 20
  run floor --connections 9900 --writers 2 --rate 8 --duration 20
  run floor --connections 9900 --writers 2 --rate 0 --duration 20
  # One app floods REST and connections while another's fan-out is measured: first with no
  # limits on the flooding app, then with its rate limits on.
  abuser unlimited
  run abuse --subscribers 1000 --rate 50 --duration 15
  abuser limited
  run abuse --subscribers 1000 --rate 50 --duration 15
fi
echo "results: $OUT/results.jsonl" >&2
