// Shared by the Chromium benches (run.mjs, hnsw.mjs): playwright-core, installed on first use from
// npm into target/bench/node-tools (pinned like tests/npm/vite-app), and Debian's chromium
// (CHROMIUM overrides `command -v chromium`). Never downloads a browser.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function playwright() {
  const tools = join(repo, 'target/bench/node-tools');
  const want = JSON.parse(readFileSync(join(repo, 'tests/npm/vite-app/package.json'), 'utf8')).devDependencies['playwright-core'];
  const pj = join(tools, 'node_modules/playwright-core/package.json');
  if (!existsSync(pj) || JSON.parse(readFileSync(pj, 'utf8')).version !== want) {
    mkdirSync(tools, { recursive: true });
    writeFileSync(join(tools, 'package.json'), JSON.stringify({ private: true, dependencies: { 'playwright-core': want } }));
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: tools, stdio: 'inherit' });
  }
  return import(pathToFileURL(join(tools, 'node_modules/playwright-core/index.mjs')).href);
}

/** Debian's chromium (CHROMIUM overrides), or null: the lookup of tests/npm/helpers.mjs findChromium. */
export function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}
