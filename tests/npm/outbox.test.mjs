// The durable outbox's sender (pkg-template/outbox.js) under Node: local updates are replayed
// on a "server" in order, with the api-key, as Qdrant REST requests. The server here is a small
// HTTP server that applies what it receives to a second shard of this same package through the
// REST shapes Qdrant takes (`POST /points/batch`, `PUT /index`, `DELETE /index/{field}`), so
// after a sync the two shards must hold the same points — which checks the requests, not just
// that some were sent. It can also answer 503, 401, or refuse single operations.
// Run: node --test tests/npm/ (after scripts/build-npm.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { installPackage } from './helpers.mjs';

let project;
let pkg;

before(() => {
  project = installPackage('qew-outbox-');
});

after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

async function load() {
  pkg ??= await import(pathToFileURL(join(project, 'entry.mjs')).href);
  return pkg;
}

const config = { vectors: { v: { size: 4, distance: 'Dot' } } };
const point = (i) => ({ id: i, vector: { v: [i, 1, 0.5, -i] }, payload: { i, group: i % 3 } });

/** A Qdrant-like server backed by a shard of this package. */
async function mockServer(EdgeShard, { apiKey = 'secret' } = {}) {
  const shard = await EdgeShard.open({ storage: 'memory', name: 'server', config });
  const state = { requests: [], mode: 'ok', refuse: null };
  const server = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += c;
    const body = raw ? JSON.parse(raw) : null;
    const url = new URL(req.url, 'http://x');
    state.requests.push({ method: req.method, path: url.pathname, query: url.search, apiKey: req.headers['api-key'], body });
    const reply = (status, json) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    if (state.mode === 'down') return reply(503, { status: { error: 'Service Unavailable' } });
    if (req.headers['api-key'] !== apiKey) return reply(401, { status: { error: 'Invalid api-key' } });
    const m = url.pathname.match(/^\/collections\/([^/]+)\/(.*)$/);
    if (!m || m[1] !== 'c') return reply(404, { status: { error: `Not found: Collection \`${m?.[1]}\` doesn't exist!` } });
    try {
      let result;
      if (m[2] === 'points/batch' && req.method === 'POST') {
        if (state.refuse && body.operations.some(state.refuse)) {
          return reply(404, { status: { error: 'Not found: No point with id 999 found' } });
        }
        result = await shard.update(body);
      } else if (m[2] === 'index' && req.method === 'PUT') {
        result = await shard.createIndex(body);
      } else if (m[2].startsWith('index/') && req.method === 'DELETE') {
        result = await shard.deleteIndex({ field_name: decodeURIComponent(m[2].slice(6)) });
      } else {
        return reply(404, { status: { error: `unexpected ${req.method} ${url.pathname}` } });
      }
      reply(200, { status: 'ok', result, time: 0 });
    } catch (e) {
      reply(e.code === 'not_found' ? 404 : 400, { status: { error: e.message } });
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    shard,
    state,
    async close() {
      await new Promise((r) => server.close(r));
      await shard.close();
    },
  };
}

const all = async (shard) => (await shard.scroll({ limit: 1000, with_payload: true, with_vector: true })).points;

test('outbox: updates reach the server in order, after it comes back; both shards end equal', async () => {
  const { EdgeShard } = await load();
  const srv = await mockServer(EdgeShard);
  srv.state.mode = 'down';
  const local = await EdgeShard.open({
    storage: 'memory',
    name: 'local',
    config,
    outbox: { url: srv.url, collection: 'c', apiKey: 'secret', batchSize: 3 },
  });
  try {
    await local.upsert({ points: [1, 2, 3, 4, 5].map(point) });
    await local.setPayload({ payload: { tag: 'a' }, points: [1, 2] });
    await local.createIndex({ field_name: 'tag', field_schema: 'keyword' });
    await local.update({
      operations: [
        { delete: { points: [3] } },
        { overwrite_payload: { payload: { only: true }, points: [4] } },
        { update_vectors: { points: [{ id: 5, vector: { v: [9, 9, 9, 9] } }] } },
      ],
    });
    await local.deletePayload({ keys: ['group'], filter: { must: [{ key: 'i', match: { value: 1 } }] } });
    await local.deleteIndex({ field_name: 'tag' });
    await local.clearPayload({ points: [2] });
    // refused locally: never recorded, never sent
    await assert.rejects(local.setPayload({ payload: {}, points: [777] }), { code: 'not_found' });

    let st = await local.outboxStatus();
    assert.equal(st.enabled, true);
    assert.equal(st.pending, 9);
    await assert.rejects(local.syncOutbox(), (e) => e.code === 'remote' && /503/.test(e.message));
    st = await local.outboxStatus();
    assert.equal(st.pending, 9, 'nothing is acknowledged while the server is down');
    assert.equal(st.lastError.code, 'remote');

    srv.state.mode = 'ok';
    srv.state.requests.length = 0;
    const r = await local.syncOutbox();
    assert.equal(r.sent, 9);
    assert.deepEqual(r.rejected, []);
    assert.equal((await local.outboxStatus()).pending, 0);
    // runs of point operations go as batches of at most 3; index changes alone
    assert.deepEqual(
      srv.state.requests.map((q) => `${q.method} ${q.path} ${q.body?.operations?.map((o) => Object.keys(o)[0]).join(',') ?? ''}`),
      [
        'POST /collections/c/points/batch upsert,set_payload',
        'PUT /collections/c/index ',
        'POST /collections/c/points/batch delete,overwrite_payload,update_vectors',
        'POST /collections/c/points/batch delete_payload',
        'DELETE /collections/c/index/tag ',
        'POST /collections/c/points/batch clear_payload',
      ],
    );
    assert.ok(srv.state.requests.every((q) => q.apiKey === 'secret' && q.query === '?wait=true'));
    assert.deepEqual(await all(srv.shard), await all(local));
    assert.equal((await all(local)).length, 4);
  } finally {
    await local.close();
    await srv.close();
  }
});

test('outbox: background sending, a refused entry is reported and skipped, a bad api-key stops', async () => {
  const { EdgeShard } = await load();
  const srv = await mockServer(EdgeShard);
  const local = await EdgeShard.open({ storage: 'memory', name: 'local2', config, outbox: { url: srv.url, collection: 'c', apiKey: 'secret' } });
  try {
    await local.upsert({ points: [point(1), point(2)] });
    // sent without syncOutbox()
    for (let i = 0; i < 100 && (await local.outboxStatus()).pending > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await local.outboxStatus()).pending, 0, 'the background sender delivered the upsert');
    assert.equal((await all(srv.shard)).length, 2);

    // the server refuses one operation (it lacks a point the device has): found by sending the
    // batch's entries one at a time, reported, acknowledged; the others are delivered
    await local.setOutboxRemote({ url: srv.url, collection: 'c', apiKey: 'secret', auto: false });
    srv.state.refuse = (op) => op.set_payload?.points?.includes(2);
    await local.setPayload({ payload: { a: 1 }, points: [1] });
    await local.setPayload({ payload: { b: 2 }, points: [2] });
    await local.upsert({ points: [point(3)] });
    const r = await local.syncOutbox();
    assert.equal(r.rejected.length, 1);
    assert.equal(r.rejected[0].command, 'set_payload');
    assert.deepEqual(r.rejected[0].body, { payload: { b: 2 }, points: [2] });
    assert.match(r.rejected[0].error, /404/);
    const server = await all(srv.shard);
    assert.deepEqual(server.map((p) => p.id), [1, 2, 3]);
    assert.equal(server[0].payload.a, 1);
    assert.equal(server[1].payload.b, undefined);

    // wrong key: typed error, entries kept, no automatic retries
    await local.setOutboxRemote({ url: srv.url, collection: 'c', apiKey: 'wrong' });
    await local.upsert({ points: [point(4)] });
    await assert.rejects(local.syncOutbox(), { code: 'unauthorized' });
    const st = await local.outboxStatus();
    assert.equal(st.pending, 1);
    assert.equal(st.stopped, true);
    // unknown collection: not_found, also a configuration error
    await local.setOutboxRemote({ url: srv.url, collection: 'nope', apiKey: 'secret', auto: false });
    await assert.rejects(local.syncOutbox(), { code: 'not_found' });
    // fixed: delivered
    await local.setOutboxRemote({ url: srv.url, collection: 'c', apiKey: 'secret', auto: false });
    await local.syncOutbox();
    assert.equal((await all(srv.shard)).length, 4);
    // a server that is not there: io
    const gone = await mockServer(EdgeShard);
    const goneUrl = gone.url;
    await gone.close();
    await local.setOutboxRemote({ url: goneUrl, collection: 'c', auto: false });
    await local.upsert({ points: [point(5)] });
    await assert.rejects(local.syncOutbox(), { code: 'io' });
    assert.equal((await local.outboxStatus()).pending, 1);
    await assert.rejects(local.setOutboxRemote({ url: 'ftp://x', collection: 'c' }), { code: 'invalid_argument' });
  } finally {
    await local.close();
    await srv.close();
  }
});

test('outbox: u64 ids past 2^53 are BigInts locally and exact digits on the wire', async () => {
  const { EdgeShard } = await load();
  const bodies = [];
  const server = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += c;
    bodies.push(raw);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok","result":[]}');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const local = await EdgeShard.open({
    storage: 'memory',
    name: 'big',
    config,
    outbox: { url: `http://127.0.0.1:${server.address().port}`, collection: 'c', auto: false },
  });
  try {
    const id = 18446744073709551615n;
    await local.upsert({ points: [{ id, vector: { v: [1, 2, 3, 4] }, payload: { n: 9007199254740993n, m: 5 } }] });
    const [p] = await local.retrieve({ ids: [id], with_payload: true });
    assert.equal(p.id, id);
    assert.equal(p.payload.n, 9007199254740993n);
    assert.equal(p.payload.m, 5);
    await local.syncOutbox();
    assert.equal(bodies.length, 1);
    assert.match(bodies[0], /"id":18446744073709551615,/);
    assert.match(bodies[0], /"n":9007199254740993,/);
  } finally {
    await local.close();
    await new Promise((r) => server.close(r));
  }
});
