#!/usr/bin/env bash
# Builds the npm package `qdrant-edge-wasm`: the cdylib for wasm32-unknown-unknown with the
# release profile (fat LTO), wasm-bindgen (--target web) glue, wasm-opt -Oz from npm's
# binaryen (Debian's binaryen breaks wasm-bindgen output), the files of pkg-template/, then
# `npm pack`. Output: target/npm/package/ and target/npm/qdrant-edge-wasm-<version>.tgz.
# Idempotent. Honors CARGO_TARGET_DIR. QEW_WASM=<file.wasm> skips cargo and packs that already built
# cdylib instead (for work on pkg-template/ only).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT=target/npm
PKG=$OUT/package
TOOLS=$OUT/tools
BINARYEN_VERSION=132.0.0

if [ -n "${QEW_WASM:-}" ]; then
  WASM_IN="$QEW_WASM"
else
  echo "== cargo: cdylib for wasm32-unknown-unknown (release, LTO)"
  cargo rustc --lib --release --target wasm32-unknown-unknown --crate-type cdylib
  WASM_IN="$TARGET_DIR/wasm32-unknown-unknown/release/qdrant_edge_wasm.wasm"
fi

# wasm-bindgen-cli must match the wasm-bindgen crate version pinned in Cargo.toml
WB_WANT=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml)
WB_HAVE=$(wasm-bindgen --version | awk '{print $2}')
if [ "$WB_WANT" != "$WB_HAVE" ]; then
  echo "wasm-bindgen-cli $WB_HAVE does not match the crate's $WB_WANT (cargo install wasm-bindgen-cli --version $WB_WANT)" >&2
  exit 1
fi

echo "== binaryen $BINARYEN_VERSION from npm"
WASM_OPT="$TOOLS/node_modules/binaryen/bin/wasm-opt"
if [ ! -x "$WASM_OPT" ] || ! "$WASM_OPT" --version | grep -q "version ${BINARYEN_VERSION%%.*}"; then
  mkdir -p "$TOOLS"
  echo "{\"private\": true, \"dependencies\": {\"binaryen\": \"$BINARYEN_VERSION\"}}" > "$TOOLS/package.json"
  (cd "$TOOLS" && npm install --no-audit --no-fund --no-package-lock)
fi

echo "== wasm-bindgen --target web"
rm -rf "$PKG" "$OUT/bindgen"
mkdir -p "$PKG" "$OUT/bindgen"
wasm-bindgen --target web --remove-name-section --remove-producers-section \
  --out-dir "$OUT/bindgen" "$WASM_IN"

echo "== wasm-opt -Oz"
# the features wasm-bindgen output uses (simd128 from .cargo/config.toml, and what rustc enables)
"$WASM_OPT" -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/bindgen/qdrant_edge_wasm_bg.wasm" -o "$PKG/qdrant_edge_wasm_bg.wasm"

echo "== assemble $PKG"
cp pkg-template/* "$PKG/"
cp "$OUT/bindgen/qdrant_edge_wasm.js" "$OUT/bindgen/qdrant_edge_wasm.d.ts" "$PKG/"
VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
node -e '
  const fs = require("fs"); const p = process.argv[1] + "/package.json";
  const j = JSON.parse(fs.readFileSync(p, "utf8")); j.version = process.argv[2];
  fs.writeFileSync(p, JSON.stringify(j, null, 2) + "\n");
' "$PKG" "$VERSION"

RAW=$(wc -c < "$OUT/bindgen/qdrant_edge_wasm_bg.wasm")
OPT=$(wc -c < "$PKG/qdrant_edge_wasm_bg.wasm")
GZ=$(gzip -9 -c "$PKG/qdrant_edge_wasm_bg.wasm" | wc -c)
echo "wasm: after wasm-bindgen $RAW bytes; after wasm-opt -Oz $OPT bytes; gzip -9 $GZ bytes"

echo "== npm pack"
rm -f "$OUT"/qdrant-edge-wasm-*.tgz
(cd "$OUT" && npm pack ./package --pack-destination . --silent)
ls -l "$OUT"/qdrant-edge-wasm-*.tgz
