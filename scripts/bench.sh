#!/usr/bin/env bash
# Reruns the figures of BENCHMARKS.md: builds the release server and load tool, then runs every
# scenario against a fresh server process on a loopback port (a fresh SQLite database for the
# sitting), and prints each run's JSON line (also kept in target/bench/results.jsonl, each with
# the server's name and the scenario's arguments).
#
# The scenarios any Pusher server can run (connections, fan-out, REST, churn) also run against
# sockudo 5.2, when it is installed (`cargo install sockudo --version 5.2.0 --locked`, which
# needs Debian's protobuf-compiler), in the same sitting: one server at a time, a fresh process
# per scenario, one app, local adapter, rate limiter off, RUST_LOG=warn. The last lines are a
# table of both servers' figures and their ratio (also in target/bench/compare.md). The
# connections and churn scenarios also run against the load tool's bare WebSocket server
# (`ws-floor`), whose CPU figures are what a minimal server pays for that socket work on the
# machine at hand.
#
#   scripts/bench.sh            # the full budget runs (about 18 minutes of load with sockudo)
#   QUICK=1 scripts/bench.sh    # small numbers, to check the set-up
#   SOCKUDO=/path/to/sockudo    # where sockudo is (default: on PATH, or ~/.cargo/bin)
#   SOCKUDO=none                # ours alone
set -euo pipefail
cd "$(dirname "$0")/.."

REVERB_PUSHER_SKIP_UI=1 cargo build --release -q -p reverb-pusher -p reverb-pusher-bench
SERVER=target/release/reverb-pusher
BENCH=target/release/reverb-pusher-bench
PORT=${PORT:-6101}
SOCKUDO_PORT=${SOCKUDO_PORT:-6102}
WORK=$(mktemp -d)
OUT=target/bench
mkdir -p "$OUT"
: > "$OUT/results.jsonl"
PID=

SOCKUDO=${SOCKUDO:-$(command -v sockudo || echo "${CARGO_HOME:-$HOME/.cargo}/bin/sockudo")}
if [ "$SOCKUDO" != none ] && [ -x "$SOCKUDO" ] && "$SOCKUDO" --version 2>/dev/null | grep -q ' 5\.2\.'; then
  echo "comparing with $("$SOCKUDO" --version) ($SOCKUDO)" >&2
else
  [ "$SOCKUDO" = none ] || echo "sockudo 5.2 is not installed (cargo install sockudo --version 5.2.0 --locked, with protobuf-compiler): running ours alone" >&2
  SOCKUDO=
fi

export REVERB_PUSHER_DATABASE_URL="sqlite://$WORK/bench.db"
export REVERB_PUSHER_MASTER_KEY_FILE="$WORK/master.key"
export REVERB_PUSHER_LOG_LEVEL=warn
# Idle connections get a server ping every 15 s, so that the 60 s hold shows pings answered.
export REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS=${REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS:-15}

stop() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
  fi
}
trap 'stop; rm -rf "$WORK"' EXIT

wait_up() {
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "error: the server did not come up ($1)" >&2
  exit 1
}

# Our server, a fresh process (the database and its apps stay).
start_ours() {
  stop
  "$SERVER" --host 127.0.0.1 --port "$PORT" >>"$WORK/server.log" 2>&1 &
  PID=$!
  URL="http://127.0.0.1:$PORT"
  wait_up "$URL/up"
}

# sockudo, a fresh process: one app from the environment, everything else off or local.
start_sockudo() {
  stop
  env PORT="$SOCKUDO_PORT" HOST=127.0.0.1 RUST_LOG=warn \
    ADAPTER_DRIVER=local APP_MANAGER_DRIVER=memory CACHE_DRIVER=memory QUEUE_DRIVER=none \
    RATE_LIMITER_ENABLED=false METRICS_ENABLED=false ACTIVITY_TIMEOUT="$REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS" \
    SOCKUDO_DEFAULT_APP_ID="$PUSHER_APP_ID" SOCKUDO_DEFAULT_APP_KEY="$PUSHER_APP_KEY" \
    SOCKUDO_DEFAULT_APP_SECRET="$PUSHER_APP_SECRET" SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true \
    SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000 SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=100000000 \
    SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=100000000 \
    SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=100000000 \
    "$SOCKUDO" >>"$WORK/sockudo.log" 2>&1 &
  PID=$!
  URL="http://127.0.0.1:$SOCKUDO_PORT"
  wait_up "$URL/up/$PUSHER_APP_ID"
}

# One scenario against the running server; its JSON line goes to results.jsonl, labelled.
run_on() {
  local who=$1
  shift
  echo "== $who: $*" >&2
  "$BENCH" --url "$URL" --server-pid "$PID" --source-addresses 16 "$@" | tee "$WORK/run.out" >&2
  record "$who" "$*"
}

# The last JSON line of the run just made goes to results.jsonl with the server's name and the
# scenario's arguments.
record() {
  tail -1 "$WORK/run.out" | WHO="$1" ARGS="$2" python3 -c '
import json, os, sys
line = json.loads(sys.stdin.read())
line["server"] = os.environ["WHO"]
line["args"] = os.environ["ARGS"]
print(json.dumps(line))' >> "$OUT/results.jsonl"
}

# The same scenario against the load tool's bare WebSocket server (`ws-floor`: upgrade,
# subscribe, pings and close, nothing else), labelled "bare": the floor under both servers.
bare() {
  echo "== bare: $*" >&2
  "$BENCH" --source-addresses 16 ws-floor --activity-timeout "$REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS" "$@" |
    tee "$WORK/run.out" >&2
  record bare "$*"
}

# Ours only (scenarios that use our admin API or CLI, or no server).
run() {
  start_ours
  run_on ours "$@"
  stop
}

run_on_sockudo() {
  [ -n "$SOCKUDO" ] || return 0
  start_sockudo
  run_on sockudo "$@"
  stop
}
# Ours, then sockudo: each on a fresh process.
compare() {
  start_ours
  run_on ours "$@"
  stop
  run_on_sockudo "$@"
}

# The first start creates the database and the default app.
start_ours
read -r PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET < <("$SERVER" app list --secrets --json |
  python3 -c 'import json,sys; a=json.load(sys.stdin)[0]; print(a["id"], a["key"], a["secret"])')
export PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET
stop

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
}

# An admin account for the `webhooks` scenario (it adds and removes its own endpoint).
export REVERB_PUSHER_ADMIN_EMAIL=bench@example.com REVERB_PUSHER_ADMIN_PASSWORD='bench password 1234'
echo "$REVERB_PUSHER_ADMIN_PASSWORD" | "$SERVER" user create --email "$REVERB_PUSHER_ADMIN_EMAIL" --name Bench >/dev/null

if [ -n "${QUICK:-}" ]; then
  compare connections --connections 1000 --rate 2000 --hold 2
  compare fanout --subscribers 1000 --channels 1 --rate 5 --duration 3
  compare fanout --subscribers 1000 --channels 10 --publishers 4 --rate 0 --duration 3
  compare http --concurrency 32 --duration 3
  compare churn --rate 200 --duration 3
  bare connections --connections 1000 --rate 2000 --hold 2
  bare churn --rate 200 --duration 3
  run webhooks --connections 20 --duration 3
  run http-floor --concurrency 32 --duration 3
  run floor --connections 1000 --writers 2 --rate 5 --duration 3
  abuser limited
  run abuse --subscribers 200 --rate 50 --duration 3
else
  compare connections --connections 19000 --rate 2000 --channels 1 --hold 60
  compare fanout --subscribers 10000 --channels 1 --publishers 1 --rate 5 --duration 20
  compare fanout --subscribers 10000 --channels 100 --publishers 4 --rate 0 --duration 20
  compare fanout --subscribers 10000 --channels 100 --publishers 4 --rate 600 --duration 20
  compare http --concurrency 32 --duration 20
  compare http --concurrency 32 --duration 20 --mix-get-channels
  compare churn --rate 500 --duration 30
  # Setup alone (connect + subscribe, no idle time), then setup and churn against the bare
  # server: what the kernel and a minimal event loop cost for the same work.
  compare connections --connections 19000 --rate 2000 --channels 1 --hold 1
  bare connections --connections 19000 --rate 2000 --channels 1 --hold 60
  bare connections --connections 19000 --rate 2000 --channels 1 --hold 1
  bare churn --rate 500 --duration 30
  run webhooks --connections 50 --duration 20
  run http-floor --concurrency 32 --duration 20
  # The same deliveries without a server: the kernel's floor on this machine (both ends of each
  # connection are in the tool, so 9,900 fit under a 20,000 open-file cap).
  run floor --connections 9900 --writers 2 --rate 5 --duration 20
  run floor --connections 9900 --writers 2 --rate 0 --duration 20
  # One app floods REST and connections while another's fan-out is measured: first with no
  # limits on the flooding app, then with its rate limits on.
  abuser unlimited
  run abuse --subscribers 1000 --rate 50 --duration 15
  abuser limited
  run abuse --subscribers 1000 --rate 50 --duration 15
fi
echo "results: $OUT/results.jsonl" >&2
python3 scripts/bench-compare.py "$OUT/results.jsonl" | tee "$OUT/compare.md"
