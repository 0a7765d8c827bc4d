// The measurement shared by the Node and the browser rows of benches/run_browser.py: the same
// code runs against the Node package (storage "fs") and, in a page of headless Chromium, against
// the browser package (its dedicated Worker: "memory", "opfs", "idb").
//
// runBackend(EdgeShard, {storage, name, data}) creates an empty shard, upserts every point in
// batches of `meta.batch` (awaiting each call: it resolves once the update is durable on that
// backend), flushes, then asks every query exact, one at a time, unfiltered and with the filter
// `cat == 3`. Latency = from the call to its resolved promise, as an application sees it (in the
// browser this includes the structured clone to the worker and back). The point bodies are built
// inside the timed loop (as any caller builds them), like the native and Python rows.
// Payload of point i: {n: i % 100, cat: i % 10}.

const now = () => performance.now();

export const FILTER = { must: [{ key: 'cat', match: { value: 3 } }] };

/** data: {meta, vectors: Float32Array, queries: Float32Array} */
export async function runBackend(EdgeShard, { storage, name, data }) {
  const { meta, vectors, queries } = data;
  const { points: n, dim, batch, limit } = meta;
  await EdgeShard.destroy({ storage, name }).catch(() => {});
  const tOpen = now();
  const shard = await EdgeShard.open({ storage, name, config: { vectors: { '': { size: dim, distance: 'Cosine' } } } });
  const open_ms = now() - tOpen;
  const batch_ms = [];
  const t0 = now();
  for (let start = 0; start < n; start += batch) {
    const tb = now();
    const points = [];
    for (let i = start; i < Math.min(n, start + batch); i++) {
      points.push({ id: i, vector: Array.from(vectors.subarray(i * dim, (i + 1) * dim)), payload: { n: i % 100, cat: i % 10 } });
    }
    const r = await shard.upsert({ points });
    if (r.status !== 'completed' && r.status !== 'acknowledged') throw new Error(`upsert: ${JSON.stringify(r)}`);
    batch_ms.push(now() - tb);
  }
  const upsert_s = (now() - t0) / 1e3;
  const t1 = now();
  await shard.flush();
  const flush_s = (now() - t1) / 1e3;
  const count = (await shard.count({ exact: true })).count;
  if (count !== n) throw new Error(`${storage}: count ${count} after upserting ${n} points`);

  // the cost of a call that does almost nothing: the transport's round trip
  const rtt = [];
  for (let k = 0; k < 100; k++) {
    const t = now();
    await shard.retrieve({ ids: [0], with_payload: false });
    rtt.push(now() - t);
  }

  const out = { storage, points: n, open_ms, upsert_s, flush_s, batch_ms, rtt_ms: rtt, queries: {} };
  for (const [variant, filter] of [['plain', null], ['filtered', FILTER]]) {
    const bodies = [];
    for (let k = 0; k < meta.queries; k++) {
      const b = { query: Array.from(queries.subarray(k * dim, (k + 1) * dim)), limit, params: { exact: true } };
      if (filter) b.filter = filter;
      bodies.push(b);
    }
    for (const b of bodies.slice(0, 5)) await shard.query(b); // warm-up
    const lat = [];
    const ids = [];
    const scores = [];
    const t = now();
    for (const b of bodies) {
      const tq = now();
      const r = await shard.query(b);
      lat.push(now() - tq);
      ids.push(r.points.map((p) => p.id));
      scores.push(r.points.map((p) => p.score));
    }
    out.queries[variant] = { latencies_ms: lat, ids, scores, total_s: (now() - t) / 1e3 };
  }
  await shard.close();
  await EdgeShard.destroy({ storage, name });
  return out;
}
