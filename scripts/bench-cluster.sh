#!/usr/bin/env bash
# Cluster benchmarks on the local Redis, release builds, one SQLite database per part:
#
#   scripts/bench-cluster.sh connections   N nodes (default 5), one load-tool process per node
#                                          holding idle connections (each process and each node
#                                          has its own 20,000 open-file cap): the total held and
#                                          each node's RSS per connection.
#   scripts/bench-cluster.sh fanout        cross-node fan-out: one node alone (no cluster), then
#                                          3 clustered nodes with the publisher on the first and
#                                          the subscribers spread over all 3, the same load; the
#                                          server CPU per delivery summed over the nodes (and
#                                          Redis's CPU over the whole run beside it).
#   scripts/bench-cluster.sh               both.
#
#   NODES=2 CONNECTIONS=2000 HOLD=10 scripts/bench-cluster.sh connections   # a quick check
# Prints JSON lines, also kept in target/bench/cluster.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PART=${1:-all}

NODES=${NODES:-5}
CONNECTIONS=${CONNECTIONS:-19000}
HOLD=${HOLD:-60}
RATE=${RATE:-2000}
REDIS=${REDIS_URL:-redis://127.0.0.1:6379/}
# fanout: subscribers on one channel, events per second, seconds, payload bytes.
SUBSCRIBERS=${SUBSCRIBERS:-9000}
FANOUT_CHANNELS=${FANOUT_CHANNELS:-1}
FANOUT_RATE=${FANOUT_RATE:-5}
DURATION=${DURATION:-10}
REVERB_PUSHER_SKIP_UI=1 cargo build --release -q -p reverb-pusher -p reverb-pusher-bench
SERVER=target/release/reverb-pusher
BENCH=target/release/reverb-pusher-bench
WORK=$(mktemp -d)
OUT=target/bench
mkdir -p "$OUT"
: > "$OUT/cluster.jsonl"

export REVERB_PUSHER_DATABASE_URL="sqlite://$WORK/bench.db"
export REVERB_PUSHER_MASTER_KEY_FILE="$WORK/master.key"
export REVERB_PUSHER_LOG_LEVEL=warn
export REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS=${REVERB_PUSHER_ACTIVITY_TIMEOUT_SECS:-15}
export REVERB_PUSHER_CLUSTER_REDIS_URL="$REDIS"
export REVERB_PUSHER_CLUSTER_KEY_PREFIX="bench-$$-$RANDOM"
"$SERVER" migrate >/dev/null
"$SERVER" app create --name bench --json > "$WORK/app.json"
read -r PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET < <(python3 -c \
  'import json,sys; a=json.load(open(sys.argv[1])); print(a["id"], a["key"], a["secret"])' "$WORK/app.json")
export PUSHER_APP_ID PUSHER_APP_KEY PUSHER_APP_SECRET

PIDS=()
stop_nodes() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_nodes
  redis-cli -u "$REDIS" --scan --pattern "$REVERB_PUSHER_CLUSTER_KEY_PREFIX:*" | xargs -r redis-cli -u "$REDIS" unlink >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
# start_nodes N: N nodes on ports 6201.. (cluster settings from the environment).
start_nodes() {
  for i in $(seq "$1"); do
    REVERB_PUSHER_CLUSTER_NODE_ID="node-$i" "$SERVER" --host 127.0.0.1 --port "$((6200 + i))" >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in $(seq "$1"); do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$((6200 + i))/up" >/dev/null 2>&1 && break; sleep 0.1; done
  done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

connections_part() {
start_nodes "$NODES"

# One tool per node, each over its own 16 loopback source addresses, all at once.
TOOLS=()
for i in $(seq "$NODES"); do
  "$BENCH" --url "http://127.0.0.1:$((6200 + i))" --server-pid "${PIDS[$((i - 1))]}" --source-addresses 16 \
    connections --connections "$CONNECTIONS" --rate "$RATE" --channels 1 --hold "$HOLD" \
    >"$WORK/tool-$i.out" 2>&1 &
  TOOLS+=($!)
done
failed=0
for pid in "${TOOLS[@]}"; do wait "$pid" || failed=1; done
for i in $(seq "$NODES"); do
  echo "== node-$i" >&2
  cat "$WORK/tool-$i.out" >&2
  tail -1 "$WORK/tool-$i.out" >> "$OUT/cluster.jsonl"
done
python3 - "$OUT/cluster.jsonl" <<'PY' | tee -a "$OUT/cluster.jsonl"
import json, sys
rows = [r for r in (json.loads(l) for l in open(sys.argv[1]) if l.startswith("{"))
        if r.get("scenario") == "connections"]
held = sum((r.get("opened") or 0) - (r.get("dropped") or 0) for r in rows)
per = [r.get("rss_per_connection_bytes") for r in rows if r.get("rss_per_connection_bytes")]
print(json.dumps({"scenario": "cluster-connections", "nodes": len(rows), "held": held,
                  "failed": sum(r.get("failed") or 0 for r in rows),
                  "dropped": sum(r.get("dropped") or 0 for r in rows),
                  "pings_answered": sum(r.get("pings_answered") or 0 for r in rows),
                  "rss_per_connection_bytes": per}))
PY
stop_nodes
# The same sitting's single-node figure: one node without the cluster, the same load.
(
  unset REVERB_PUSHER_CLUSTER_REDIS_URL
  start_nodes 1
  "$BENCH" --url http://127.0.0.1:6201 --server-pid "${PIDS[0]}" --source-addresses 16 \
    connections --connections "$CONNECTIONS" --rate "$RATE" --channels 1 --hold "$HOLD" \
    >"$WORK/single.out" 2>&1 || exit 1
  cat "$WORK/single.out" >&2
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]="single-node"; print(json.dumps(r))' \
    "$(tail -1 "$WORK/single.out")" | tee -a "$OUT/cluster.jsonl"
  stop_nodes
) || failed=1
return $failed
}

# fanout_run LABEL N: the fan-out load against N fresh nodes, the publisher on the first.
fanout_run() {
  local label=$1 n=$2 urls="" pids="" redis_pid before after
  start_nodes "$n"
  for i in $(seq "$n"); do
    urls="$urls${urls:+,}http://127.0.0.1:$((6200 + i))"
    pids="$pids${pids:+,}${PIDS[$((i - 1))]}"
  done
  redis_pid=$(redis-cli -u "$REDIS" info server | tr -d '\r' | sed -n 's/^process_id://p')
  before=$(cpu_ticks "$redis_pid" 2>/dev/null || echo "")
  "$BENCH" --url http://127.0.0.1:6201 --subscriber-url "$urls" --server-pid "$pids" \
    fanout --subscribers "$SUBSCRIBERS" --channels "$FANOUT_CHANNELS" --rate "$FANOUT_RATE" \
    --duration "$DURATION" >"$WORK/fanout-$label.out" 2>&1
  after=$(cpu_ticks "$redis_pid" 2>/dev/null || echo "")
  cat "$WORK/fanout-$label.out" >&2
  python3 - "$label" "$(tail -1 "$WORK/fanout-$label.out")" "$before" "$after" "$(getconf CLK_TCK)" <<'PY' | tee -a "$OUT/cluster.jsonl"
import json, sys
label, row, before, after, hz = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
row["label"] = label
if before and after:
    # Over the whole run (the subscribes too), not only the publishing window.
    row["redis_cpu_secs_whole_run"] = (int(after) - int(before)) / hz
print(json.dumps(row))
PY
  stop_nodes
}

fanout_part() {
  # The same sitting: one node without the cluster, then three clustered nodes.
  (unset REVERB_PUSHER_CLUSTER_REDIS_URL; fanout_run single-node 1)
  fanout_run cluster-3-nodes 3
}

failed=0
case "$PART" in
  connections) connections_part || failed=1 ;;
  fanout) fanout_part ;;
  all) connections_part || failed=1; fanout_part ;;
  *) echo "usage: $0 [connections|fanout]" >&2; exit 2 ;;
esac
exit $failed
