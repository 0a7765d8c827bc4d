// EdgeShard.restoreFromServer and shard.pullFromServer (the Node entry, memory storage) against
// the mock Qdrant server (mock-qdrant.mjs) serving the real server's snapshots: full restore,
// partial pulls (and the 304 path), typed errors, resumed and restarted downloads, abort, progress.
// Run: node --test tests/npm/ (after scripts/build-npm.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { installPackage, compareExactQueries, fixtures } from './helpers.mjs';
import { startMockQdrant } from './mock-qdrant.mjs';

const KEY = 'test-key';
const dir = join(fixtures, 'basic');
const file = (f) => join(dir, f);
const readJson = (f) => JSON.parse(readFileSync(file(f), 'utf8'));
let project;
let pkg;
let fullExpected;
let partialExpected;

before(async () => {
  project = installPackage('qew-remote-');
  pkg = await import(pathToFileURL(join(project, 'entry.mjs')).href);
  fullExpected = readJson('full.expected.json');
  partialExpected = readJson('partial1.expected.json');
});

after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

/** A mock server whose `basic` collection is at the state of full.snapshot. */
function serverAtFull(opts = {}) {
  return startMockQdrant({
    apiKey: KEY,
    collections: {
      basic: {
        full: file('full.snapshot'),
        partial: file('partial1.snapshot'),
        // the server's own manifest at that state: the shard restored from full.snapshot sends an
        // equal one (the same entries, in another key order)
        manifest: readJson('server_manifest_at_full.json'),
      },
    },
    ...opts,
  });
}

const server = (mock, extra = {}) => ({ url: mock.url, collection: 'basic', apiKey: KEY, retryDelay: 5, ...extra });

function assertMonotone(progress, total) {
  assert.ok(progress.length > 1, `${progress.length} progress events`);
  for (let k = 1; k < progress.length; k++) assert.ok(progress[k].received > progress[k - 1].received, `progress ${k}`);
  assert.equal(progress.at(-1).received, total);
  assert.ok(progress.every((p) => p.total === total), 'every event carries the total');
}

test('restoreFromServer: a named shard snapshot, checked, restored; answers equal the server; deleted after', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    const progress = [];
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'from-server', onProgress: (p) => progress.push(p) });
    const size = statSync(file('full.snapshot')).size;
    assertMonotone(progress, size);
    // (the recorded `info` predates the server's last writes: count_f0 is the exact count)
    assert.deepEqual(await shard.count({ exact: true }), fullExpected.answers.count_f0.response);
    await compareExactQueries(shard, fullExpected);
    assert.deepEqual(await shard.snapshotManifest(), readJson('full.manifest.json'));

    const create = mock.seen('POST', '/collections/basic/shards/0/snapshots');
    assert.equal(create.length, 1);
    const gets = mock.seen('GET', /^\/collections\/basic\/shards\/0\/snapshots\/[^/]+$/);
    assert.equal(gets.length, 1, 'one download, no resume needed');
    assert.equal(gets[0].headers['api-key'], KEY);
    assert.equal(gets[0].headers['accept-encoding'], 'identity');
    assert.equal(gets[0].headers.range, undefined);
    assert.equal(gets[0].status, 200);
    const del = mock.seen('DELETE', /^\/collections\/basic\/shards\/0\/snapshots\/[^/]+$/);
    assert.equal(del.length, 1);
    assert.equal(del[0].status, 200);
    assert.equal(mock.snapshots.size, 0, 'the snapshot was deleted on the server');
    await shard.close();

    // keepSnapshot leaves it on the server
    const kept = await EdgeShard.restoreFromServer({ ...server(mock), name: 'kept', keepSnapshot: true });
    assert.equal(mock.snapshots.size, 1);
    await kept.close();
  } finally {
    await mock.close();
  }
});

test('pullFromServer: 304 when current, then the partial snapshot: answers equal the server after its writes', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'pull' });
    // the server is at the state the shard has: nothing to pull
    const same = await shard.pullFromServer(server(mock));
    assert.deepEqual(same, { changed: false, report: null });
    const posts = mock.seen('POST', '/snapshot/partial/create');
    assert.equal(posts.length, 1);
    assert.equal(posts[0].status, 304);
    assert.deepEqual(posts[0].body, readJson('full.manifest.json'), 'the body is the shard manifest');
    assert.equal(posts[0].headers['content-type'], 'application/json');
    assert.equal(posts[0].headers['api-key'], KEY);

    // the server took more writes: partial1 brings the shard to its new state
    mock.collections.basic.manifest = null;
    const progress = [];
    const pulled = await shard.pullFromServer({ ...server(mock), onProgress: (p) => progress.push(p) });
    assert.equal(pulled.changed, true);
    assert.equal(pulled.report.kind, 'partial');
    const size = statSync(file('partial1.snapshot')).size;
    assert.equal(pulled.report.archive_bytes, size);
    assert.equal(progress.at(-1).received, size);
    assert.equal(progress.at(-1).total, undefined, 'the partial snapshot was sent gzip-encoded and chunked: no total');
    await compareExactQueries(shard, partialExpected);

    // the server now knows this state as current: 304 again, the shard is untouched
    mock.collections.basic.manifest = await shard.snapshotManifest();
    const count = await shard.count({ exact: true });
    assert.deepEqual(await shard.pullFromServer(server(mock)), { changed: false, report: null });
    assert.equal(mock.seen('POST', '/snapshot/partial/create').at(-1).status, 304);
    assert.deepEqual(await shard.count({ exact: true }), count);
    await shard.close();
  } finally {
    await mock.close();
  }
});

test('pullFromServer({full: true}) applies a full snapshot on top of the shard', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'full-pull' });
    mock.collections.basic.full = file('full2.snapshot');
    const r = await shard.pullFromServer({ ...server(mock), full: true });
    assert.equal(r.changed, true);
    assert.equal(r.report.kind, 'full');
    assert.equal(r.report.archive_bytes, statSync(file('full2.snapshot')).size);
    await compareExactQueries(shard, partialExpected); // full2 is the state partial1 leads to
    assert.equal(mock.snapshots.size, 0);
    await shard.close();
  } finally {
    await mock.close();
  }
});

test('the multi collection (UUID ids, named, quantized, multi and sparse vectors): restore, then pull', async () => {
  const { EdgeShard } = pkg;
  const m = join(fixtures, 'multi');
  const mock = await startMockQdrant({
    apiKey: KEY,
    collections: { multi: { full: join(m, 'full.snapshot'), partial: join(m, 'partial1.snapshot'), manifest: null } },
  });
  try {
    const opts = { url: mock.url, collection: 'multi', apiKey: KEY };
    const shard = await EdgeShard.restoreFromServer({ ...opts, name: 'multi' });
    await compareExactQueries(shard, JSON.parse(readFileSync(join(m, 'full.expected.json'), 'utf8')));
    assert.deepEqual(mock.seen('POST', '/snapshot/partial/create').length, 0);
    const r = await shard.pullFromServer(opts);
    assert.equal(r.report.kind, 'partial');
    assert.deepEqual(mock.seen('POST', '/snapshot/partial/create')[0].body, JSON.parse(readFileSync(join(m, 'full.manifest.json'), 'utf8')));
    await compareExactQueries(shard, JSON.parse(readFileSync(join(m, 'partial1.expected.json'), 'utf8')));
    await shard.close();
  } finally {
    await mock.close();
  }
});

test('typed errors: wrong or missing api-key (unauthorized), read-only key, unknown collection (not_found), no server (io)', async () => {
  const { EdgeShard, QdrantEdgeError } = pkg;
  const mock = await serverAtFull({ readOnlyApiKey: 'read-only' });
  try {
    const wrong = await EdgeShard.restoreFromServer({ ...server(mock), apiKey: 'nope', name: 'x' }).catch((e) => e);
    assert.ok(wrong instanceof QdrantEdgeError, String(wrong));
    assert.equal(wrong.code, 'unauthorized');
    assert.equal(wrong.status, 401);
    assert.match(wrong.message, /401/);
    const missing = await EdgeShard.restoreFromServer({ ...server(mock), apiKey: undefined, name: 'x' }).catch((e) => e);
    assert.equal(missing.code, 'unauthorized');
    // nothing was restored under that name
    assert.equal((await EdgeShard.open({ name: 'x' }).catch((e) => e)).code, 'not_found');

    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'errors' });
    const before = await shard.count({ exact: true });
    mock.collections.basic.manifest = null;
    const pull = await shard.pullFromServer({ ...server(mock), apiKey: 'nope' }).catch((e) => e);
    assert.equal(pull.code, 'unauthorized');
    const ro = await shard.pullFromServer({ ...server(mock), apiKey: 'read-only' }).catch((e) => e);
    assert.equal(ro.code, 'unauthorized');
    assert.equal(ro.status, 403);
    assert.match(ro.message, /read-only/, 'the server message is in the error');
    const nf = await shard.pullFromServer({ ...server(mock), collection: 'nope' }).catch((e) => e);
    assert.equal(nf.code, 'not_found');
    assert.equal(nf.status, 404);
    const args = await shard.pullFromServer({ ...server(mock), shard: -1 }).catch((e) => e);
    assert.equal(args.code, 'invalid_argument');
    assert.deepEqual(await shard.count({ exact: true }), before, 'the shard is unchanged');
    await compareExactQueries(shard, fullExpected);

    // the archive is checked against the checksum the server reports, before anything is committed
    mock.collections.basic.checksum = 'ab'.repeat(32);
    const sum = await EdgeShard.restoreFromServer({ ...server(mock), name: 'bad-sum' }).catch((e) => e);
    assert.equal(sum.code, 'invalid_argument', String(sum));
    assert.match(sum.message, /SHA-256/);
    assert.equal((await EdgeShard.open({ name: 'bad-sum' }).catch((e) => e)).code, 'not_found');
    const sumPull = await shard.pullFromServer({ ...server(mock), full: true }).catch((e) => e);
    assert.equal(sumPull.code, 'invalid_argument');
    delete mock.collections.basic.checksum;

    // nothing listens there: a network failure, retried, then io
    const dead = await startMockQdrant({});
    const deadUrl = dead.url;
    await dead.close();
    const io = await shard.pullFromServer({ url: deadUrl, collection: 'basic', retries: 2, retryDelay: 1 }).catch((e) => e);
    assert.ok(io instanceof QdrantEdgeError, String(io));
    assert.equal(io.code, 'io');
    assert.deepEqual(await shard.count({ exact: true }), before);
    await shard.close();
  } finally {
    await mock.close();
  }
});

test('transient server errors are retried with backoff; the budget is bounded', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    let fails = 2;
    mock.route('POST', /\/shards\/0\/snapshots$/, () => (fails-- > 0 ? { status: 503, json: { status: { error: 'busy' } } } : undefined));
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'retried' });
    const posts = mock.seen('POST', '/shards/0/snapshots');
    assert.deepEqual(posts.map((p) => p.status), [503, 503, 200]);
    await compareExactQueries(shard, fullExpected);
    await shard.close();

    fails = 5;
    const e = await EdgeShard.restoreFromServer({ ...server(mock), name: 'gave-up', retries: 1 }).catch((err) => err);
    assert.equal(e.code, 'remote');
    assert.equal(e.status, 503);
    assert.match(e.message, /busy/);
    // a 400 is not transient: no retry
    mock.route('POST', /\/snapshot\/partial\/create$/, () => ({ status: 400, json: { status: { error: 'bad manifest' } } }));
    const s2 = await EdgeShard.open({ name: 'x400', config: { vectors: { v: { size: 4, distance: 'Dot' } } } });
    const before = mock.requests.length;
    const bad = await s2.pullFromServer(server(mock)).catch((err) => err);
    assert.equal(bad.code, 'remote');
    assert.equal(bad.status, 400);
    assert.equal(mock.requests.length, before + 1);
    await s2.close();
  } finally {
    await mock.close();
  }
});

test('a download cut mid-way resumes with a Range request at the byte it broke', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    const size = statSync(file('full.snapshot')).size;
    mock.cut = { after: 1_000_000, times: 2, route: 'named' };
    const progress = [];
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'resumed', onProgress: (p) => progress.push(p) });
    const gets = mock.seen('GET', /\/snapshots\/[^/]+$/);
    assert.equal(gets.length, 3, 'the first download and two resumes');
    assert.equal(gets[0].headers.range, undefined);
    const starts = gets.slice(1).map((g) => Number(/^bytes=(\d+)-$/.exec(g.headers.range)?.[1]));
    assert.ok(starts[0] > 0 && starts[0] <= 1_000_000, `first resume at ${starts[0]}`);
    assert.ok(starts[1] > starts[0] && starts[1] <= starts[0] + 1_000_000, `second resume at ${starts[1]}`);
    for (const g of gets.slice(1)) {
      assert.equal(g.status, 206);
      assert.ok(g.headers['if-range'], 'If-Range carries the validator of the first answer');
    }
    assertMonotone(progress, size); // a resume continues the count: no restart
    await compareExactQueries(shard, fullExpected);
    await shard.close();
  } finally {
    await mock.close();
  }
});

test('a server that ignores Range: the transfer restarts from byte 0 with its full answer', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    mock.cut = { after: 700_000, times: 1, route: 'named' };
    mock.ignoreRange = true;
    const progress = [];
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'restarted', onProgress: (p) => progress.push(p.received) });
    const gets = mock.seen('GET', /\/snapshots\/[^/]+$/);
    assert.equal(gets.length, 2, 'the broken download and the resume attempt (its 200 answer is reused)');
    assert.ok(Number(/^bytes=(\d+)-$/.exec(gets[1].headers.range)[1]) > 0);
    assert.equal(gets[1].status, 200);
    const restartAt = progress.findIndex((r, k) => k > 0 && r < progress[k - 1]);
    assert.ok(restartAt > 0, 'progress started again from the beginning');
    assert.equal(progress.at(-1), statSync(file('full.snapshot')).size);
    await compareExactQueries(shard, fullExpected);
    await shard.close();

    // a partial snapshot (made on the fly, not resumable) cut mid-way is requested again
    const again = await EdgeShard.restoreFromServer({ ...server(mock), name: 'partial-restart' });
    mock.collections.basic.manifest = null;
    mock.cut = { after: 300_000, times: 1, route: 'partial' };
    const r = await again.pullFromServer(server(mock));
    assert.equal(r.report.kind, 'partial');
    assert.equal(mock.seen('POST', '/snapshot/partial/create').length, 2);
    await compareExactQueries(again, partialExpected);

    // retries run out: io, and the shard answers as before
    mock.cut = { after: 100_000, times: 10, route: 'partial' };
    const count = await again.count({ exact: true });
    const e = await again.pullFromServer({ ...server(mock), retries: 2 }).catch((err) => err);
    assert.equal(e.code, 'io', String(e));
    assert.deepEqual(await again.count({ exact: true }), count);
    await again.close();
  } finally {
    await mock.close();
  }
});

test('abort mid-download: the pull and the restore reject with the reason; the shard answers as before', async () => {
  const { EdgeShard } = pkg;
  const mock = await serverAtFull();
  try {
    const shard = await EdgeShard.restoreFromServer({ ...server(mock), name: 'abort' });
    mock.collections.basic.manifest = null;
    const ac = new AbortController();
    let events = 0;
    const pulled = shard.pullFromServer({
      ...server(mock),
      signal: ac.signal,
      onProgress: () => {
        if (++events === 3) ac.abort();
      },
    });
    await assert.rejects(pulled, { name: 'AbortError' });
    assert.equal(events, 3);
    await compareExactQueries(shard, fullExpected); // still the state of full.snapshot
    assert.deepEqual(await shard.snapshotManifest(), readJson('full.manifest.json'));
    // the shard takes the next pull normally
    assert.equal((await shard.pullFromServer(server(mock))).report.kind, 'partial');
    await compareExactQueries(shard, partialExpected);
    await shard.close();

    // an aborted restore leaves no shard; the server's snapshot is deleted all the same
    const ac2 = new AbortController();
    const restore = EdgeShard.restoreFromServer({ ...server(mock), name: 'abort-restore', signal: ac2.signal, onProgress: () => ac2.abort() });
    await assert.rejects(restore, { name: 'AbortError' });
    assert.equal((await EdgeShard.open({ name: 'abort-restore' }).catch((e) => e)).code, 'not_found');
    assert.equal(mock.snapshots.size, 0);

    // an abort during the backoff between retries ends the wait at once
    mock.cut = { after: 50_000, times: 1, route: 'named' };
    const ac3 = new AbortController();
    const waiting = EdgeShard.restoreFromServer({ ...server(mock), retryDelay: 60_000, name: 'abort-wait', signal: ac3.signal });
    setTimeout(() => ac3.abort(), 300);
    const t0 = Date.now();
    await assert.rejects(waiting, { name: 'AbortError' });
    assert.ok(Date.now() - t0 < 10_000, 'did not wait for the backoff');
  } finally {
    await mock.close();
  }
});

test('the mock records and answers any other request (for replaying updates)', async () => {
  const mock = await startMockQdrant({ apiKey: KEY });
  try {
    const res = await fetch(`${mock.url}/collections/basic/points?wait=true`, {
      method: 'PUT',
      headers: { 'api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ points: [{ id: 1, vector: [1, 2] }] }),
    });
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.status, 'ok');
    assert.equal(j.result.status, 'completed');
    mock.route('POST', /\/points\/delete$/, () => ({ status: 503, json: { status: { error: 'busy' } } }));
    const busy = await fetch(`${mock.url}/collections/basic/points/delete`, { method: 'POST', headers: { 'api-key': KEY }, body: '{}' });
    assert.equal(busy.status, 503);
    await busy.text();
    const [put] = mock.seen('PUT', '/collections/basic/points');
    assert.equal(put.query, '?wait=true');
    assert.deepEqual(put.body, { points: [{ id: 1, vector: [1, 2] }] });
    assert.equal(put.status, 200);
    const pre = await fetch(`${mock.url}/collections/basic/points`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'api-key,content-type' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://app');
    assert.match(pre.headers.get('access-control-allow-headers'), /api-key/);
  } finally {
    await mock.close();
  }
});
