// EdgeShard over a transport: index.js gives it a dedicated Worker, node.js an in-process
// engine. A transport is {call(op, args, transfer?): Promise<any>, terminate(), inProcess}.

import { QdrantEdgeError } from './errors.js';
import { QdrantRemote, RestartTransfer } from './remote.js';

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
 * Begin a transfer, pump a download (remote.js) into it, finish it; when the download has to
 * start over from byte 0, abort the transfer (nothing was committed) and begin again.
 * Resolves to what `finish` gives, or null when the server had nothing to send (304).
 */
async function transferDownload(transport, call, download, { begin, finish, onProgress, signal }) {
  for (;;) {
    const stream = await download.next();
    if (!stream) return null;
    if (signal?.aborted) {
      stream.cancel().catch(() => {});
      throw aborted(signal);
    }
    await begin();
    try {
      await pump(transport, stream, {
        signal,
        onProgress: onProgress && ((p) => onProgress({ received: p.received, total: download.total })),
      });
    } catch (e) {
      await call('abortTransfer').catch(() => {});
      if (e instanceof RestartTransfer) continue;
      throw e;
    }
    return finish();
  }
}

/** The options of restoreFromServer/pullFromServer that name the server side. */
function serverOptions({ url, collection, shard, apiKey, headers, fetch, retries, retryDelay }, signal) {
  return { url, collection, shard, apiKey, headers, fetch, retries, retryDelay, signal };
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

    /**
     * Download a full snapshot of shard `shard` of `collection` from a Qdrant server and restore
     * it into a new shard `name`. The server makes a named shard snapshot, which is downloaded
     * with resumes (HTTP ranges) and checked against its SHA-256, then deleted on the server
     * (unless `keepSnapshot`).
     */
    static async restoreFromServer(options = {}) {
      const { storage = env.defaultStorage, name, onProgress, signal, keepSnapshot = false } = options;
      env.checkStorage(storage);
      if (typeof name !== 'string' || name === '') throw new QdrantEdgeError('invalid_argument', '`name` must be a non-empty string');
      if (signal?.aborted) throw aborted(signal);
      const remote = new QdrantRemote(serverOptions(options, signal));
      const desc = await remote.createSnapshot();
      let transport;
      try {
        transport = env.connect({ workerUrl: options.workerUrl });
        const call = (op, args) => transport.call(op, args);
        const sha256 = typeof desc.checksum === 'string' && desc.checksum ? desc.checksum : null;
        const { storage: st } = await transferDownload(transport, call, remote.namedDownload(desc), {
          begin: () => call('beginRestore', { storage, name, sha256 }),
          finish: () => call('finishRestore'),
          onProgress,
          signal,
        });
        return new EdgeShard(transport, st, name);
      } catch (e) {
        transport?.terminate();
        throw e;
      } finally {
        if (!keepSnapshot) await remote.deleteSnapshot(desc.name);
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

    /**
     * Bring this shard up to date from a Qdrant server: send its manifest to
     * `POST /collections/{collection}/shards/{shard}/snapshot/partial/create` and apply the
     * partial snapshot the server answers with; a 304 means it is current. `full: true`
     * downloads and applies a full snapshot instead (resumable, like restoreFromServer).
     */
    async pullFromServer(options = {}) {
      const { onProgress, signal, full = false, keepSnapshot = false } = options;
      if (signal?.aborted) throw aborted(signal);
      if (!this.#transport) throw new QdrantEdgeError('shard_closed', 'shard is closed');
      const remote = new QdrantRemote(serverOptions(options, signal));
      const transport = this.#transport;
      const call = (op, args) => this.#call(op, args);
      const finish = () => call('finishSnapshot');
      if (full) {
        const desc = await remote.createSnapshot();
        try {
          const sha256 = typeof desc.checksum === 'string' && desc.checksum ? desc.checksum : null;
          const report = await transferDownload(transport, call, remote.namedDownload(desc), {
            begin: () => call('beginSnapshot', { sha256 }),
            finish,
            onProgress,
            signal,
          });
          return { changed: true, report };
        } finally {
          if (!keepSnapshot) await remote.deleteSnapshot(desc.name);
        }
      }
      const manifest = await this.snapshotManifest();
      const report = await transferDownload(transport, call, remote.partialDownload(manifest), {
        begin: () => call('beginSnapshot', { sha256: null }),
        finish,
        onProgress,
        signal,
      });
      return report ? { changed: true, report } : { changed: false, report: null };
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
