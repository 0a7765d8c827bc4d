// Talking to a Qdrant server for EdgeShard.restoreFromServer and shard.pullFromServer (facade.js):
// the shard snapshot endpoints of Qdrant's REST API, the `api-key` header, typed errors, bounded
// retries with exponential backoff, and downloads that resume with HTTP ranges.
//
// Endpoints (Qdrant 1.19):
//   POST   /collections/{c}/shards/{s}/snapshots            create a named shard snapshot -> {name, size, checksum}
//   GET    /collections/{c}/shards/{s}/snapshots/{name}     download it (a file: Range, ETag, Last-Modified)
//   DELETE /collections/{c}/shards/{s}/snapshots/{name}     delete it (the server keeps it otherwise)
//   POST   /collections/{c}/shards/{s}/snapshot/partial/create   body: a manifest; 304 when it is current
//
// A download is a sequence of attempts. Within one attempt a broken body is resumed where it
// broke (`Range: bytes=N-`): the engine keeps the bytes it took, so the archive goes on at byte N.
// When the server cannot continue (it answers 200 with the whole file, or another representation,
// or the body cannot be resumed at all: partial snapshots are made on the fly), the attempt fails
// with RestartTransfer and the caller aborts the transfer and begins a new one from byte 0.

import { QdrantEdgeError } from './errors.js';

/** The transfer has to begin again from byte 0 (internal to the package). */
export class RestartTransfer extends Error {
  constructor(message) {
    super(message);
    this.name = 'RestartTransfer';
  }
}

export function abortReason(signal) {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** HTTP statuses worth another try: timeouts, rate limits, server and gateway errors. */
const TRANSIENT = new Set([408, 429, 500, 502, 503, 504]);

function codeOf(status) {
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 404) return 'not_found';
  return 'remote';
}

/** A QdrantEdgeError for a non-2xx answer, with the server's message (Qdrant: `{status: {error}}`). */
async function httpError(res, what) {
  let detail = '';
  try {
    const text = (await res.text()).slice(0, 2000).trim();
    try {
      const j = JSON.parse(text);
      detail = typeof j?.status?.error === 'string' ? j.status.error : text;
    } catch {
      detail = text;
    }
  } catch {
    // no readable body
  }
  const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  return new QdrantEdgeError(codeOf(res.status), `${what}: ${status}${detail ? `: ${detail}` : ''}`, res.status);
}

/** The byte length of a 200 answer's body when the server says it and the body is not encoded. */
function plainLength(res) {
  const enc = res.headers.get('content-encoding');
  if (enc && enc.toLowerCase() !== 'identity') return undefined;
  const n = Number(res.headers.get('content-length'));
  return res.headers.has('content-length') && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The snapshot endpoints of one shard of one collection on one server, for one operation. */
export class QdrantRemote {
  #base;
  #path;
  #headers;
  #fetch;
  #signal;
  #left;
  #delay;
  #retried = 0;

  constructor({ url, collection, shard = 0, apiKey, headers, fetch: fetchFn, retries = 3, retryDelay = 500, signal } = {}) {
    if (!(typeof url === 'string' && url !== '') && !(url instanceof URL)) {
      throw new QdrantEdgeError('invalid_argument', '`url` must be the Qdrant server URL (a string or a URL)');
    }
    if (typeof collection !== 'string' || collection === '') {
      throw new QdrantEdgeError('invalid_argument', '`collection` must be a non-empty string');
    }
    if (!Number.isSafeInteger(shard) || shard < 0) throw new QdrantEdgeError('invalid_argument', '`shard` must be a shard id (an integer >= 0)');
    if (!Number.isSafeInteger(retries) || retries < 0) throw new QdrantEdgeError('invalid_argument', '`retries` must be an integer >= 0');
    if (!(typeof retryDelay === 'number' && retryDelay >= 0)) throw new QdrantEdgeError('invalid_argument', '`retryDelay` must be a number of milliseconds');
    if (apiKey !== undefined && apiKey !== null && typeof apiKey !== 'string') throw new QdrantEdgeError('invalid_argument', '`apiKey` must be a string');
    if (fetchFn !== undefined && typeof fetchFn !== 'function') throw new QdrantEdgeError('invalid_argument', '`fetch` must be a function');
    if (!fetchFn && typeof globalThis.fetch !== 'function') throw new QdrantEdgeError('unsupported', 'no fetch() here: pass `fetch`');
    // called as a plain function: a browser's fetch throws "Illegal invocation" with another `this`
    this.#fetch = fetchFn ? (u, init) => fetchFn(u, init) : (u, init) => globalThis.fetch(u, init);
    this.#base = String(url).replace(/\/+$/, '');
    this.#path = `/collections/${encodeURIComponent(collection)}/shards/${shard}`;
    this.#headers = new Headers(headers ?? undefined);
    if (apiKey) this.#headers.set('api-key', apiKey);
    this.#signal = signal;
    this.#left = retries;
    this.#delay = retryDelay;
  }

  get signal() {
    return this.#signal;
  }

  /** Spend one retry of the operation's budget: wait the backoff, or throw `error` when none is left. */
  async retry(error) {
    if (this.#signal?.aborted) throw abortReason(this.#signal);
    if (this.#left <= 0) throw error;
    this.#left--;
    await sleep(Math.min(this.#delay * 2 ** this.#retried++, 8000), this.#signal);
  }

  async #fetchOnce(method, tail, { body, headers, signal = this.#signal } = {}) {
    const url = this.#base + this.#path + tail;
    const h = new Headers(this.#headers);
    for (const [k, v] of Object.entries(headers ?? {})) h.set(k, v);
    try {
      return await this.#fetch(url, { method, headers: h, body, signal });
    } catch (e) {
      if (signal?.aborted) throw abortReason(signal);
      const cause = e?.cause?.message ?? e?.cause?.code;
      throw new QdrantEdgeError('io', `${method} ${url} failed: ${e?.message ?? e}${cause ? ` (${cause})` : ''}`);
    }
  }

  /**
   * One request, tried again (within the budget) on network failures and transient statuses.
   * Resolves to a response whose status `accept` takes (default: 2xx); any other is a typed error.
   */
  async request(method, tail, { body, headers, accept = (s) => s >= 200 && s < 300, what } = {}) {
    for (;;) {
      let failure;
      try {
        const res = await this.#fetchOnce(method, tail, { body, headers });
        if (accept(res.status)) return res;
        failure = await httpError(res, what ?? `${method} ${this.#path}${tail}`);
      } catch (e) {
        if (!(e instanceof QdrantEdgeError)) throw e; // aborted
        failure = e;
      }
      if (failure.code !== 'io' && !TRANSIENT.has(failure.status)) throw failure;
      await this.retry(failure);
    }
  }

  async #result(res, what) {
    let j;
    try {
      j = await res.json();
    } catch (e) {
      if (this.#signal?.aborted) throw abortReason(this.#signal);
      throw new QdrantEdgeError('remote', `${what}: the answer is not JSON (${e.message})`, res.status);
    }
    return j?.result;
  }

  /** `POST .../snapshots`: a new named snapshot of the shard, `{name, size, checksum?}`. */
  async createSnapshot() {
    const what = 'creating a shard snapshot on the server';
    const res = await this.request('POST', '/snapshots?wait=true', { what });
    const d = await this.#result(res, what);
    if (!d || typeof d.name !== 'string' || d.name === '') {
      throw new QdrantEdgeError('remote', `${what}: the answer has no snapshot name`, res.status);
    }
    return d;
  }

  /** `DELETE .../snapshots/{name}`, once, best effort (also after an abort): true when deleted. */
  async deleteSnapshot(name) {
    try {
      const res = await this.#fetchOnce('DELETE', `/snapshots/${encodeURIComponent(name)}?wait=true`, {
        signal: typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(10_000) : undefined,
      });
      await res.body?.cancel().catch(() => {});
      return res.ok;
    } catch {
      return false;
    }
  }

  /** The named snapshot `desc` (from createSnapshot), downloaded with resumes. */
  namedDownload(desc) {
    const path = `/snapshots/${encodeURIComponent(desc.name)}`;
    return new Download(this, {
      label: `snapshot ${desc.name}`,
      resumable: true,
      total: Number.isSafeInteger(desc.size) && desc.size >= 0 ? desc.size : undefined,
      open: (from, validator) => {
        // identity: the bytes the checksum covers, and byte offsets that mean the same in every
        // answer (browsers replace this header with their own and decode what they get: offsets
        // still count decoded bytes, and Qdrant answers range requests unencoded)
        const headers = { 'accept-encoding': 'identity' };
        if (from > 0) {
          headers.range = `bytes=${from}-`;
          if (validator) headers['if-range'] = validator;
        }
        return this.request('GET', path, {
          headers,
          what: `downloading ${desc.name}`,
          accept: (s) => (s >= 200 && s < 300) || (from > 0 && s === 416),
        });
      },
    });
  }

  /** `POST .../snapshot/partial/create` with `manifest`: attempts restart from byte 0; none when 304. */
  partialDownload(manifest) {
    const body = JSON.stringify(manifest);
    return new Download(this, {
      label: 'the partial snapshot',
      resumable: false,
      total: undefined,
      open: () =>
        this.request('POST', '/snapshot/partial/create', {
          body,
          headers: { 'content-type': 'application/json' },
          what: 'creating a partial snapshot on the server',
          accept: (s) => (s >= 200 && s < 300) || s === 304,
        }),
    });
  }
}

/** One download as attempts: next() gives a ReadableStream from byte 0 (or null on a 304). */
class Download {
  #remote;
  #label;
  #open;
  #resumable;
  #pending = null; // a 200 answer to begin the next attempt with
  #validator = null; // If-Range value of the representation being pushed
  #etag = null;
  total;

  constructor(remote, { label, total, open, resumable }) {
    this.#remote = remote;
    this.#resumable = resumable;
    this.#label = label;
    this.#open = open;
    this.total = total;
  }

  async next() {
    const res = this.#pending ?? (await this.#open(0, null));
    this.#pending = null;
    if (res.status === 304) {
      await res.body?.cancel().catch(() => {});
      return null;
    }
    this.#begin(res);
    return this.#stream(res);
  }

  #begin(res) {
    this.#etag = res.headers.get('etag');
    const lastModified = res.headers.get('last-modified');
    // a weak ETag may not be used in If-Range (RFC 9110 13.1.5)
    this.#validator = this.#etag && !this.#etag.startsWith('W/') ? this.#etag : lastModified;
    if (res.status === 200 && this.total === undefined) this.total = plainLength(res);
  }

  /** Does a 206 answer continue the representation at byte `from`? */
  #continues(res, from) {
    const enc = res.headers.get('content-encoding');
    if (enc && enc.toLowerCase() !== 'identity') return false; // a range of encoded bytes
    const etag = res.headers.get('etag');
    if (etag && this.#etag && etag !== this.#etag) return false;
    // Content-Range and ETag are not readable across origins unless the server exposes them
    const range = res.headers.get('content-range');
    if (range) {
      const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(range.trim());
      if (!m || Number(m[1]) !== from) return false;
      if (m[3] !== '*' && this.total !== undefined && Number(m[3]) !== this.total) return false;
    }
    return true;
  }

  #stream(first) {
    const remote = this.#remote;
    const bodyOf = (res) => (res.body ?? new ReadableStream({ start: (c) => c.close() })).getReader();
    let reader = bodyOf(first);
    let delivered = 0;
    const pull = async (controller) => {
      for (;;) {
        let failure;
        try {
          const { done, value } = await reader.read();
          if (!done) {
            if (value.byteLength === 0) continue;
            delivered += value.byteLength;
            controller.enqueue(value);
            return;
          }
          if (this.total === undefined || delivered >= this.total) {
            controller.close();
            return;
          }
          failure = new QdrantEdgeError('io', `the download of ${this.#label} ended at byte ${delivered} of ${this.total}`);
        } catch (e) {
          if (remote.signal?.aborted) throw abortReason(remote.signal);
          failure = new QdrantEdgeError('io', `the download of ${this.#label} broke at byte ${delivered}: ${e?.message ?? e}`);
        }
        await remote.retry(failure);
        if (!this.#resumable) throw new RestartTransfer(failure.message);
        const res = await this.#open(delivered, delivered > 0 ? this.#validator : null);
        if (delivered === 0 && res.status === 200) {
          // nothing was pushed yet: this answer simply replaces the broken one
          this.#begin(res);
          reader = bodyOf(res);
          continue;
        }
        if (res.status === 206 && this.#continues(res, delivered)) {
          reader = bodyOf(res);
          continue;
        }
        if (res.status === 416 && this.total !== undefined && delivered >= this.total) {
          await res.body?.cancel().catch(() => {});
          controller.close();
          return;
        }
        // the whole representation again (the server ignores ranges, or the snapshot changed):
        // begin the transfer again with this answer
        if (res.status === 200) this.#pending = res;
        else await res.body?.cancel().catch(() => {});
        throw new RestartTransfer(`the server did not resume ${this.#label} at byte ${delivered} (HTTP ${res.status})`);
      }
    };
    return new ReadableStream(
      {
        pull,
        cancel: (reason) => reader.cancel(reason).catch(() => {}),
      },
      { highWaterMark: 0 },
    );
  }
}
