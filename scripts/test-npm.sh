#!/usr/bin/env bash
# Builds the npm package (scripts/build-npm.sh) and tests it under Node: tests/npm/*.test.mjs
# install the packed tarball offline into a temporary project. TypeScript (for the check that
# index.d.ts type-checks a usage file) is installed from npm into target/npm/ts-tools. The browser
# test (tests/npm/browser.test.mjs) drives headless Chromium through chromedriver (PATH or
# CHROMEDRIVER).
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

echo "== node --test tests/npm"
QEW_TSC="$PWD/$TS/node_modules/.bin/tsc" node --test tests/npm/
