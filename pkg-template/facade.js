// EdgeShard over a transport: index.js gives it a dedicated Worker, node.js an in-process
// engine. A transport is {call(op, args, transfer?): Promise<any>, terminate(), inProcess}.

import { QdrantEdgeError } from './errors.js';

const CHUNK = 4 << 20; // bytes per message when the source is one buffer

/** The chunks of a snapshot source as Uint8Arrays, with the total size when known. */
function chunksOf(source, { inProcess, transfer }) {
  // a chunk posted to a worker is transferred; a view on part of a larger buffer is copied
  // first (transferring would take the whole buffer, cloning would copy all of it)
  const own = (u8) => (inProcess || (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength) ? u8 : u8.slice());
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return { total: source.size, stream: source.stream(), own };
  }
  if (typeof ReadableStream !== 'undefined' && source instanceof ReadableStream) {
    return { total: undefined, stream: source, own };
  }
  let u8;
  if (source instanceof ArrayBuffer) u8 = new Uint8Array(source);
  else if (ArrayBuffer.isView(source)) u8 = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  else {
    throw new QdrantEdgeError(
      'invalid_argument',
      'snapshot source must be a ReadableStream<Uint8Array>, a Blob, an ArrayBuffer or a Uint8Array',
    );
  }
  if (!inProcess && transfer && u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength) {
    // the caller gave the buffer away: one message, no copy (the buffer is detached after)
    return { total: u8.byteLength, parts: [u8], own: (x) => x };
  }
  const parts = [];
  for (let at = 0; at < u8.byteLength; at += CHUNK) parts.push(u8.subarray(at, Math.min(at + CHUNK, u8.byteLength)));
  // a copy per chunk keeps the caller's buffer intact; in process there is no copy at all
  return { total: u8.byteLength, parts, own: inProcess ? (x) => x : (x) => x.slice() };
}

function aborted(signal) {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

/** Push `source` through `transport` ('push' messages), one acknowledged chunk at a time. */
async function pump(transport, source, { onProgress, signal, transfer }) {
  const { total, stream, parts, own } = chunksOf(source, { inProcess: transport.inProcess, transfer });
  let received = 0;
  const send = async (chunk) => {
    if (signal?.aborted) throw aborted(signal);
    if (!(chunk instanceof Uint8Array)) {
      if (chunk instanceof ArrayBuffer) chunk = new Uint8Array(chunk);
      else throw new QdrantEdgeError('invalid_argument', 'snapshot stream chunks must be Uint8Array');
    }
    if (chunk.byteLength === 0) return;
    const c = own(chunk);
    received = await transport.call('push', { chunk: c }, transport.inProcess ? [] : [c.buffer]);
    onProgress?.({ received, total });
  };
  if (parts) {
    for (const p of parts) await send(p);
  } else {
    const reader = stream.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await send(value);
      }
    } catch (e) {
      reader.cancel(e).catch(() => {});
      throw e;
    } finally {
      reader.releaseLock();
    }
  }
  if (signal?.aborted) throw aborted(signal);
  return received;
}

/**
 * @param {{ connect(): any, checkStorage(storage: string): void, defaultStorage: string }} env
 */
export function defineEdgeShard(env) {
  class EdgeShard {
    #transport;
    #storage;
    #name;

    /** @private use EdgeShard.open or EdgeShard.restoreSnapshot */
    constructor(transport, storage, name) {
      this.#transport = transport;
      this.#storage = storage;
      this.#name = name;
    }

    static async open({ storage = env.defaultStorage, name, config, outbox, ...rest } = {}) {
      env.checkStorage(storage);
      if (typeof name !== 'string' || name === '') throw new QdrantEdgeError('invalid_argument', '`name` must be a non-empty string');
      name = env.shardName?.(storage, name) ?? name;
      const transport = env.connect(rest);
      try {
        const { storage: st } = await transport.call('open', { storage, name, config: config ?? null, outbox: outbox ?? null });
        return new EdgeShard(transport, st, name);
      } catch (e) {
        transport.terminate();
        throw e;
      }
    }

    static async restoreSnapshot({ storage = env.defaultStorage, name, source, sha256, onProgress, signal, transfer, ...rest } = {}) {
      env.checkStorage(storage);
      if (typeof name !== 'string' || name === '') throw new QdrantEdgeError('invalid_argument', '`name` must be a non-empty string');
      name = env.shardName?.(storage, name) ?? name;
      if (signal?.aborted) throw aborted(signal);
      const transport = env.connect(rest);
      try {
        await transport.call('beginRestore', { storage, name, sha256: sha256 ?? null });
        try {
          await pump(transport, source, { onProgress, signal, transfer });
        } catch (e) {
          await transport.call('abortTransfer').catch(() => {});
          throw e;
        }
        const { storage: st } = await transport.call('finishRestore');
        return new EdgeShard(transport, st, name);
      } catch (e) {
        transport.terminate();
        throw e;
      }
    }

    static async destroy({ storage = env.defaultStorage, name, ...rest } = {}) {
      env.checkStorage(storage);
      if (typeof name !== 'string' || name === '') throw new QdrantEdgeError('invalid_argument', '`name` must be a non-empty string');
      name = env.shardName?.(storage, name) ?? name;
      const transport = env.connect(rest);
      try {
        await transport.call('destroy', { storage, name });
      } finally {
        transport.terminate();
      }
    }

    /** The storage backend: "memory" or "idb". */
    get storage() {
      return this.#storage;
    }

    get name() {
      return this.#name;
    }

    #call(op, args, transfer) {
      if (!this.#transport) return Promise.reject(new QdrantEdgeError('shard_closed', 'shard is closed'));
      return this.#transport.call(op, args, transfer);
    }

    query(body) {
      return this.#call('read', { command: 'query', body: body ?? null });
    }

    queryBatch(body) {
      return this.#call('read', { command: 'query_batch', body: body ?? null });
    }

    search(body) {
      return this.#call('read', { command: 'search', body: body ?? null });
    }

    scroll(body) {
      return this.#call('read', { command: 'scroll', body: body ?? null });
    }

    count(body) {
      return this.#call('read', { command: 'count', body: body ?? null });
    }

    facet(body) {
      return this.#call('read', { command: 'facet', body: body ?? null });
    }

    retrieve(body) {
      return this.#call('read', { command: 'retrieve', body: body ?? null });
    }

    upsert(body) {
      return this.#call('update', { command: 'upsert', body: body ?? null });
    }

    update(body) {
      return this.#call('update', { command: 'update', body: body ?? null });
    }

    delete(body) {
      return this.#call('update', { command: 'delete', body: body ?? null });
    }

    setPayload(body) {
      return this.#call('update', { command: 'set_payload', body: body ?? null });
    }

    overwritePayload(body) {
      return this.#call('update', { command: 'overwrite_payload', body: body ?? null });
    }

    deletePayload(body) {
      return this.#call('update', { command: 'delete_payload', body: body ?? null });
    }

    clearPayload(body) {
      return this.#call('update', { command: 'clear_payload', body: body ?? null });
    }

    updateVectors(body) {
      return this.#call('update', { command: 'update_vectors', body: body ?? null });
    }

    deleteVectors(body) {
      return this.#call('update', { command: 'delete_vectors', body: body ?? null });
    }

    createIndex(body) {
      return this.#call('update', { command: 'create_index', body: body ?? null });
    }

    deleteIndex(body) {
      return this.#call('update', { command: 'delete_index', body: body ?? null });
    }

    info() {
      return this.#call('read', { command: 'info', body: null });
    }

    flush() {
      return this.#call('flush');
    }

    optimize() {
      return this.#call('optimize');
    }

    snapshotManifest() {
      return this.#call('snapshotManifest');
    }

    /** Start dual-writing: record every later update in the durable outbox and send it to
     * `remote` ({url, collection, apiKey?, headers?, batchSize?, auto?}); null stops sending
     * (recording goes on: the outbox stays enabled). */
    setOutboxRemote(remote) {
      return this.#call('setOutboxRemote', { outbox: remote ?? null });
    }

    /** Send the outbox now; resolves when it is empty ({sent, rejected}). */
    syncOutbox() {
      return this.#call('syncOutbox');
    }

    /** {enabled, pending, acked, remote, sent, rejected, lastError, stopped, retryInMs}. */
    outboxStatus() {
      return this.#call('outboxStatus');
    }

    /** Pending outbox entries, oldest first: [{seq, command, body}]. */
    outboxPending({ max = 256 } = {}) {
      return this.#call('outboxPending', { max, maxBytes: 8 << 20 });
    }

    async applySnapshot(source, { sha256, onProgress, signal, transfer } = {}) {
      if (signal?.aborted) throw aborted(signal);
      await this.#call('beginSnapshot', { sha256: sha256 ?? null });
      try {
        await pump(this.#transport, source, { onProgress, signal, transfer });
      } catch (e) {
        await this.#call('abortTransfer').catch(() => {});
        throw e;
      }
      return this.#call('finishSnapshot');
    }

    /** Flush, commit and release the shard, and stop its worker. Later calls: shard_closed. */
    async close() {
      const t = this.#transport;
      if (!t) return;
      this.#transport = null;
      try {
        await t.call('close');
      } finally {
        t.terminate();
      }
    }
  }

  return EdgeShard;
}
