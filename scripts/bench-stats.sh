#!/usr/bin/env bash
# What statistics cost: the same fan-out and REST loads against a release server with
# `stats_enabled` on and off, alternating (on, off, on, off, ...) so that drift in the machine
# shows up as spread rather than as a difference. A fresh server and database for every run.
# Prints one JSON line per run (also kept in target/bench/stats.jsonl) and a summary per setting.
#
#   scripts/bench-stats.sh                # 3 rounds
#   ROUNDS=1 DURATION=3 scripts/bench-stats.sh   # a quick check
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SUBSCRIBERS=${SUBSCRIBERS:-5000}
PORT=${PORT:-6301}
REVERB_PUSHER_SKIP_UI=1 cargo build --release -q -p reverb-pusher -p reverb-pusher-bench
SERVER=target/release/reverb-pusher
BENCH=target/release/reverb-pusher-bench
WORK=$(mktemp -d)
OUT=target/bench
mkdir -p "$OUT"
: > "$OUT/stats.jsonl"
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export REVERB_PUSHER_LOG_LEVEL=warn
# The sampler writes every 60 s by default; every second here, so writes fall inside each run.
export REVERB_PUSHER_STATS_SAMPLE_SECS=1

# run_one on|off SCENARIO ARGS...: a fresh server, one load, the JSON line tagged with the setting.
run_one() {
  local stats=$1
  shift
  rm -rf "$WORK/db" && mkdir -p "$WORK/db"
  export REVERB_PUSHER_DATABASE_URL="sqlite://$WORK/db/bench.db" REVERB_PUSHER_MASTER_KEY_FILE="$WORK/db/master.key"
  export REVERB_PUSHER_STATS_ENABLED=$([ "$stats" = on ] && echo true || echo false)
  "$SERVER" app create --name bench --json >"$WORK/app.json"
  read -r PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET < <(python3 -c \
    'import json,sys; a=json.load(open(sys.argv[1])); print(a["id"], a["key"], a["secret"])' "$WORK/app.json")
  export PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET
  "$SERVER" --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/up" >/dev/null 2>&1 && break; sleep 0.1; done
  "$BENCH" --url "http://127.0.0.1:$PORT" --server-pid "$PID" --source-addresses 16 "$@" >"$WORK/run.out" 2>&1
  kill "$PID" && wait "$PID" 2>/dev/null || true
  PID=
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); r["stats"]=sys.argv[1]; print(json.dumps(r))' \
    "$stats" "$(tail -1 "$WORK/run.out")" | tee -a "$OUT/stats.jsonl"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round" >&2
  for stats in on off; do
    run_one "$stats" fanout --subscribers "$SUBSCRIBERS" --channels 1 --rate 20 --duration "$DURATION"
    run_one "$stats" fanout --subscribers "$SUBSCRIBERS" --channels 100 --publishers 4 --rate 0 --duration "$DURATION"
    run_one "$stats" http --concurrency 32 --duration "$DURATION"
  done
done

python3 - "$OUT/stats.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def shape(r):
    if r["scenario"] == "fanout":
        return f'fanout {r["channels"]} x {r["subscribers"] // r["channels"]}, rate {r["rate"] or "full"}'
    return f'http c={r.get("concurrency")}'
def figure(r):
    if r["scenario"] == "fanout":
        return r.get("server_cpu_us_per_delivery"), r.get("delivered") == r.get("expected")
    return r.get("server_cpu_us_per_request"), True
for name in dict.fromkeys(shape(r) for r in rows):
    line = [name]
    for stats in ("on", "off"):
        figs = [figure(r) for r in rows if shape(r) == name and r["stats"] == stats]
        vals = [f for f, _ in figs if f is not None]
        lost = sum(1 for _, ok in figs if not ok)
        if vals:
            line.append(f'stats {stats}: median {statistics.median(vals):.2f} us '
                        f'(min {min(vals):.2f}, max {max(vals):.2f}, runs {len(vals)}, runs with losses {lost})')
    print(" | ".join(line))
PY
