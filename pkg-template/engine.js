// The engine side of one shard: holds the wasm objects (Shard, an upload or a restore in
// progress) and runs requests strictly one at a time, in the order they arrive. Used by
// worker.js (in a dedicated Worker) and node.js (in process).

import { describeError, QdrantEdgeError } from './errors.js';
import { createSender } from './outbox.js';

// The number arrays of a body (vectors) cross into wasm as Float64Arrays, which the engine
// reads as arrays of the same numbers (src/web/mod.rs, js_to_json): one copy instead of several
// calls into JS per number. Returns `v` itself when it has no such array, else a copy of the
// containers on the way to them; the caller's body is never changed.
const PACKED_MIN = 8;
function allNumbers(a) {
  for (let i = 0; i < a.length; i++) if (typeof a[i] !== 'number') return false; // holes too
  return true;
}
export function packVectors(v) {
  if (Array.isArray(v)) {
    if (v.length >= PACKED_MIN && allNumbers(v)) return Float64Array.from(v);
    let out = null;
    for (let i = 0; i < v.length; i++) {
      const p = packVectors(v[i]);
      if (p !== v[i]) (out ??= v.slice())[i] = p;
    }
    return out ?? v;
  }
  if (v !== null && typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return v;
    let out = null;
    for (const [k, x] of Object.entries(v)) {
      const p = packVectors(x);
      if (p !== x) (out ??= Object.fromEntries(Object.entries(v)))[k] = p;
    }
    return out ?? v;
  }
  return v;
}

/**
 * @param {typeof import('./qdrant_edge_wasm.js')} wasm the initialized wasm-bindgen glue
 * @returns {{ handle(op: string, args: any): Promise<{ok: true, value: any} | {ok: false, error: {name: string, code: string, message: string}}> }}
 */
export function createEngine(wasm) {
  let shard = null; // wasm.Shard
  let upload = null; // wasm.SnapshotUpload, while applying a snapshot to `shard`
  let restore = null; // wasm.Restore, while restoring a snapshot into a new shard
  let tail = Promise.resolve();
  // replays the outbox on a server; its reads and acks go through `handle` (the queue)
  const sender = createSender((op, args) => handle(op, args));

  const closed = () => new QdrantEdgeError('shard_closed', 'shard is closed');
  const need = () => {
    if (!shard) throw closed();
    return shard;
  };
  const bytes = (chunk) => (chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk));
  const dropTransfer = async () => {
    const t = upload ?? restore;
    upload = restore = null;
    if (t) {
      try {
        await t.abort();
      } finally {
        t.free();
      }
    }
  };

  const ops = {
    async open({ storage, name, config, outbox }) {
      if (shard || restore) throw new QdrantEdgeError('invalid_argument', 'this engine already holds a shard');
      shard = await wasm.Shard.open(storage, name, config ?? null);
      if (outbox) await ops.setOutboxRemote({ outbox });
      return { storage: shard.storage };
    },
    async setOutboxRemote({ outbox }) {
      if (outbox) {
        sender.configure(outbox); // validates first
        await need().enableOutbox();
      } else {
        sender.configure(null);
      }
    },
    outboxPending({ max, maxBytes }) {
      return need().outboxPending(max ?? 256, maxBytes ?? 8 << 20);
    },
    async outboxAck({ seq }) {
      await need().outboxAck(seq);
    },
    outboxStatus() {
      return { ...need().outboxStatus(), ...sender.status() };
    },
    read({ command, body }) {
      return need().read(command, packVectors(body ?? null));
    },
    async update({ command, body }) {
      try {
        return await need().update(command, packVectors(body ?? null));
      } finally {
        sender.poke(); // also after a refusal: a batch refused half way records its prefix
      }
    },
    async flush() {
      await need().flush();
    },
    async optimize() {
      return need().optimize();
    },
    async snapshotManifest() {
      return need().snapshotManifest();
    },
    async close() {
      sender.stop();
      await dropTransfer();
      if (!shard) return;
      const s = shard;
      shard = null;
      try {
        await s.close();
      } finally {
        s.free();
      }
    },
    beginSnapshot({ sha256 }) {
      if (upload || restore) throw new QdrantEdgeError('invalid_argument', 'a snapshot transfer is already in progress');
      upload = need().beginSnapshot(sha256 ?? undefined);
      return 0;
    },
    async push({ chunk }) {
      const t = upload ?? restore;
      if (!t) throw new QdrantEdgeError('invalid_argument', 'no snapshot transfer in progress');
      try {
        // OPFS acquires spare files before the chunk is written, hence a promise
        await t.push(bytes(chunk));
      } catch (e) {
        await dropTransfer(); // a bad archive ends the transfer; the shard is unchanged
        throw e;
      }
      return t.received;
    },
    async finishSnapshot() {
      if (!upload) throw new QdrantEdgeError('invalid_argument', 'no snapshot upload in progress');
      const u = upload;
      upload = null;
      try {
        return await need().finishSnapshot(u);
      } finally {
        u.free();
      }
    },
    async abortTransfer() {
      await dropTransfer();
    },
    async beginRestore({ storage, name, sha256 }) {
      if (shard || restore) throw new QdrantEdgeError('invalid_argument', 'this engine already holds a shard');
      restore = await wasm.Shard.restore(storage, name, sha256 ?? undefined);
      return 0;
    },
    async finishRestore() {
      if (!restore) throw new QdrantEdgeError('invalid_argument', 'no restore in progress');
      const r = restore;
      restore = null;
      try {
        shard = await r.finish();
      } finally {
        r.free();
      }
      return { storage: shard.storage };
    },
    async destroy({ storage, name }) {
      await wasm.Shard.destroy(storage, name);
    },
  };

  async function run(op, args) {
    const f = Object.hasOwn(ops, op) ? ops[op] : null;
    try {
      if (!f) throw new QdrantEdgeError('invalid_argument', `unknown operation \`${op}\``);
      return { ok: true, value: await f(args ?? {}) };
    } catch (e) {
      return { ok: false, error: describeError(e) };
    }
  }

  function handle(op, args) {
    if (op === 'syncOutbox') {
      // not queued: the drain queues its own reads and acks, between the caller's updates
      return sender.sync().then(
        (value) => ({ ok: true, value }),
        (e) => ({ ok: false, error: describeError(e) }),
      );
    }
    const result = tail.then(() => run(op, args));
    tail = result;
    return result;
  }

  return { handle };
}
