// The packed npm package under Node (node --test): installs the tarball that
// scripts/build-npm.sh made into a temporary project (offline), imports it by name (the
// exports map's "node" condition) and drives the EdgeShard API end to end.
// Run: node --test tests/npm/ (after scripts/build-npm.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repo, installPackage, compareExactQueries } from './helpers.mjs';

let project;
let pkg; // the package's exports

before(() => {
  project = installPackage();
});

after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

async function load() {
  pkg ??= await import(pathToFileURL(join(project, 'entry.mjs')).href);
  return pkg;
}

const config = { vectors: { v: { size: 4, distance: 'Cosine' } } };

// 100 points on distinct directions: point i is (cos a_i, sin a_i, i % 3, 1) with a_i = i * 0.06
function vec(i) {
  const a = i * 0.06;
  return [Math.cos(a), Math.sin(a), i % 3, 1];
}
const points = Array.from({ length: 100 }, (_, i) => ({
  id: i,
  vector: { v: vec(i) },
  payload: { i, parity: i % 2 === 0 ? 'even' : 'odd', group: i % 5 },
}));

function cosine(a, b) {
  const dot = a.reduce((s, x, k) => s + x * b[k], 0);
  const n = (x) => Math.sqrt(x.reduce((s, y) => s + y * y, 0));
  return dot / (n(a) * n(b));
}

test('the node entry is what the exports map gives Node', async () => {
  const { EdgeShard, QdrantEdgeError, default: def } = await load();
  assert.equal(typeof EdgeShard.open, 'function');
  assert.equal(def, EdgeShard);
  assert.ok(new QdrantEdgeError('io', 'x') instanceof Error);
  const installed = join(project, 'node_modules/qdrant-edge-wasm');
  for (const f of ['index.js', 'node.js', 'worker.js', 'remote.js', 'index.d.ts', 'qdrant_edge_wasm_bg.wasm', 'README.md']) {
    assert.ok(existsSync(join(installed, f)), `${f} is in the package`);
  }
});

test('memory shard: upsert, query, count with a filter, batch update, retrieve', async () => {
  const { EdgeShard } = await load();
  const shard = await EdgeShard.open({ storage: 'memory', name: 'demo', config });
  assert.equal(shard.storage, 'memory');
  const up = await shard.upsert({ points });
  assert.equal(up.status, 'completed');
  assert.equal((await shard.info()).points_count, 100);

  // nearest ids, checked against a brute-force cosine ranking computed here
  const q = [0.3, 0.9, 1, 1];
  const want = points
    .map((p) => ({ id: p.id, s: cosine(q, p.vector.v) }))
    .sort((a, b) => b.s - a.s)
    .slice(0, 5);
  const got = await shard.query({ query: q, using: 'v', limit: 5, with_payload: true });
  assert.deepEqual(got.points.map((p) => p.id), want.map((w) => w.id));
  for (const [k, p] of got.points.entries()) {
    assert.ok(Math.abs(p.score - want[k].s) < 1e-5, `score ${p.score} vs ${want[k].s}`);
    assert.equal(p.payload.i, p.id);
  }

  const filter = { must: [{ key: 'parity', match: { value: 'even' } }, { key: 'i', range: { gte: 50 } }] };
  assert.deepEqual(await shard.count({ filter, exact: true }), { count: 25 });
  const evenNear = await shard.query({ query: q, using: 'v', limit: 3, filter });
  const wantEven = points
    .filter((p) => p.id % 2 === 0 && p.id >= 50)
    .map((p) => ({ id: p.id, s: cosine(q, p.vector.v) }))
    .sort((a, b) => b.s - a.s)
    .slice(0, 3);
  assert.deepEqual(evenNear.points.map((p) => p.id), wantEven.map((w) => w.id));

  const batch = await shard.update({
    operations: [
      { delete: { points: [0, 1, 2] } },
      { set_payload: { payload: { flag: true }, points: [10, 11] } },
      { upsert: { points: [{ id: 1000, vector: { v: [0, 0, 0, 1] }, payload: { i: 1000 } }] } },
    ],
  });
  assert.equal(batch.length, 3);
  assert.ok(batch.every((r) => r.status === 'completed'));
  assert.equal((await shard.count({ exact: true })).count, 98);
  assert.equal((await shard.count({ filter: { must: [{ key: 'flag', match: { value: true } }] } })).count, 2);
  const recs = await shard.retrieve({ ids: [0, 10, 1000], with_payload: true });
  assert.deepEqual(recs.map((r) => r.id).sort((a, b) => a - b), [10, 1000]);
  assert.equal(recs.find((r) => r.id === 10).payload.flag, true);

  const page = await shard.scroll({ limit: 4, with_payload: false });
  assert.equal(page.points.length, 4);
  assert.notEqual(page.next_page_offset, null);
  const idx = await shard.createIndex({ field_name: 'parity', field_schema: 'keyword' });
  assert.equal(idx.status, 'completed');
  assert.equal((await shard.info()).payload_schema.parity.data_type, 'keyword');
  const facet = await shard.facet({ key: 'parity', limit: 10, exact: true });
  const byValue = Object.fromEntries(facet.hits.map((h) => [h.value, h.count]));
  assert.deepEqual(byValue, { even: 48, odd: 49 }); // 0 and 2 deleted (even), 1 deleted (odd)

  // an update to a missing point is rejected, nothing changes
  await assert.rejects(shard.upsert({ points: [{ id: 5, vector: { v: [1, 2] } }] }), { code: 'invalid_argument' });
  assert.equal((await shard.count({ exact: true })).count, 98);
  assert.equal(typeof (await shard.optimize()), 'boolean');
  assert.equal((await shard.count({ exact: true })).count, 98);
  await shard.close();
});

test('vectors given as Float32Array / Float64Array are the same vectors as number arrays', async () => {
  const { EdgeShard } = await load();
  const multi = { vectors: { v: { size: 4, distance: 'Cosine' }, m: { size: 2, distance: 'Dot', multivector_config: { comparator: 'max_sim' } } } };
  const plain = await EdgeShard.open({ storage: 'memory', name: 'plain', config: multi });
  const typed = await EdgeShard.open({ storage: 'memory', name: 'typed', config: multi });
  const m = (i) => [[i % 7, 1], [1, -(i % 5)]];
  await plain.upsert({ points: points.map((p) => ({ id: p.id, vector: { v: p.vector.v, m: m(p.id) } })) });
  await typed.upsert({
    points: points.map((p, k) => ({
      id: p.id,
      vector: { v: k % 2 ? Float32Array.from(p.vector.v) : Float64Array.from(p.vector.v), m: m(p.id).map((r) => Float64Array.from(r)) },
    })),
  });
  // Float32Array holds the f32 the engine stores: the stored vectors are equal
  const ids = [0, 1, 2, 3, 57];
  const a = await plain.retrieve({ ids, with_vector: true });
  const b = await typed.retrieve({ ids, with_vector: true });
  assert.deepEqual(b, a);
  assert.ok(Array.isArray(b[0].vector.v), 'results hold plain arrays');
  for (const q of [[0.3, 0.9, 1, 1], [-1, 0.2, 0, 2]]) {
    for (const shard of [plain, typed]) {
      for (const query of [q, Float32Array.from(q), Float64Array.from(q)]) {
        const got = await shard.query({ query, using: 'v', limit: 5 });
        const want = await plain.query({ query: q, using: 'v', limit: 5 });
        assert.deepEqual(got, want);
      }
    }
  }
  const mq = await typed.query({ query: [Float32Array.from([1, 0]), [0, 1]], using: 'm', limit: 3 });
  assert.deepEqual(mq, await plain.query({ query: [[1, 0], [0, 1]], using: 'm', limit: 3 }));
  await plain.close();
  await typed.close();
});

test('calls run in order even when not awaited one by one', async () => {
  const { EdgeShard } = await load();
  const shard = await EdgeShard.open({ name: 'order', config });
  const ops = [];
  for (let i = 0; i < 20; i++) {
    ops.push(shard.upsert({ points: [{ id: i, vector: { v: vec(i) } }] }));
    ops.push(shard.count({ exact: true }));
  }
  const results = await Promise.all(ops);
  const counts = results.filter((r) => 'count' in r).map((r) => r.count);
  assert.deepEqual(counts, Array.from({ length: 20 }, (_, i) => i + 1));
  await shard.close();
});

test('typed errors', async () => {
  const { EdgeShard, QdrantEdgeError } = await load();
  const shard = await EdgeShard.open({ storage: 'memory', name: 'errors', config });

  const bad = await shard.query({ query: [1, 2], using: 'v' }).catch((e) => e);
  assert.ok(bad instanceof QdrantEdgeError, 'a QdrantEdgeError');
  assert.ok(bad instanceof Error);
  assert.equal(bad.name, 'QdrantEdgeError');
  assert.equal(bad.code, 'invalid_argument');
  assert.match(bad.message, /\S/);

  const unknownField = await shard.count({ filtr: {} }).catch((e) => e);
  assert.ok(unknownField instanceof QdrantEdgeError);
  assert.equal(unknownField.code, 'invalid_argument');

  const notFound = await EdgeShard.open({ storage: 'memory', name: 'nope' }).catch((e) => e);
  assert.ok(notFound instanceof QdrantEdgeError);
  assert.equal(notFound.code, 'not_found');

  for (const storage of ['idb', 'opfs', 'floppy']) {
    const e = await EdgeShard.open({ storage, name: 'x', config }).catch((err) => err);
    assert.ok(e instanceof QdrantEdgeError, storage);
    assert.equal(e.code, 'unsupported', storage);
  }
  const e = await EdgeShard.destroy({ storage: 'idb', name: 'x' }).catch((err) => err);
  assert.equal(e.code, 'unsupported');

  // a snapshot source of the wrong type
  const src = await shard.applySnapshot(42).catch((err) => err);
  assert.ok(src instanceof QdrantEdgeError);
  assert.equal(src.code, 'invalid_argument');
  // not an archive: the apply fails with a typed error and the shard keeps working
  await shard.upsert({ points: [{ id: 1, vector: { v: [1, 0, 0, 0] } }] });
  const junk = await shard.applySnapshot(new Uint8Array(4096).fill(7)).catch((err) => err);
  assert.ok(junk instanceof QdrantEdgeError, String(junk));
  assert.ok(['corrupted', 'invalid_argument'].includes(junk.code), junk.code);
  assert.equal((await shard.count({ exact: true })).count, 1);

  await shard.close();
  const closed = await shard.count({}).catch((err) => err);
  assert.ok(closed instanceof QdrantEdgeError);
  assert.equal(closed.code, 'shard_closed');
  await assert.rejects(shard.upsert({ points: [] }), { code: 'shard_closed' });
  await shard.close(); // closing twice is a no-op
});

test("the Qdrant server's basic snapshot restores into a memory shard; an aborted restore rejects", async () => {
  const snap = join(process.env.QEW_SHARED ?? join(repo, '../shared'), 'fixtures/basic/full.snapshot');
  assert.ok(existsSync(snap), `${snap} (set QEW_SHARED)`);
  const { EdgeShard } = await load();
  const { readFile } = await import('node:fs/promises');
  const bytes = await readFile(snap);
  const seen = [];
  const shard = await EdgeShard.restoreSnapshot({
    storage: 'memory',
    name: 'restored',
    source: new Blob([bytes]),
    onProgress: (p) => seen.push(p),
  });
  assert.ok((await shard.info()).points_count > 0);
  assert.equal(seen.at(-1).received, bytes.byteLength);
  assert.equal(seen.at(-1).total, bytes.byteLength);
  await shard.close();

  // an aborted restore leaves nothing behind and rejects with the signal's reason
  const ac = new AbortController();
  const aborted = EdgeShard.restoreSnapshot({
    name: 'aborted',
    source: bytes,
    onProgress: () => ac.abort(),
    signal: ac.signal,
  });
  await assert.rejects(aborted, { name: 'AbortError' });
});

test('index.d.ts type-checks a usage file and rejects wrong ones (tsc --strict)', async (t) => {
  const tsc = process.env.QEW_TSC;
  if (!tsc) {
    t.skip('QEW_TSC (a tsc binary) is not set; scripts/test-npm.sh installs TypeScript and sets it');
    return;
  }
  const good = `
import { EdgeShard, QdrantEdgeError, type QdrantEdgeErrorCode, type Filter, type ScoredPoint } from 'qdrant-edge-wasm';
import Default from 'qdrant-edge-wasm';
const s: EdgeShard = await Default.open({ storage: 'memory', name: 'n', config: { vectors: { v: { size: 4, distance: 'Cosine' } } } });
await s.upsert({ points: [{ id: 1, vector: { v: [1, 2, 3, 4] }, payload: { a: 1 } }, { id: '550e8400-e29b-41d4-a716-446655440000', vector: { v: [0, 0, 0, 1] } }] });
await s.upsert({ batch: { ids: [2, 3], vectors: { v: [[1, 1, 1, 1], [0, 1, 0, 1]] } } });
await s.upsert({ points: [{ id: 4, vector: { v: new Float32Array([1, 2, 3, 4]) } }, { id: 5, vector: Float64Array.of(0, 1, 0, 1) }] });
const typedHits = await s.query({ query: new Float32Array(4), using: 'v', limit: 1 });
const outVec = (await s.retrieve({ ids: [4], with_vector: true }))[0].vector;
const f: Filter = { must: [{ key: 'a', match: { value: 1 } }, { has_id: [1] }], must_not: { is_empty: { key: 'b' } }, should: [{ must: [{ key: 'a', range: { gte: 0 } }] }] };
const hits: ScoredPoint[] = (await s.query({ query: [1, 2, 3, 4], using: 'v', limit: 3, filter: f, with_payload: ['a'] })).points;
const scores: number[] = hits.map((h) => h.score);
const fused = await s.query({ prefetch: [{ query: [1, 2, 3, 4], using: 'v', limit: 10 }], query: { fusion: 'rrf' } });
const many = await s.queryBatch({ searches: [{ query: 1, using: 'v' }] });
const n: number = (await s.count({ filter: f, exact: true })).count;
const page = await s.scroll({ limit: 2, order_by: { key: 'a', direction: 'desc' } });
const next: number | bigint | string | null = page.next_page_offset;
const facet = await s.facet({ key: 'a', limit: 3 });
const recs = await s.retrieve({ ids: [1], with_vector: true });
const legacy = await s.search({ vector: { name: 'v', vector: [1, 2, 3, 4] }, limit: 2 });
const results = await s.update({ operations: [{ delete: { points: [1] } }, { set_payload: { payload: { x: 1 }, filter: f } }] });
const st: 'acknowledged' | 'completed' = results[0].status;
await s.setPayload({ payload: { b: 2 }, points: [2] });
await s.deletePayload({ keys: ['b'], points: [2] });
await s.clearPayload({ points: [2] });
await s.updateVectors({ points: [{ id: 2, vector: { v: [1, 0, 0, 0] } }] });
await s.deleteVectors({ points: [2], vector: ['v'] });
await s.createIndex({ field_name: 'a', field_schema: 'integer' });
await s.deleteIndex('a');
const changed: boolean = await s.optimize();
await s.flush();
const info = await s.info();
const pc: number = info.points_count;
const ac = new AbortController();
const report = await s.applySnapshot(new Blob([]), { sha256: 'ab', onProgress: ({ received, total }) => void [received, total], signal: ac.signal });
const kind: 'full' | 'partial' = report.kind;
const merged: string[] = [...report.segments_added, ...report.segments_removed, ...report.segments_merged];
const r2 = await EdgeShard.restoreSnapshot({ name: 'r', source: new Uint8Array(0), storage: 'idb' });
await EdgeShard.destroy({ storage: 'idb', name: 'r' });
const rs = await EdgeShard.restoreFromServer({ storage: 'opfs', name: 'r2', url: 'http://localhost:6333', collection: 'c', apiKey: 'k', onProgress: ({ received, total }) => void [received, total], signal: ac.signal, retries: 2, keepSnapshot: true });
const pulled = await rs.pullFromServer({ url: new URL('http://localhost:6333'), collection: 'c', shard: 0, headers: { 'x-a': 'b' }, fetch, retryDelay: 100 });
if (pulled.changed) { const k2: 'full' | 'partial' = pulled.report.kind; void k2; } else { const none: null = pulled.report; void none; }
const full = await rs.pullFromServer({ url: 'http://h', collection: 'c', full: true });
const status: number | undefined = new QdrantEdgeError('unauthorized', 'no', 401).status;
const remoteCode: QdrantEdgeErrorCode = 'remote';
const o = await EdgeShard.open({ name: 'o', outbox: { url: 'https://q.example:6333', collection: 'c', apiKey: 'k', batchSize: 64, auto: false } });
await o.setOutboxRemote(null);
const os = await o.outboxStatus();
const pend: number = os.pending;
const sy = await o.syncOutbox();
const why: string = sy.rejected[0].error;
const pe = await o.outboxPending({ max: 5 });
const seq: number = pe[0].seq;
await s.close();
try { await s.info(); } catch (e) { if (e instanceof QdrantEdgeError) { const c: QdrantEdgeErrorCode = e.code; void c; } }
void [typedHits, outVec, scores, fused, many, n, next, facet, recs, legacy, st, changed, pc, kind, merged, r2, full, status, remoteCode, pend, why, seq];
`;
  const bad = `
import { EdgeShard } from 'qdrant-edge-wasm';
const s = await EdgeShard.open({ name: 'n' });
await s.upsert({ points: [{ id: true, vector: [1] }] });
await s.query({ query: [1], limit: 'ten' });
await s.count({ filter: { must: [{ key: 'a', match: { valu: 1 } }] } });
await EdgeShard.open({ storage: 'disk', name: 'x' });
const c: 'nope' = (new Error() as import('qdrant-edge-wasm').QdrantEdgeError).code;
await EdgeShard.open({ name: 'x', outbox: { url: 'https://q', batchSize: 2 } });
await s.pullFromServer({ url: 'http://h' });
const added: number = (await s.applySnapshot(new Uint8Array(0))).segments_added;
`;
  const opts = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom', '--skipLibCheck', 'false'];
  writeFileSync(join(project, 'good.mts'), good);
  writeFileSync(join(project, 'bad.mts'), bad);
  const run = (file) => {
    try {
      execFileSync(tsc, [...opts, file], { cwd: project, encoding: 'utf8', stdio: 'pipe' });
      return '';
    } catch (e) {
      return e.stdout + e.stderr || 'failed';
    }
  };
  assert.equal(run('good.mts'), '', 'the usage file type-checks');
  const out = run('bad.mts');
  const lines = out.split('\n').filter((l) => l.includes('error TS'));
  // one error per wrong line: id: true, limit: 'ten', valu, 'disk', the code union, no collection
  // (pullFromServer), an outbox without its collection, segment ids typed as a count
  for (const line of [4, 5, 6, 7, 8, 9, 10, 11]) {
    assert.ok(lines.some((l) => l.includes(`bad.mts(${line},`)), `an error on line ${line} of bad.mts:\n${out}`);
  }
});

test("the server's full then partial snapshot, streamed: manifest and exact answers equal the server's", async () => {
  const { EdgeShard } = await load();
  const { readFile } = await import('node:fs/promises');
  const { createReadStream } = await import('node:fs');
  const { Readable } = await import('node:stream');
  const dir = join(process.env.QEW_SHARED ?? join(repo, '../shared'), 'fixtures/basic');
  const stream = (f) => Readable.toWeb(createReadStream(join(dir, f), { highWaterMark: 128 * 1024 }));
  const shard = await EdgeShard.restoreSnapshot({ name: 'basic', source: stream('full.snapshot') });
  const manifest = JSON.parse(await readFile(join(dir, 'full.manifest.json'), 'utf8'));
  assert.deepEqual(await shard.snapshotManifest(), manifest);

  const progress = [];
  const report = await shard.applySnapshot(stream('partial1.snapshot'), { onProgress: (p) => progress.push(p) });
  assert.equal(report.kind, 'partial');
  for (const k of ['segments_added', 'segments_removed', 'segments_merged']) {
    assert.ok(Array.isArray(report[k]) && report[k].every((id) => typeof id === 'string'), `${k} lists segment ids`);
  }
  assert.ok(report.segments_added.length + report.segments_merged.length > 0, 'the partial snapshot touched segments');
  const size = (await readFile(join(dir, 'partial1.snapshot'))).byteLength;
  assert.equal(report.archive_bytes, size);
  assert.equal(progress.at(-1).received, size);
  assert.equal(progress.at(-1).total, undefined, 'a stream has no known total');

  const expected = JSON.parse(await readFile(join(dir, 'partial1.expected.json'), 'utf8'));
  await compareExactQueries(shard, expected);

  // a wrong sha256 is refused before anything is committed; the shard answers as before
  const before = await shard.count({ exact: true });
  const wrong = await shard.applySnapshot(stream('full2.snapshot'), { sha256: '00'.repeat(32) }).catch((e) => e);
  assert.equal(wrong.code, 'invalid_argument', String(wrong));
  assert.match(wrong.message, /SHA-256/);
  assert.deepEqual(await shard.count({ exact: true }), before);
  await shard.close();
});
