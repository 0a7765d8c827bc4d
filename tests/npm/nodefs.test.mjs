// The "fs" storage of the Node entry: a real Qdrant shard directory on disk. A shard this
// package writes loads in qdrant-edge-py 0.9.0 and answers the same queries, and a shard
// qdrant-edge-py writes opens here; a second process cannot open a directory that is open; a
// writer killed with SIGKILL loses no acknowledged update.
// Run: node --test tests/npm/ (after scripts/build-npm.sh; qdrant-edge-py from scripts/setup.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { installPackage, repo } from './helpers.mjs';

const python = process.env.QEW_PYTHON ?? join(repo, '.venv/bin/python');
let project;
let pkg;

before(() => {
  assert.ok(existsSync(python), `qdrant-edge-py's Python (${python}) is required: run scripts/setup.sh`);
  project = installPackage('qew-fs-');
});

after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

async function load() {
  pkg ??= await import(pathToFileURL(join(project, 'entry.mjs')).href);
  return pkg;
}

/** Run Python with qdrant-edge-py; `script` prints one JSON value. */
function py(script, ...args) {
  return JSON.parse(execFileSync(python, ['-c', script, ...args], { encoding: 'utf8' }));
}

const QUERY_PY = `
import json, sys
from qdrant_edge import EdgeShard, Query, QueryRequest, CountRequest
s = EdgeShard.load(sys.argv[1])
res = s.query(QueryRequest(query=Query.Nearest([0.2, 0.9, 0.1, 0.4], using="v"), limit=5, with_payload=True))
n = s.count(CountRequest(exact=True))
print(json.dumps({"ids": [p.id for p in res], "scores": [p.score for p in res], "count": n}))
s.close()
`;

const config = { vectors: { v: { size: 4, distance: 'Cosine' } } };
const point = (i) => ({ id: i, vector: { v: [Math.cos(i), Math.sin(i), (i % 5) / 5, 1] }, payload: { i, tag: i % 2 ? 'odd' : 'even' } });

test('a shard written on "fs" loads in qdrant-edge-py with the same answers', async () => {
  const { EdgeShard } = await load();
  const dir = join(project, 'shards/ours');
  const s = await EdgeShard.open({ storage: 'fs', name: dir, config });
  assert.equal(s.storage, 'fs');
  await s.upsert({ points: Array.from({ length: 300 }, (_, i) => point(i)) });
  await s.delete({ points: [7, 8, 9] });
  await s.setPayload({ payload: { extra: true }, points: [1] });
  await s.createIndex({ field_name: 'tag', field_schema: 'keyword' });
  await s.optimize();
  await s.upsert({ points: [point(1000)] });
  const ours = await s.query({ query: [0.2, 0.9, 0.1, 0.4], using: 'v', limit: 5 });
  await s.close();
  const theirs = py(QUERY_PY, dir);
  assert.equal(theirs.count, 298);
  assert.deepEqual(theirs.ids, ours.points.map((p) => p.id));
  theirs.scores.forEach((x, k) => assert.ok(Math.abs(x - ours.points[k].score) < 1e-5, `${x} vs ${ours.points[k].score}`));
});

test('a shard qdrant-edge-py wrote opens on "fs"', async () => {
  const { EdgeShard } = await load();
  const dir = join(project, 'shards/theirs');
  const made = py(
    `
import json, sys, math
from qdrant_edge import EdgeShard, EdgeConfig, EdgeVectorParams, Distance, Point, UpdateOperation
s = EdgeShard.create(sys.argv[1], EdgeConfig(vectors={"v": EdgeVectorParams(size=4, distance=Distance.Cosine)}))
pts = [Point(id=i, vector={"v": [math.cos(i), math.sin(i), (i % 5) / 5, 1]}, payload={"i": i}) for i in range(200)]
s.update(UpdateOperation.upsert_points(pts))
s.update(UpdateOperation.delete_points([3, 4]))
s.flush()
s.close()
print(json.dumps(True))
`,
    dir,
  );
  assert.equal(made, true);
  const theirs = py(QUERY_PY, dir);
  const s = await EdgeShard.open({ storage: 'fs', name: dir });
  const ours = await s.query({ query: [0.2, 0.9, 0.1, 0.4], using: 'v', limit: 5 });
  assert.deepEqual(ours.points.map((p) => p.id), theirs.ids);
  assert.equal((await s.count({ exact: true })).count, 198);
  await s.close();
});

test('one writer per directory, also across processes; SIGKILL loses no acknowledged update', async () => {
  const { EdgeShard } = await load();
  const dir = join(project, 'shards/killed');
  const child = join(project, 'writer.mjs');
  writeFileSync(
    child,
    `import { EdgeShard } from 'qdrant-edge-wasm';
const s = await EdgeShard.open({ storage: 'fs', name: process.argv[2], config: ${JSON.stringify(config)} });
for (let i = 0; ; i++) {
  await s.upsert({ points: [{ id: i, vector: { v: [1, i, 0, 1] }, payload: { i } }] });
  process.stdout.write(i + '\\n'); // acknowledged
}
`,
  );
  const proc = spawn(process.execPath, [child, dir], { cwd: project, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  // wait for a few hundred acknowledged updates
  for (let k = 0; k < 600 && out.split('\n').length < 300; k++) await new Promise((r) => setTimeout(r, 25));
  // the writer holds the directory: another process (this one) is refused
  await assert.rejects(EdgeShard.open({ storage: 'fs', name: dir }), (e) => e.code === 'io' && /another process/.test(e.message));
  proc.kill('SIGKILL');
  await new Promise((r) => proc.on('exit', r));
  const acked = out.split('\n').filter((l) => l !== '').map(Number);
  assert.ok(acked.length >= 300, `only ${acked.length} updates acknowledged`);
  // the dead writer's lock is taken over
  const s = await EdgeShard.open({ storage: 'fs', name: dir });
  const n = (await s.count({ exact: true })).count;
  assert.ok(n >= acked.length && n <= acked.length + 1, `${n} points after ${acked.length} acknowledged upserts`);
  const last = acked[acked.length - 1];
  assert.equal((await s.retrieve({ ids: [last], with_payload: true }))[0].payload.i, last);
  await s.close();
  await EdgeShard.destroy({ storage: 'fs', name: dir });
  assert.ok(!existsSync(dir));
});
