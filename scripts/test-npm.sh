#!/usr/bin/env bash
# Builds the npm package (scripts/build-npm.sh) and tests it under Node: tests/npm/*.test.mjs
# install the packed tarball offline into a temporary project. TypeScript (for the check that
# index.d.ts type-checks a usage file) is installed from npm into target/npm/ts-tools. The browser
# test (tests/npm/browser.test.mjs) drives headless Chromium through chromedriver (PATH or
# CHROMEDRIVER). The Vite fixture app (tests/npm/vite-app, tests/npm/vite.test.mjs) is installed
# into target/npm/vite-app: pinned vite and playwright-core from npm (once), and the fresh tarball
# (every run); playwright-core drives Debian's chromium (never a downloaded browser).
# The demo PWA test (tests/npm/www.test.mjs) builds www/ into target/www (scripts/www.mjs) and
# drives it with the same playwright-core.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-npm.sh

TS_VERSION=5.9.3
TS=target/npm/ts-tools
if [ ! -x "$TS/node_modules/.bin/tsc" ] || [ "$("$TS/node_modules/.bin/tsc" --version)" != "Version $TS_VERSION" ]; then
  mkdir -p "$TS"
  echo "{\"private\": true, \"dependencies\": {\"typescript\": \"$TS_VERSION\"}}" > "$TS/package.json"
  (cd "$TS" && npm install --no-audit --no-fund --no-package-lock)
fi

echo "== Vite fixture app in target/npm/vite-app"
APP=target/npm/vite-app
mkdir -p "$APP"
cp tests/npm/vite-app/package.json tests/npm/vite-app/index.html tests/npm/vite-app/main.js tests/npm/vite-app/vite.config.js "$APP/"
# the app depends on file:../qdrant-edge-wasm.tgz: a copy of the tarball under a fixed name
cp target/npm/qdrant-edge-wasm-*.tgz target/npm/qdrant-edge-wasm.tgz
pinned() { node -p "require('./tests/npm/vite-app/package.json').devDependencies['$1']"; }
installed() { node -p "try { require('./$APP/node_modules/$1/package.json').version } catch { '' }"; }
rm -rf "$APP/node_modules/qdrant-edge-wasm"
if [ "$(installed vite)" = "$(pinned vite)" ] && [ "$(installed playwright-core)" = "$(pinned playwright-core)" ]; then
  (cd "$APP" && npm install --offline --no-audit --no-fund --no-package-lock)
else
  (cd "$APP" && npm install --prefer-offline --no-audit --no-fund --no-package-lock)
fi

echo "== node --test tests/npm"
QEW_TSC="$PWD/$TS/node_modules/.bin/tsc" QEW_VITE_APP="$PWD/$APP" node --test tests/npm/
