// The shard's dedicated Worker for benches/run_hnsw.py's Chromium rows (served by hnsw.mjs and
// given to EdgeShard.restoreSnapshot as `workerUrl`). It answers the package's worker protocol
// exactly as the package's worker.js does ({id, op, args} -> engine.handle), so the shard is
// restored through the public API; in addition it listens on the BroadcastChannel
// "qew-hnsw-bench" for {run: {queries: <url of a JSON list of query bodies>}}, then asks every
// body one at a time through the same engine queue and times each call with performance.now()
// inside the worker: no postMessage, no structured clone of the request or the answer.

import init, * as wasm from '/pkg/qdrant_edge_wasm.js';
import { createEngine } from '/pkg/engine.js';

const ready = init().then(() => createEngine(wasm));

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  let reply;
  try {
    reply = await (await ready).handle(op, args);
  } catch (error) {
    reply = { ok: false, error: { name: 'Error', code: 'internal', message: String(error?.message ?? error) } };
  }
  self.postMessage({ id, ...reply });
};

const WARMUP = 5; // as the native exact_search bench: the first bodies once, untimed

const channel = new BroadcastChannel('qew-hnsw-bench');
channel.onmessage = async (event) => {
  if (!event.data?.run) return;
  try {
    const engine = await ready;
    const r = await fetch(event.data.run.queries);
    if (!r.ok) throw new Error(`${event.data.run.queries}: HTTP ${r.status}`);
    const bodies = await r.json();
    const ask = async (body) => {
      const res = await engine.handle('read', { command: 'query', body });
      if (!res.ok) throw new Error(`query: ${res.error.code}: ${res.error.message}`);
      return res.value;
    };
    for (const b of bodies.slice(0, WARMUP)) await ask(b);
    const latencies_ms = [];
    const ids = [];
    const t0 = performance.now();
    for (const b of bodies) {
      const t = performance.now();
      const res = await ask(b);
      latencies_ms.push(performance.now() - t);
      ids.push(res.points.map((p) => p.id));
    }
    const total_s = (performance.now() - t0) / 1e3;
    channel.postMessage({ result: { latencies_ms, ids, total_s, isolated: self.crossOriginIsolated } });
  } catch (e) {
    channel.postMessage({ error: String((e && e.stack) || e) });
  }
};
