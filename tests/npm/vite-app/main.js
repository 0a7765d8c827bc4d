// The fixture app: qdrant-edge-wasm imported by its package name, bundled by `vite build` (the
// worker and the .wasm become assets). The test (tests/npm/vite.test.mjs) drives it through
// window.qew with playwright-core. Shards live on OPFS.

import { EdgeShard, QdrantEdgeError } from 'qdrant-edge-wasm';

const shards = new Map();

/** Errors cross page.evaluate as plain objects: {error: {name, code, message}}. */
async function guarded(f) {
  try {
    return { ok: await f() };
  } catch (e) {
    return { error: { name: e?.name, code: e?.code, message: String(e?.message ?? e), typed: e instanceof QdrantEdgeError } };
  }
}

window.qew = {
  /** Open (or, with a config, create) an OPFS shard; retries while the previous page still holds it. */
  open: (name, config) =>
    guarded(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const s = await EdgeShard.open({ storage: 'opfs', name, config });
          shards.set(name, s);
          return s.storage;
        } catch (e) {
          // a reload releases the old worker's lock a moment after the new page starts
          if (!(e instanceof QdrantEdgeError && e.code === 'io') || attempt >= 50) throw e;
          await new Promise((ok) => setTimeout(ok, 100));
        }
      }
    }),
  /** Any EdgeShard method on an open shard. */
  call: (name, method, body) => guarded(() => shards.get(name)[method](body)),
  restoreFromServer: (name, server) =>
    guarded(async () => {
      const progress = [];
      const s = await EdgeShard.restoreFromServer({ storage: 'opfs', name, ...server, onProgress: (p) => progress.push(p) });
      shards.set(name, s);
      return { storage: s.storage, progress };
    }),
  close: (name) =>
    guarded(async () => {
      await shards.get(name)?.close();
      shards.delete(name);
    }),
  destroy: (name) => guarded(() => EdgeShard.destroy({ storage: 'opfs', name })),
};

document.getElementById('status').textContent = 'ready';
window.qewReady = true;
