#!/usr/bin/env bash
# Runs the whole test suite: Rust unit and integration tests, then the conformance suite that
# drives the real pusher-js client and `pusher` Node SDK against the server binary.
# Installs what it needs first (the wasm32 target for the embedded admin UI, the pinned npm
# packages), so it works on a fresh machine.
set -uo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || {
  echo "error: cannot add the wasm32-unknown-unknown target (is rustup installed?)" >&2
  exit 1
}
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error) || exit 1

mkdir -p target
cargo build -p reverb-pusher || exit 1

cargo test --workspace --exclude admin-ui 2>&1 | tee target/cargo-test.log
cargo_status=${PIPESTATUS[0]}

(cd tests/node && SERVER_BIN="$PWD/../../target/debug/reverb-pusher" \
  node --test --test-concurrency=1 --test-reporter=spec conformance.test.js) 2>&1 | tee target/node-test.log
node_status=${PIPESTATUS[0]}

# One closing line for both runners.
rust_passed=$(grep -o '[0-9]* passed' target/cargo-test.log | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -o '[0-9]* failed' target/cargo-test.log | awk '{s+=$1} END {print s+0}')
node_passed=$(grep -E '^ℹ pass [0-9]+' target/node-test.log | awk '{print $3}')
node_failed=$(grep -E '^ℹ fail [0-9]+' target/node-test.log | awk '{print $3}')
passed=$((rust_passed + ${node_passed:-0}))
failed=$((rust_failed + ${node_failed:-0}))
if [ "$cargo_status" -ne 0 ] || [ "$node_status" -ne 0 ]; then
  [ "$failed" -eq 0 ] && failed=1
fi
echo
echo "rust: ${rust_passed} passed, ${rust_failed} failed; conformance (pusher-js, pusher SDK): ${node_passed:-0} passed, ${node_failed:-0} failed"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
