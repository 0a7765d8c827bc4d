// The fixture app (tests/npm/vite-app): the packed package installed by name into a Vite project,
// bundled by `vite build`, served statically, and driven in headless Chromium (Debian's, not a
// downloaded one) by playwright-core. A shard on OPFS survives a page reload; a snapshot restored
// from the mock Qdrant server (another origin: CORS with the api-key header) answers the server's
// recorded queries, and survives a reload too.
// scripts/test-npm.sh installs the app (vite, playwright-core, the tarball) into target/npm/vite-app
// and sets QEW_VITE_APP; CHROMIUM overrides the browser binary (default: `command -v chromium`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repo, fixtures, compareExactQueries, launchChromium, pageLogs, findChromium } from './helpers.mjs';
import { startMockQdrant } from './mock-qdrant.mjs';
import { serve } from '../../scripts/www.mjs';

test('Vite app in headless Chromium (playwright-core): OPFS shard survives a reload; restoreFromServer answers the server', async (t) => {
  const app = process.env.QEW_VITE_APP;
  if (!app) {
    t.skip('QEW_VITE_APP is not set; scripts/test-npm.sh installs the Vite app (vite, playwright-core) and sets it');
    return;
  }
  const chromiumPath = findChromium();
  assert.ok(chromiumPath, 'no chromium (set CHROMIUM); scripts/setup.sh installs Debian chromium');
  const appDir = resolve(app);
  for (const f of ['index.html', 'main.js', 'vite.config.js']) copyFileSync(join(repo, 'tests/npm/vite-app', f), join(appDir, f));
  execFileSync(process.execPath, [join(appDir, 'node_modules/vite/bin/vite.js'), 'build'], { cwd: appDir, stdio: 'pipe' });
  const dist = join(appDir, 'dist');
  assert.ok(readFileSync(join(dist, 'index.html'), 'utf8').includes('<script'), 'vite built the page');

  const { chromium } = await import(pathToFileURL(join(appDir, 'node_modules/playwright-core/index.mjs')).href);
  const dir = join(fixtures, 'basic');
  const KEY = 'vite-key';
  const mock = await startMockQdrant({
    apiKey: KEY,
    collections: { basic: { full: join(dir, 'full.snapshot'), partial: join(dir, 'partial1.snapshot'), manifest: null } },
  });
  const site = await serve(dist);
  const browser = await launchChromium(chromium, chromiumPath);
  try {
    const page = await browser.newPage();
    const logs = pageLogs(page);
    const origin = `http://127.0.0.1:${site.address().port}`;
    const ready = async () => {
      await page.waitForFunction(() => window.qewReady === true, null, { timeout: 30_000 });
    };
    /** window.qew[op](...args) in the page; rejects with the page's error description. */
    const qew = async (op, ...args) => {
      const r = await page.evaluate(([o, a]) => window.qew[o](...a), [op, args]);
      if (r.error) throw Object.assign(new Error(`${op}: ${r.error.message} (${r.error.code})`), r.error);
      return r.ok;
    };
    await page.goto(origin + '/');
    await ready().catch((e) => {
      throw new Error(`${e.message}\n${logs.join('\n')}`);
    });

    // a shard on OPFS: upsert, query, then reload the page without closing it
    const name = 'vite-' + Math.random().toString(36).slice(2);
    assert.equal(await qew('open', name, { vectors: { v: { size: 4, distance: 'Dot' } } }), 'opfs');
    const points = Array.from({ length: 50 }, (_, i) => ({ id: i, vector: { v: [i, 1, 0, 0] }, payload: { i, tag: i % 2 ? 'odd' : 'even' } }));
    assert.equal((await qew('call', name, 'upsert', { points })).status, 'completed');
    const q = { query: [1, 0, 0, 0], using: 'v', limit: 3, filter: { must: [{ key: 'tag', match: { value: 'even' } }] } };
    const before = (await qew('call', name, 'query', q)).points.map((p) => p.id);
    assert.deepEqual(before, [48, 46, 44]);

    await page.reload();
    await ready();
    assert.equal(await qew('open', name), 'opfs', 'the shard exists after the reload');
    assert.deepEqual(await qew('call', name, 'count', { exact: true }), { count: 50 });
    assert.deepEqual((await qew('call', name, 'query', q)).points.map((p) => p.id), before);
    assert.deepEqual((await qew('call', name, 'retrieve', { ids: [7], with_payload: true }))[0].payload, { i: 7, tag: 'odd' });

    // a snapshot through the API: restoreFromServer from the mock server, another origin
    const restored = name + '-server';
    const { progress } = await qew('restoreFromServer', restored, { url: mock.url, collection: 'basic', apiKey: KEY });
    const size = statSync(join(dir, 'full.snapshot')).size;
    assert.equal(progress.at(-1).received, size);
    assert.equal(progress.at(-1).total, size);
    const expected = JSON.parse(readFileSync(join(dir, 'full.expected.json'), 'utf8'));
    await compareExactQueries({ query: (body) => qew('call', restored, 'query', body) }, expected);
    const preflight = mock.requests.find((r) => r.method === 'OPTIONS' && /\/snapshots$/.test(r.path));
    assert.ok(preflight, 'the browser sent a CORS preflight');
    assert.match(preflight.headers['access-control-request-headers'] ?? '', /api-key/);
    const get = mock.requests.find((r) => r.method === 'GET' && /\/snapshots\/[^/]+$/.test(r.path));
    assert.equal(get.headers['api-key'], KEY);
    assert.equal(get.status, 200);
    assert.equal(mock.snapshots.size, 0, 'the server snapshot was deleted');

    // the restored shard is durable too
    await page.reload();
    await ready();
    await qew('open', restored);
    assert.deepEqual(await qew('call', restored, 'count', { exact: true }), expected.answers.count_f0.response);
    await qew('close', restored);
    await qew('destroy', restored);
    await qew('close', name);
    await qew('destroy', name);
  } finally {
    await browser.close();
    site.close();
    await mock.close();
  }
});
