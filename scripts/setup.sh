#!/usr/bin/env bash
# Installs what the tests and the demo need, skipping what is already there.
# Everything comes from the package registries (rustup, PyPI); nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

need_targets=()
for t in wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2; do
  rustup target list --installed | grep -qx "$t" || need_targets+=("$t")
done
if [ ${#need_targets[@]} -gt 0 ]; then
  rustup target add "${need_targets[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import qdrant_edge, wasmtime, numpy' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check qdrant-edge-py==0.9.0 wasmtime==50.0.1 numpy
fi
