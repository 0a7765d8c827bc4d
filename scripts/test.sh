#!/usr/bin/env bash
# Runs every test: the differential corpus against qdrant-edge-py, native unit and integration
# tests, the library build for all four targets, the storage conformance suite under WASI
# (preview 1 and 2, with wasmtime), the wasi-demo CLI under wasmtime, and the browser bindings
# under Node and in headless Chromium's dedicated worker (wasm-bindgen-test), and the npm package
# (Node entry, and the Worker facade in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export QEW_CORPUS="${QEW_CORPUS:-$ROOT/target/corpus}"
export QEW_SHARED="${QEW_SHARED:-$ROOT/../shared}"
export QEW_PYTHON="${QEW_PYTHON:-$ROOT/.venv/bin/python}"
PY=$ROOT/.venv/bin/python

bash scripts/setup.sh

echo "== corpus: shards and answers from qdrant-edge-py 0.9.0 -> $QEW_CORPUS"
mkdir -p "$QEW_CORPUS"
for gen in tests/corpus/generate.py tests/corpus/make_wal_shards.py tests/corpus/filter_oracle.py; do
  if [ -f "$gen" ]; then "$PY" "$gen" --out "$QEW_CORPUS"; fi
done
"$PY" tests/corpus/make_snapshots.py --out "$QEW_CORPUS/snapshots"
# a subset of it for the browser test (tests/web_corpus.rs embeds it)
"$PY" tests/corpus/web_bundle.py --corpus "$QEW_CORPUS"

echo "== native tests"
cargo test --workspace --all-features --release

echo "== library builds for wasm32-unknown-unknown, wasm32-wasip1, wasm32-wasip2"
for t in wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2; do
  cargo build --lib --release --target "$t"
done

echo "== storage conformance under WASI (wasmtime)"
for t in wasm32-wasip1 wasm32-wasip2; do
  T=$(echo "$t" | tr 'a-z-' 'A-Z_')
  env "CARGO_TARGET_${T}_RUNNER=$PY $ROOT/scripts/wasi-runner.py" CONFORMANCE_TMP=. \
    cargo test --release --target "$t" --features testing --test storage_conformance
done

echo "== wasi-demo under wasmtime vs native"
cargo build --release -p wasi-demo
cargo build --release -p wasi-demo --target wasm32-wasip1
"$PY" tests/cli_wasi.py --wasm target/wasm32-wasip1/release/wasi-demo.wasm --native target/release/wasi-demo

echo "== browser bindings: Node, and headless Chromium in a dedicated worker (OPFS, IndexedDB)"
CHROMEDRIVER=$(command -v chromedriver) WASM_BINDGEN_TEST_TIMEOUT=300 \
  cargo test --release --target wasm32-unknown-unknown --features testing --test web_node --test web_worker --test web_corpus

echo "== npm package: build (wasm-bindgen, wasm-opt), Node tests, the Worker facade in headless Chromium"
bash scripts/test-npm.sh
