// The Node and Chromium rows of benches/run_browser.py (run by it; not standalone):
//   node benches/browser/run.mjs <data-dir> <out.json> <node-fs-dir> [rows...]
// rows: node-fs, chromium-memory, chromium-opfs, chromium-idb (default: all). Needs the packed
// package in target/npm/package (scripts/build-npm.sh) and playwright-core, installed on first
// use from npm into target/bench/node-tools (pinned like tests/npm/vite-app). It drives Debian's
// chromium (CHROMIUM overrides `command -v chromium`); it never downloads a browser.

import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import os from 'node:os';
import { runBackend } from './bench.js';
import { playwright } from './tools.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const pkgDir = join(repo, 'target/npm/package');
const [dataDir, outPath, fsDir, ...onlyRows] = process.argv.slice(2);
const rows = onlyRows.length ? onlyRows : ['node-fs', 'chromium-memory', 'chromium-opfs', 'chromium-idb'];
if (!existsSync(join(pkgDir, 'index.js'))) throw new Error('no target/npm/package: run scripts/build-npm.sh first');

function loadData() {
  const f32 = (f) => {
    const b = readFileSync(join(dataDir, f));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  return { meta: JSON.parse(readFileSync(join(dataDir, 'meta.json'), 'utf8')), vectors: f32('vectors.f32'), queries: f32('queries.f32') };
}

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' };
function serve() {
  const roots = { '/pkg/': pkgDir, '/data/': resolve(dataDir) };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    let file = null;
    if (path === '/') file = join(here, 'index.html');
    else if (path === '/bench.js') file = join(here, 'bench.js');
    else
      for (const [prefix, root] of Object.entries(roots))
        if (path.startsWith(prefix)) {
          const f = normalize(join(root, path.slice(prefix.length)));
          if (f.startsWith(root)) file = f;
        }
    if (file && existsSync(file) && statSync(file).isFile()) {
      // cross-origin isolated: performance.now() then ticks in 5 us instead of 100 us
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
      });
      return createReadStream(file).pipe(res);
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

const results = { node_version: process.version, cpus: os.cpus().length, loadavg_before: os.loadavg(), rows: {} };
const data = loadData();

if (rows.includes('node-fs')) {
  const { EdgeShard } = await import(pathToFileURL(join(pkgDir, 'node.js')).href);
  console.error('== node fs');
  results.rows['node-fs'] = await runBackend(EdgeShard, { storage: 'fs', name: resolve(fsDir), data });
}

const browserRows = rows.filter((r) => r.startsWith('chromium-'));
if (browserRows.length) {
  const { chromium } = await playwright();
  const executablePath = process.env.CHROMIUM || execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  const site = await serve();
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-quic'],
  });
  try {
    results.browser_version = browser.version();
    const page = await browser.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`http://127.0.0.1:${site.address().port}/`);
    await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60_000 }).catch((e) => {
      throw new Error(`${e.message}\n${logs.join('\n')}`);
    });
    for (const row of browserRows) {
      const storage = row.slice('chromium-'.length);
      console.error(`== chromium ${storage} (dedicated worker)`);
      const r = await page.evaluate((s) => window.bench(s), storage);
      if (r.error) throw new Error(`${row}: ${r.error}\n${logs.join('\n')}`);
      r.ok.cross_origin_isolated = r.isolated;
      results.rows[row] = r.ok;
    }
  } finally {
    await browser.close();
    site.close();
  }
}
results.loadavg_after = os.loadavg();
writeFileSync(outPath, JSON.stringify(results));
