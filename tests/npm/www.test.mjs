// The demo PWA (www/, scripts/www.mjs): built into target/www, served by the demo's own static
// server, driven through its UI in headless Chromium (Debian's, never a downloaded one) with
// playwright-core. Expectations come from the same sample archive restored in Node (storage
// "memory") through the package: the first visit restores the sample into OPFS, the info, the
// color facet, a filtered find-similar and its count equal the Node shard's answers; a payload
// edit survives a reload; offline, a reload is served by the service worker and still answers.
// playwright-core comes from the Vite fixture app's install (QEW_VITE_APP, or target/npm/vite-app;
// scripts/test-npm.sh installs it). CHROMIUM overrides the browser binary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repo, launchChromium, pageLogs, findChromium } from './helpers.mjs';
import { build, serve } from '../../scripts/www.mjs';

test('demo PWA: restores the sample, answers like the Node shard, keeps edits across reloads, works offline', async (t) => {
  const app = process.env.QEW_VITE_APP ?? join(repo, 'target/npm/vite-app');
  const pw = join(app, 'node_modules/playwright-core/index.mjs');
  if (!existsSync(pw)) {
    t.skip('playwright-core is not installed; scripts/test-npm.sh installs it into target/npm/vite-app');
    return;
  }
  const chromiumPath = findChromium();
  assert.ok(chromiumPath, 'no chromium (set CHROMIUM); scripts/setup.sh installs Debian chromium');
  const out = build();

  // the expectations: the served archive restored in Node
  const { EdgeShard } = await import(pathToFileURL(join(repo, 'target/npm/package/node.js')).href);
  const node = await EdgeShard.restoreSnapshot({ storage: 'memory', name: 'expect', source: new Uint8Array(readFileSync(join(out, 'sample/demo-shard.tar.gz'))) });
  const info = await node.info();
  assert.ok(info.points_count > 0);
  const facet = (await node.facet({ key: 'color', exact: true })).hits.map((h) => [String(h.value), h.count]);
  assert.ok(facet.length >= 2);
  const color = facet[1][0];
  const filter = { must: [{ key: 'color', match: { value: color } }, { key: 'price', range: { gte: 100, lte: 700 } }] };
  const qid = 5;
  const similar = (await node.query({ query: qid, using: 'v', limit: 10, filter, with_payload: ['color', 'price'] })).points;
  assert.ok(similar.length > 0);
  const filtered = (await node.count({ exact: true, filter })).count;

  const { chromium } = await import(pathToFileURL(pw).href);
  const site = await serve(out);
  const browser = await launchChromium(chromium, chromiumPath);
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const logs = pageLogs(page);
    const origin = `http://127.0.0.1:${site.address().port}`;
    const ready = async () => {
      try {
        await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 30_000 });
      } catch (e) {
        throw new Error(`${e.message}\n${logs.join('\n')}`);
      }
      const error = await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
      assert.equal(error, '', `the app shows an error\n${logs.join('\n')}`);
    };
    /** Do something in the UI and wait until the action it started is over. */
    const action = async (f) => {
      const rev = await page.evaluate(() => document.body.dataset.rev);
      await f();
      await page.waitForFunction((r) => document.body.dataset.rev !== r && document.body.dataset.busy === '', rev, { timeout: 30_000 });
      const error = await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
      assert.equal(error, '', 'the app shows an error');
    };
    const facetRows = () => page.$$eval('#facet tbody tr', (trs) => trs.map((tr) => [tr.dataset.value, Number(tr.dataset.count)]));

    // first visit: the sample is restored into OPFS
    await page.goto(origin + '/');
    await ready();
    assert.equal(await page.evaluate(() => document.body.dataset.restored), '1', 'the first visit restores the sample');
    assert.equal(await page.textContent('#storage'), 'opfs');
    assert.equal(Number(await page.getAttribute('#info', 'data-points-count')), info.points_count);
    assert.deepEqual(await facetRows(), facet);
    assert.equal(await page.$$eval('#points tbody tr', (trs) => trs.length), Math.min(20, info.points_count));

    // find similar with the filter form
    await page.fill('#sim-id', String(qid));
    await page.selectOption('#f-color', color);
    await page.fill('#f-price-min', '100');
    await page.fill('#f-price-max', '700');
    await action(() => page.click('#sim-go'));
    const got = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => [Number(tr.dataset.id), Number(tr.dataset.score)]));
    assert.deepEqual(got.map(([id]) => id), similar.map((p) => p.id));
    for (const [k, [, score]] of got.entries()) assert.ok(Math.abs(score - similar[k].score) < 1e-6, `${score} vs ${similar[k].score}`);
    assert.equal(Number(await page.textContent('#filter-count')), filtered);

    // edit a payload: the facet changes, and both survive a reload
    const editId = similar[0].id;
    await page.fill('#e-id', String(editId));
    await action(() => page.click('#e-load'));
    assert.equal(await page.inputValue('#e-color'), color);
    await page.fill('#e-color', 'teal');
    await page.fill('#e-price', '12.5');
    await action(() => page.click('#e-save'));
    await node.setPayload({ payload: { color: 'teal', price: 12.5 }, points: [editId] });
    const facetAfter = (await node.facet({ key: 'color', exact: true })).hits.map((h) => [String(h.value), h.count]);
    assert.deepEqual(await facetRows(), facetAfter);

    await page.waitForFunction(() => document.body.dataset.offlineReady === '1', null, { timeout: 15_000 });
    await page.reload();
    await ready();
    assert.equal(await page.evaluate(() => document.body.dataset.restored), undefined, 'a later visit opens the stored shard');
    assert.deepEqual(await facetRows(), facetAfter);
    await page.fill('#e-id', String(editId));
    await action(() => page.click('#e-load'));
    assert.equal(await page.inputValue('#e-color'), 'teal');
    assert.equal(Number(await page.inputValue('#e-price')), 12.5);

    // offline: the service worker serves the app, the worker and the wasm
    assert.ok(await page.evaluate(() => !!navigator.serviceWorker.controller), 'the page is controlled by the service worker');
    await context.setOffline(true);
    await page.reload();
    await ready();
    assert.equal(Number(await page.getAttribute('#info', 'data-points-count')), info.points_count);
    assert.deepEqual(await facetRows(), facetAfter);
    await page.fill('#sim-id', String(qid));
    await page.selectOption('#f-color', color);
    await page.fill('#f-price-min', '100');
    await page.fill('#f-price-max', '700');
    await action(() => page.click('#sim-go'));
    const expectOffline = (await node.query({ query: qid, using: 'v', limit: 10, filter, with_payload: false })).points.map((p) => p.id);
    assert.deepEqual(await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.id))), expectOffline);
    await context.setOffline(false);
  } finally {
    await browser.close();
    site.close();
    await node.close();
  }
});
