#!/usr/bin/env bash
# The demo: a real Qdrant 1.19 shard (tests/data/demo-shard, from the `basic` fixture) queried
# by the wasi-demo CLI compiled to wasm32-wasip1 and run under wasmtime. No server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p wasi-demo --target wasm32-wasip1 2>&1 | tail -1
WASM=target/wasm32-wasip1/release/wasi-demo.wasm
PY=.venv/bin/python
SHARD=target/demo-shard
if [ ! -d "$SHARD/segments" ]; then
  mkdir -p "$SHARD"
  tar -xzf tests/data/demo-shard.tar.gz -C "$SHARD"
fi
run() { echo "\$ wasi-demo /shard $*"; "$PY" scripts/wasi-runner.py --dir "$SHARD::/shard" "$WASM" /shard "$@"; echo; }
run info
run count '{"filter": {"must": [{"key": "color", "match": {"value": "red"}}]}}'
run facet '{"key": "color", "limit": 3}'
run scroll '{"limit": 2, "with_payload": ["color", "n"]}'
run query '{"query": [0.1, -0.2, 0.3, 0.05, 0.2, -0.1, 0.0, 0.4, -0.3, 0.1, 0.2, -0.2, 0.3, 0.1, -0.1, 0.2, 0.05, -0.05, 0.1, 0.3, -0.2, 0.1, 0.0, 0.2, -0.1, 0.1, 0.2, -0.3, 0.1, 0.0, 0.2, 0.1], "using": "v", "limit": 3, "with_payload": ["color", "price"], "filter": {"must": [{"key": "price", "range": {"lt": 100}}]}}'
