// The outbox sender: replays the shard's durable outbox (local updates, recorded before they
// were applied) on a Qdrant server through its REST API, in order, and acknowledges what the
// server accepted. Runs next to the engine (in the Worker, or in process in Node).
//
// Requests: runs of point operations go as one `POST /collections/{c}/points/batch?wait=true`
// (up to `batchSize` operations); `create_index` and `delete_index` go alone. Each request has
// the `api-key` header when one is given.
//
// Outcomes:
// - 2xx: the entries are acknowledged (durably) and leave the outbox.
// - network failure, 408, 429, 5xx: kept; retried with exponential backoff (1 s doubling to
//   60 s), sooner on `syncOutbox()`.
// - 401 / 403 (`unauthorized`) and 404 for the collection itself (`not_found`): kept; sending
//   stops until `setRemote` or `syncOutbox()` is called again — the configuration is wrong,
//   not the entries.
// - another 4xx for a batch: its entries are sent one by one to find the refused one; a
//   refused single entry (e.g. 404 "No point with id", 400 a bad vector size) is acknowledged
//   and reported in `rejected` (`outboxStatus()`, `syncOutbox()`): the server will never take it, and
//   keeping it would block every later write. Its effect stays in the local shard until the
//   next snapshot from the server replaces it.
// Delivery is at least once: an entry sent but not acknowledged when the app stops is sent
// again; Qdrant's point updates are idempotent.

import { QdrantEdgeError } from './errors.js';

const POINT_OPS = new Set([
  'upsert',
  'delete',
  'set_payload',
  'overwrite_payload',
  'delete_payload',
  'clear_payload',
  'update_vectors',
  'delete_vectors',
]);

/** The REST request for a run of entries (all point operations) or one index entry. */
export function restRequest(collection, entries) {
  const c = encodeURIComponent(collection);
  if (entries.length === 1 && !POINT_OPS.has(entries[0].command)) {
    const { command, body } = entries[0];
    if (command === 'create_index') return { method: 'PUT', path: `/collections/${c}/index?wait=true`, body };
    if (command === 'delete_index') {
      return { method: 'DELETE', path: `/collections/${c}/index/${encodeURIComponent(body.field_name)}?wait=true`, body: null };
    }
    throw new QdrantEdgeError('internal', `unknown outbox command \`${command}\``);
  }
  return {
    method: 'POST',
    path: `/collections/${c}/points/batch?wait=true`,
    body: { operations: entries.map((e) => ({ [e.command]: e.body })) },
  };
}

/** JSON text of a request body; `BigInt`s (integers past 2^53, e.g. u64 ids) as plain digits. */
export function toJson(value) {
  const text = JSON.stringify(value, (_, x) => (typeof x === 'bigint' ? `\u0000bigint:${x}\u0000` : x));
  return text.replace(/"\\u0000bigint:(-?\d+)\\u0000"/g, '$1');
}

/** The longest prefix of `entries` that goes in one request. */
function firstRun(entries, batchSize) {
  if (!POINT_OPS.has(entries[0].command)) return entries.slice(0, 1);
  let n = 1;
  while (n < entries.length && n < batchSize && POINT_OPS.has(entries[n].command)) n++;
  return entries.slice(0, n);
}

function checkRemote(remote) {
  if (!remote || typeof remote !== 'object') throw new QdrantEdgeError('invalid_argument', '`outbox` must be an object');
  if (typeof remote.url !== 'string' || !/^https?:\/\//.test(remote.url)) {
    throw new QdrantEdgeError('invalid_argument', '`outbox.url` must be the http(s) URL of a Qdrant server');
  }
  if (typeof remote.collection !== 'string' || remote.collection === '') {
    throw new QdrantEdgeError('invalid_argument', '`outbox.collection` must be a collection name');
  }
}

/**
 * @param {(op: string, args?: any) => Promise<{ok: boolean, value?: any, error?: any}>} handle
 *   the engine's request queue (so outbox reads and acks run in order with updates)
 */
export function createSender(handle) {
  let remote = null; // {url, collection, apiKey, headers, batchSize, retry}
  let running = null; // the drain in progress (a promise)
  let timer = null;
  let backoff = 0;
  let stopped = null; // a configuration error: no automatic retries until reconfigured
  let inflight = null; // AbortController of the request in progress
  let lastError = null;
  let sent = 0;
  const rejected = [];

  const call = async (op, args) => {
    const r = await handle(op, args);
    if (!r.ok) throw new QdrantEdgeError(r.error.code, r.error.message);
    return r.value;
  };

  async function send(entries) {
    const { method, path, body } = restRequest(remote.collection, entries);
    const headers = { ...(remote.headers ?? {}) };
    if (body !== null) headers['content-type'] = 'application/json';
    if (remote.apiKey) headers['api-key'] = remote.apiKey;
    inflight = new AbortController();
    let res;
    try {
      res = await fetch(remote.url.replace(/\/+$/, '') + path, {
        method,
        headers,
        body: body === null ? undefined : toJson(body),
        signal: inflight.signal,
      });
    } catch (e) {
      return { retry: true, error: new QdrantEdgeError('io', `sending the outbox to ${remote.url} failed: ${e?.message ?? e}`) };
    } finally {
      inflight = null;
    }
    if (res.ok) {
      await res.arrayBuffer().catch(() => {});
      return { ok: true };
    }
    let text = '';
    try {
      text = await res.text();
    } catch {}
    let message = text;
    try {
      message = JSON.parse(text)?.status?.error ?? text;
    } catch {}
    const what = `${method} ${path}: HTTP ${res.status}${message ? `: ${message}` : ''}`;
    if (res.status === 401 || res.status === 403) return { stop: true, error: new QdrantEdgeError('unauthorized', what) };
    if (res.status === 404 && /collection/i.test(message) && !/point/i.test(message)) {
      return { stop: true, error: new QdrantEdgeError('not_found', what) };
    }
    if (res.status === 408 || res.status === 429 || res.status >= 500) return { retry: true, error: new QdrantEdgeError('remote', what) };
    return { refused: true, error: new QdrantEdgeError('remote', what) };
  }

  /** Keep the last 100 refused entries for `status()` / `sync()`. */
  function reject(e, error) {
    rejected.push({ seq: e.seq, command: e.command, body: e.body, error: error.message });
    if (rejected.length > 100) rejected.shift();
  }

  /** Send everything pending; throws on the first error that stops this pass. */
  async function drainOnce() {
    for (;;) {
      if (!remote) return;
      const pending = await call('outboxPending', { max: remote.batchSize, maxBytes: 8 << 20 });
      if (pending.length === 0) return;
      const run = firstRun(pending, remote.batchSize);
      const r = await send(run);
      if (r.ok) {
        await call('outboxAck', { seq: run[run.length - 1].seq });
        sent += run.length;
        continue;
      }
      if (r.refused && run.length > 1) {
        // find the refused entry: one at a time (what the batch applied before it is applied
        // again; point updates are idempotent)
        for (const e of run) {
          const one = await send([e]);
          if (one.ok || one.refused) {
            if (one.refused) reject(e, one.error);
            await call('outboxAck', { seq: e.seq });
            sent += one.ok ? 1 : 0;
            continue;
          }
          throw Object.assign(one.error, { stop: !!one.stop });
        }
        continue;
      }
      if (r.refused) {
        reject(run[0], r.error);
        await call('outboxAck', { seq: run[0].seq });
        continue;
      }
      throw Object.assign(r.error, { stop: !!r.stop });
    }
  }

  function schedule(delay) {
    if (!remote || remote.auto === false || stopped || timer) return;
    timer = setTimeout(() => {
      timer = null;
      drain().catch(() => {});
    }, delay);
  }

  function drain() {
    if (running) return running;
    running = (async () => {
      try {
        await drainOnce();
        backoff = 0;
        lastError = null;
      } catch (e) {
        lastError = e;
        if (e.stop) stopped = e;
        else {
          backoff = Math.min(backoff ? backoff * 2 : 1000, 60_000);
          schedule(backoff);
        }
        throw e;
      } finally {
        running = null;
      }
    })();
    return running;
  }

  return {
    /** Start (or, with null, stop) sending to `r`: {url, collection, apiKey?, headers?, batchSize?, auto?}. */
    configure(r) {
      if (r !== null) checkRemote(r);
      remote = r === null ? null : { batchSize: 256, ...r };
      if (remote && !(remote.batchSize >= 1)) remote.batchSize = 256;
      stopped = null;
      backoff = 0;
      clearTimeout(timer);
      timer = null;
      if (remote) schedule(0);
    },
    /** After an update: send it soon. */
    poke() {
      if (!backoff) schedule(0);
    },
    /** Send now; resolves when the outbox is empty, rejects with what stopped it. */
    async sync() {
      if (!remote) throw new QdrantEdgeError('invalid_argument', 'no outbox remote is configured (open with `outbox`, or setOutboxRemote)');
      stopped = null;
      clearTimeout(timer);
      timer = null;
      if (running) await running.catch(() => {});
      await drain();
      return { sent, rejected: rejected.slice() };
    },
    status() {
      return {
        remote: remote ? { url: remote.url, collection: remote.collection } : null,
        sent,
        rejected: rejected.slice(),
        lastError: lastError ? { code: lastError.code, message: lastError.message } : null,
        stopped: !!stopped,
        retryInMs: timer ? backoff : 0,
      };
    },
    /** Stop sending (close): a request in flight is aborted; its entries stay pending. Does
     * not wait for the drain (it may be queued behind the caller). */
    stop() {
      remote = null;
      clearTimeout(timer);
      timer = null;
      inflight?.abort();
    },
  };
}
