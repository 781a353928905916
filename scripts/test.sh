#!/usr/bin/env bash
# Runs the whole test suite:
#   1. Rust unit tests and the integration suite on SQLite;
#   2. the integration suite again on PostgreSQL and on MySQL/MariaDB (servers on loopback;
#      override with TEST_POSTGRES_URL / TEST_MYSQL_URL);
#   3. the Node suites against the binary: conformance with the real pusher-js client and
#      `pusher` Node SDK (on one node, and again across a 2-node cluster on the local Redis),
#      the panel's Cluster page, a real-process operations test, the documentation's client snippets
#      (pusher-js, the Node and Python SDKs, Laravel Echo), and the admin UI in headless Chromium;
#   4. the chat example (examples/chat): its pinned packages installed, its production build,
#      and its tests (two users in headless Chromium against the binary).
# Before those, the documentation site is built and its links checked (scripts/docs.sh), and the
# server embeds that book.
# Installs what it needs first (the wasm32 target for the embedded admin UI, the MariaDB client
# library, the pinned npm and PyPI packages, mdBook), so it works on a fresh machine.
set -uo pipefail
cd "$(dirname "$0")/.."

# No TLS to the local PostgreSQL (Debian enables it): the integration binary exits with test
# servers still running, and OpenSSL's exit-time cleanup then raced libpq's live TLS sessions
# (a SIGSEGV in libcrypto after every test had passed, seen once in CI).
POSTGRES_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
MYSQL_URL=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
FEATURES=reverb-pusher/all-databases,reverb-pusher-tests/all-databases

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || {
  echo "error: cannot add the wasm32-unknown-unknown target (is rustup installed?)" >&2
  exit 1
}
if ! pkg-config --exists libpq libmariadb 2>/dev/null; then
  echo "installing the PostgreSQL and MariaDB client libraries (Debian packages)..."
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq \
    pkg-config libpq-dev libmariadb-dev >/dev/null || { echo "error: apt-get install failed" >&2; exit 1; }
fi
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing Chromium for the browser test (Debian package)..."
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null \
    || { echo "error: cannot install chromium" >&2; exit 1; }
fi
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error) || exit 1
mkdir -p target
# The `pusher` Python SDK for the documentation's Python snippet, in a venv of its own.
if [ ! -x target/py/bin/python ] || ! cmp -s tests/python/requirements.txt target/py/requirements.txt; then
  rm -rf target/py
  { python3 -m venv target/py \
    && target/py/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt \
    && cp tests/python/requirements.txt target/py/requirements.txt; } \
    || { echo "error: cannot install the Python packages (tests/python/requirements.txt)" >&2; exit 1; }
fi

status=0
started=$SECONDS
# Each phase's heading says how long the run has taken so far (CI has a deadline).
phase() { echo "== $1 (at $(( (SECONDS - started) / 60 ))m$(( (SECONDS - started) % 60 ))s) =="; }
phase "docs: build the book, check its links, lint the Dockerfile"
docs_passed=0
docs_failed=0
./scripts/docs.sh 2>&1 | tee target/docs.log
if [ "${PIPESTATUS[0]}" -eq 0 ]; then docs_passed=1; else docs_failed=1; status=1; fi
# The server embeds the same book (server/build.rs); with mdBook installed, a build without it
# would be an error rather than a placeholder page.
MDBOOK="${CARGO_HOME:-$HOME/.cargo}/bin/mdbook"
if [ -x "$MDBOOK" ]; then
  export REVERB_PUSHER_MDBOOK="$MDBOOK" REVERB_PUSHER_REQUIRE_DOCS=1
fi

# The integration suite runs under cargo-nextest where it is installed (it is on the CI machine
# kind): each test in its own process, killed after the time limit in .config/nextest.toml, so a
# stuck test fails alone instead of holding the run until CI's own deadline.
if cargo nextest --version >/dev/null 2>&1; then
  integration() { cargo nextest run --no-fail-fast -p reverb-pusher-tests --features all-databases --test integration; }
else
  echo "cargo-nextest is not installed: the integration suite runs under cargo test (no per-test time limit)"
  integration() { cargo test -p reverb-pusher-tests --features all-databases --test integration; }
fi

: > target/cargo-test.log
phase "build the server (debug, with the admin panel and the book)"
cargo build -p reverb-pusher --features all-databases || exit 1

phase "Rust unit and doc tests"
for targets in "--lib --bins" "--doc"; do
  # shellcheck disable=SC2086 # two words on purpose
  cargo test --workspace --exclude admin-ui --features "$FEATURES" $targets 2>&1 | tee -a target/cargo-test.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
phase "integration suite on SQLite"
(unset TEST_DATABASE_URL; integration) 2>&1 | tee -a target/cargo-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
for url in "$POSTGRES_URL" "$MYSQL_URL"; do
  phase "integration suite on ${url%%://*}"
  (export TEST_DATABASE_URL="$url"; integration) 2>&1 | tee -a target/cargo-test.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done

phase "conformance: pusher-js and the pusher Node SDK; the documentation's snippets; the panel"
(cd tests/node && SERVER_BIN="$PWD/../../target/debug/reverb-pusher" DOCS_PYTHON="$PWD/../../target/py/bin/python" \
  node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec conformance.test.js conformance-cluster.test.js cluster-ui.test.js operations.test.js docs.test.js ui.test.js webhooks-ui.test.js dashboard.test.js) 2>&1 | tee target/node-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# better-sqlite3 (the chat example's database driver) publishes prebuilt binaries on GitHub only;
# where that is unreachable `npm ci` compiles it, 2 to 4 minutes on two cores. After a compile
# the addon is put into prebuild-install's own download cache, under the name it looks for (the
# version, Node ABI and platform are in it), so the next `npm ci` installs it in seconds. Where
# GitHub is reachable the probe simply downloads the official binary into that cache.
keep_native_build() {
  local pkg=node_modules/better-sqlite3 cached
  cached=$(cd "$pkg" && npm_config_cache="$(npm config get cache)" ../.bin/prebuild-install --verbose 2>&1 \
    | sed -n 's/.*looking for cached prebuild @ //p')
  if [ -n "$cached" ] && [ ! -f "$cached" ] && [ -f "$pkg/build/Release/better_sqlite3.node" ]; then
    mkdir -p "$(dirname "$cached")" \
      && tar -czf "$cached.tmp" -C "$pkg" build/Release/better_sqlite3.node && mv "$cached.tmp" "$cached"
  fi
  return 0
}

phase "example: the chat app (examples/chat) against the binary, in headless Chromium"
(cd examples/chat && export NEXT_TELEMETRY_DISABLED=1 \
  && npm ci --no-audit --no-fund --loglevel=error && keep_native_build && npm run build \
  && SERVER_BIN="$PWD/../../target/debug/reverb-pusher" \
     node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec test/*.test.mjs) 2>&1 | tee target/chat-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# One closing line for every runner.
# Only the runners' own result lines: cargo test's "test result:" and nextest's "Summary" (the
# output nextest shows for a failed test is indented, its inner "test result:" is not counted).
rust_results=$(grep -E '^test result:|^ +Summary \[' target/cargo-test.log)
rust_passed=$(grep -oE '[0-9]+ passed' <<<"$rust_results" | awk '{s+=$1} END {print s+0}')
# cargo test says "N failed"; nextest says "N failed" and "N timed out".
rust_failed=$(grep -oE '[0-9]+ (failed|timed out)' <<<"$rust_results" | awk '{s+=$1} END {print s+0}')
node_passed=$(grep -E '^ℹ pass [0-9]+' target/node-test.log | awk '{print $3}')
node_failed=$(grep -E '^ℹ fail [0-9]+' target/node-test.log | awk '{print $3}')
chat_passed=$(grep -E '^ℹ pass [0-9]+' target/chat-test.log | awk '{print $3}')
chat_failed=$(grep -E '^ℹ fail [0-9]+' target/chat-test.log | awk '{print $3}')
passed=$((rust_passed + ${node_passed:-0} + docs_passed + ${chat_passed:-0}))
failed=$((rust_failed + ${node_failed:-0} + docs_failed + ${chat_failed:-0}))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo
echo "rust (SQLite, PostgreSQL, MySQL): ${rust_passed} passed, ${rust_failed} failed; node (pusher-js and SDK conformance, operations, docs snippets, browser UI): ${node_passed:-0} passed, ${node_failed:-0} failed; docs build and link check: ${docs_passed} passed, ${docs_failed} failed; chat example: ${chat_passed:-0} passed, ${chat_failed:-0} failed"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
