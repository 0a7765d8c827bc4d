#!/usr/bin/env bash
# Installs what the tests and the demo need, skipping what is already there.
# Everything comes from the package registries (rustup, crates.io, PyPI, Debian apt); nothing
# else is downloaded (no browser or binary from anywhere else).
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

# Browser tests: wasm-bindgen's test runner (must equal the wasm-bindgen crate version in
# Cargo.lock) and Debian's Chromium with its driver.
WBG=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WBG\b" || ! command -v wasm-bindgen-test-runner >/dev/null; then
  # no --locked: the CLI's lock file pins a webpki-roots the registry does not serve
  cargo install wasm-bindgen-cli --version "$WBG"
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
