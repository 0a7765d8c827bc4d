// The Chromium rows of benches/run_hnsw.py (run by it; not standalone):
//   node benches/browser/hnsw.mjs <pkg-dir> <work-dir> <out.json> [--storage memory] [--rtt FROM:TO]
// <pkg-dir>: the packed npm package (scripts/build-npm.sh: target/npm/package). <work-dir>: holds
// shard.snapshot (a full snapshot archive of the qdrant-edge-py shard) and queries.json (the REST
// query bodies), both written by run_hnsw.py. Serves them from a local HTTP server (cross-origin
// isolated, so performance.now() ticks in 5 us), opens hnsw.html in headless Debian chromium
// through playwright-core, restores the archive with EdgeShard.restoreSnapshot into the given
// storage in the shard's dedicated Worker (hnsw-worker.js), and writes what the page returns:
// per-query latencies timed inside the worker, ids, and the round trips seen by the page.

import { createServer } from 'node:http';
import { createReadStream, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { findChromium, playwright } from './tools.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const k = argv.indexOf(name);
  if (k < 0) return dflt;
  const v = argv[k + 1];
  argv.splice(k, 2);
  return v;
};
const storage = opt('--storage', 'memory');
const [rttFrom, rttTo] = opt('--rtt', '0:0').split(':').map(Number);
const [pkgDir, workDir, outPath] = argv.map((p) => resolve(p));
if (!outPath) throw new Error('usage: hnsw.mjs <pkg-dir> <work-dir> <out.json> [--storage memory] [--rtt FROM:TO]');
if (!existsSync(join(pkgDir, 'index.js'))) throw new Error(`${pkgDir}: no packed package (scripts/build-npm.sh)`);
for (const f of ['shard.snapshot', 'queries.json']) if (!existsSync(join(workDir, f))) throw new Error(`${workDir}: no ${f}`);

// the flags asked for the benchmark; playwright adds its own defaults (it runs headless)
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' };
function serve() {
  const files = { '/': join(here, 'hnsw.html'), '/hnsw-worker.js': join(here, 'hnsw-worker.js'),
    '/bench/shard.snapshot': join(workDir, 'shard.snapshot'), '/bench/queries.json': join(workDir, 'queries.json') };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    let file = files[path] ?? null;
    if (!file && path.startsWith('/pkg/')) {
      const f = normalize(join(pkgDir, path.slice('/pkg/'.length)));
      if (f.startsWith(pkgDir + '/')) file = f;
    }
    if (file && existsSync(file) && statSync(file).isFile()) {
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': statSync(file).size,
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

const executablePath = findChromium();
if (!executablePath) throw new Error('no chromium (install Debian chromium or set CHROMIUM)');
const { chromium } = await playwright();
const site = await serve();
const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
const result = { chromium: executablePath, args: CHROMIUM_ARGS, node_version: process.version, loadavg_before: os.loadavg() };
try {
  result.browser_version = browser.version();
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(`http://127.0.0.1:${site.address().port}/`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60_000 }).catch((e) => {
    throw new Error(`${e.message}\n${logs.join('\n')}`);
  });
  const r = await page.evaluate((o) => window.runHnsw(o), { storage, snapshot: '/bench/shard.snapshot', queries: '/bench/queries.json', rttFrom, rttTo });
  if (r.error) throw new Error(`${r.error}\n${logs.join('\n')}`);
  if (!r.ok.isolated) throw new Error('the bench page is not cross-origin isolated (performance.now() would tick in 100 us)');
  Object.assign(result, r.ok);
} finally {
  await browser.close();
  site.close();
}
result.loadavg_after = os.loadavg();
writeFileSync(outPath, JSON.stringify(result));
