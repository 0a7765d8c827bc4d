#!/usr/bin/env bash
# Builds the demo PWA (www/) into target/www and serves it on http://127.0.0.1:8080/ (a plain
# node:http static server; service workers and OPFS need a secure context: localhost/127.0.0.1
# or HTTPS).
#   scripts/www.sh                 build, then serve (--port N, --host H; PORT also works)
#   scripts/www.sh --build-only    just build
# The app uses the packed npm package (target/npm/package): when it is missing, this runs
# scripts/build-npm.sh first (QEW_WASM=<file.wasm> packs an already built wasm without cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f target/npm/package/qdrant_edge_wasm_bg.wasm ]; then
  bash scripts/build-npm.sh
fi
exec node scripts/www.mjs "$@"
