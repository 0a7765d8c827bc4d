// The packed package's browser entry in headless Chromium (through chromedriver's WebDriver
// HTTP API): EdgeShard.open starts a module Worker, a shard on IndexedDB survives close and
// reopen in a new worker, typed errors cross the worker boundary, OPFS persists across workers
// and refuses a second opener, the
// Qdrant server's basic snapshot streams from fetch() into a restored IndexedDB shard, and
// EdgeShard.restoreFromServer restores it into OPFS from the mock Qdrant server (another origin:
// CORS preflight for the api-key header).
// Needs chromedriver (CHROMEDRIVER or PATH) and the capabilities in webdriver.json.
// Run: node --test tests/npm/ (after scripts/build-npm.sh).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createReadStream, readFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname, resolve, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockQdrant } from './mock-qdrant.mjs';
import { exactQueries } from './helpers.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkgDir = join(repo, 'target/npm/package');
const basic = join(process.env.QEW_SHARED ?? join(repo, '../shared'), 'fixtures/basic');
const snapshot = join(basic, 'full.snapshot');
const MOCK_KEY = 'browser-key';

function findChromedriver() {
  if (process.env.CHROMEDRIVER) return process.env.CHROMEDRIVER;
  try {
    return execFileSync('sh', ['-c', 'command -v chromedriver'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const page = (server) => `<!doctype html><meta charset="utf-8"><title>qdrant-edge-wasm</title>
<script type="module">
import { EdgeShard, QdrantEdgeError } from '/pkg/index.js';
const out = {};
try {
  const name = 'npm-' + Math.random().toString(36).slice(2);
  const config = { vectors: { v: { size: 4, distance: 'Dot' } } };
  let s = await EdgeShard.open({ storage: 'idb', name, config });
  out.storage = s.storage;
  const points = Array.from({ length: 50 }, (_, i) => ({ id: i, vector: { v: [i, 1, 0, 0] }, payload: { i } }));
  out.upsert = (await s.upsert({ points })).status;
  out.top = (await s.query({ query: [1, 0, 0, 0], using: 'v', limit: 3 })).points.map((p) => p.id);
  out.batch = (await s.update({ operations: [{ delete: { points: [49] } }, { set_payload: { payload: { x: 1 }, points: [0] } }] })).length;
  const bad = await s.query({ query: [1], using: 'v' }).catch((e) => e);
  out.bad = { isClass: bad instanceof QdrantEdgeError, isError: bad instanceof Error, name: bad.name, code: bad.code };
  await s.close();
  out.closed = await s.count({}).then(() => 'resolved', (e) => e instanceof QdrantEdgeError && e.code);
  s = await EdgeShard.open({ storage: 'idb', name });
  out.reopenedCount = (await s.count({ exact: true })).count;
  out.reopenedPayload = (await s.retrieve({ ids: [0], with_payload: true }))[0].payload;
  // OPFS in the shard's worker: durable across a reopen in a new worker; a second opener
  // (another worker, like another tab) is refused while the first holds the shard
  const o = await EdgeShard.open({ storage: 'opfs', name, config });
  await o.upsert({ points: points.slice(0, 10) });
  out.opfsSecond = await EdgeShard.open({ storage: 'opfs', name }).then(() => 'resolved', (e) => e instanceof QdrantEdgeError && e.code);
  await o.close();
  const o2 = await EdgeShard.open({ storage: 'opfs', name });
  out.opfsReopened = (await o2.count({ exact: true })).count;
  await o2.close();
  await EdgeShard.destroy({ storage: 'opfs', name });
  // a crash: the shard's worker terminated while updates are in flight (as when the tab is
  // killed), on each durable backend, with the outbox recording; after reopening, every
  // acknowledged update is there and the outbox holds exactly what the shard holds
  for (const storage of ['opfs', 'idb']) {
    const cname = name + '-crash-' + storage;
    const w = new Worker('/pkg/worker.js', { type: 'module' });
    let next = 1;
    const waiting = new Map();
    w.onmessage = (e) => {
      const p = waiting.get(e.data.id);
      waiting.delete(e.data.id);
      if (p) p(e.data);
    };
    const call = (op, args) => new Promise((res) => { const id = next++; waiting.set(id, res); w.postMessage({ id, op, args }); });
    const opened = await call('open', { storage, name: cname, config, outbox: { url: 'http://127.0.0.1:9', collection: 'c', auto: false } });
    if (!opened.ok) throw new Error('crash test open: ' + JSON.stringify(opened.error));
    // up to 8 updates in flight; the worker dies with some of them applied, some not
    const acked = [];
    let sent = 0;
    while (acked.length < 60) {
      while (sent - acked.length < 8) {
        const i = sent++;
        call('update', { command: 'upsert', body: { points: [{ id: i, vector: { v: [i, 1, 0, 0] } }] } }).then((r) => { if (r.ok) acked.push(i); });
      }
      await new Promise((r) => setTimeout(r, 0));
    }
    w.terminate();
    let s2;
    for (let k = 0; ; k++) {
      // the dead worker's lock and handles are released by the browser, not always at once
      try { s2 = await EdgeShard.open({ storage, name: cname }); break; } catch (e) { if (k > 50 || e.code !== 'io') throw e; await new Promise((r) => setTimeout(r, 100)); }
    }
    const ids = (await s2.scroll({ limit: 1000 })).points.map((p) => p.id);
    const pending = (await s2.outboxPending({ max: 1000 })).map((e) => e.body.points[0].id);
    out['crash_' + storage] = { acked: acked.length, sent, lost: acked.filter((i) => !ids.includes(i)), held: ids.length, outboxEqual: JSON.stringify(pending) === JSON.stringify(ids) };
    await s2.close();
    await EdgeShard.destroy({ storage, name: cname });
  }
  out.missing = await EdgeShard.open({ storage: 'idb', name: name + '-missing' }).then(() => 'resolved', (e) => e.code);
  await EdgeShard.destroy({ storage: 'idb', name: name + '-missing' });

  const res = await fetch('/snapshot');
  const progress = [];
  const r = await EdgeShard.restoreSnapshot({ storage: 'idb', name: name + '-r', source: res.body, onProgress: (p) => progress.push(p.received) });
  out.restoredPoints = (await r.info()).points_count;
  out.restoredProgress = { calls: progress.length, last: progress.at(-1), increasing: progress.every((x, k) => k === 0 || x > progress[k - 1]) };
  await r.close();
  const r2 = await EdgeShard.open({ storage: 'idb', name: name + '-r' });
  out.restoredReopened = (await r2.info()).points_count;
  await r2.close();
  await EdgeShard.destroy({ storage: 'idb', name: name + '-r' });
  out.destroyed = await EdgeShard.open({ storage: 'idb', name: name + '-r' }).then(() => 'resolved', (e) => e.code);
  await s.close();
  await EdgeShard.destroy({ storage: 'idb', name });

  // from a Qdrant server (the mock, on another origin) into OPFS
  const server = ${JSON.stringify(server)};
  const sp = [];
  const fromServer = await EdgeShard.restoreFromServer({ storage: 'opfs', name: name + '-srv', url: server.url, collection: 'basic', apiKey: server.apiKey, onProgress: (p) => sp.push(p) });
  out.serverStorage = fromServer.storage;
  out.serverCount = (await fromServer.count({ exact: true })).count;
  out.serverIds = (await fromServer.query(server.query)).points.map((p) => p.id);
  out.serverProgress = { last: sp.at(-1), increasing: sp.every((p, k) => k === 0 || p.received > sp[k - 1].received) };
  await fromServer.close();
  const again = await EdgeShard.open({ storage: 'opfs', name: name + '-srv' });
  out.serverReopened = (await again.count({ exact: true })).count;
  await again.close();
  await EdgeShard.destroy({ storage: 'opfs', name: name + '-srv' });
  out.serverWrongKey = await EdgeShard.restoreFromServer({ storage: 'opfs', name: name + '-bad', url: server.url, collection: 'basic', apiKey: 'wrong' }).then(() => 'resolved', (e) => e instanceof QdrantEdgeError && e.code);
} catch (e) {
  out.error = String((e && e.stack) || e) + (e && e.code ? ' code=' + e.code : '');
}
window.__result = out;
</script>`;

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' };

function serve(html) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(html);
    }
    if (url.pathname === '/snapshot') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return createReadStream(snapshot, { highWaterMark: 256 * 1024 }).pipe(res);
    }
    if (url.pathname.startsWith('/pkg/')) {
      const file = normalize(join(pkgDir, url.pathname.slice(5)));
      if (file.startsWith(pkgDir) && existsSync(file) && statSync(file).isFile()) {
        res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
        return createReadStream(file).pipe(res);
      }
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

async function wd(base, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`webdriver ${method} ${path}: ${JSON.stringify(j.value)}`);
  return j.value;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

test('browser entry in headless Chromium: Worker, OPFS, IndexedDB, typed errors, a worker killed mid-update, streamed restore, restoreFromServer into OPFS', async (t) => {
  const driver = findChromedriver();
  if (!driver) {
    t.skip('no chromedriver (set CHROMEDRIVER); scripts/setup.sh installs Debian chromium-driver');
    return;
  }
  assert.ok(existsSync(join(pkgDir, 'index.js')), 'run scripts/build-npm.sh first');
  assert.ok(existsSync(snapshot), `${snapshot} (set QEW_SHARED)`);
  const expected = JSON.parse(readFileSync(join(basic, 'full.expected.json'), 'utf8'));
  const [, exact] = exactQueries(expected)[0];
  const mock = await startMockQdrant({
    apiKey: MOCK_KEY,
    collections: { basic: { full: snapshot, partial: join(basic, 'partial1.snapshot'), manifest: null } },
  });
  const server = await serve(page({ url: mock.url, apiKey: MOCK_KEY, query: exact.request.body }));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const cd = spawn(driver, [`--port=${port}`], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  let session;
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await wd(base, 'GET', '/status')).ready) break;
      } catch (e) {
        if (i > 100) throw e;
      }
      await sleep(100);
    }
    const caps = JSON.parse(readFileSync(join(repo, 'webdriver.json'), 'utf8'));
    session = (await wd(base, 'POST', '/session', { capabilities: { alwaysMatch: caps } })).sessionId;
    await wd(base, 'POST', `/session/${session}/url`, { url: `http://127.0.0.1:${server.address().port}/` });
    let out = null;
    for (let i = 0; i < 1200 && !out; i++) {
      out = await wd(base, 'POST', `/session/${session}/execute/sync`, { script: 'return window.__result ?? null', args: [] });
      if (!out) await sleep(100);
    }
    assert.ok(out, 'the page finished within 120 s');
    assert.equal(out.error, undefined, out.error);
    assert.equal(out.storage, 'idb');
    assert.equal(out.upsert, 'completed');
    assert.deepEqual(out.top, [49, 48, 47]);
    assert.equal(out.batch, 2);
    assert.deepEqual(out.bad, { isClass: true, isError: true, name: 'QdrantEdgeError', code: 'invalid_argument' });
    assert.equal(out.closed, 'shard_closed');
    assert.equal(out.reopenedCount, 49);
    assert.deepEqual(out.reopenedPayload, { i: 0, x: 1 });
    assert.equal(out.opfsSecond, 'io');
    assert.equal(out.opfsReopened, 10);
    for (const storage of ['opfs', 'idb']) {
      const c = out['crash_' + storage];
      assert.ok(c.acked >= 60, JSON.stringify(c));
      assert.deepEqual(c.lost, [], `${storage}: acknowledged updates lost in a crash`);
      assert.ok(c.held >= c.acked && c.held <= c.sent, JSON.stringify(c));
      assert.equal(c.outboxEqual, true, `${storage}: the outbox holds what the shard holds`);
    }
    assert.equal(out.missing, 'not_found');
    assert.ok(out.restoredPoints > 0);
    assert.equal(out.restoredReopened, out.restoredPoints);
    assert.equal(out.restoredProgress.last, statSync(snapshot).size);
    assert.ok(out.restoredProgress.calls > 1 && out.restoredProgress.increasing, JSON.stringify(out.restoredProgress));
    assert.equal(out.destroyed, 'not_found');
    assert.equal(out.serverStorage, 'opfs');
    assert.equal(out.serverCount, expected.answers.count_f0.response.count);
    assert.deepEqual(out.serverIds, exact.response.points.map((p) => p.id));
    assert.deepEqual(out.serverProgress, { last: { received: statSync(snapshot).size, total: statSync(snapshot).size }, increasing: true });
    assert.equal(out.serverReopened, out.serverCount);
    assert.equal(out.serverWrongKey, 'unauthorized');
    const preflight = mock.requests.find((r) => r.method === 'OPTIONS');
    assert.match(preflight?.headers['access-control-request-headers'] ?? '', /api-key/, 'a CORS preflight for the api-key header');
    assert.equal(mock.snapshots.size, 0);
  } finally {
    await mock.close();
    if (session) await wd(base, 'DELETE', `/session/${session}`).catch(() => {});
    cd.kill();
    server.close();
  }
});
