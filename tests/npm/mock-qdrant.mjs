// A mock Qdrant server (node:http) for the package tests: the shard snapshot endpoints of
// Qdrant's REST API served from snapshot files (the real server's fixtures), `api-key`
// authentication, CORS (with preflight) for browser pages, and fault injection. It records every
// request it gets, and answers any other route with `{status: "ok", time, result}` so that tests
// of other client code (e.g. replaying updates to `PUT /collections/{c}/points`) can reuse it.
//
//   const mock = await startMockQdrant({ apiKey: 'k', collections: { basic: { full, partial, manifest } } });
//   mock.url                   base URL (http://127.0.0.1:PORT)
//   mock.requests              [{method, path, query, headers, body, status}] in arrival order
//   mock.collections.basic     mutable state: full (file), partial (file), manifest (the manifest that
//                              is current: a partial/create with exactly this body answers 304),
//                              checksum (reported for new named snapshots instead of the file's)
//   mock.cut = {after, times, route}   cut the next `times` snapshot bodies of `route` ('named',
//                              'stream', 'partial' or 'any') after `after` body bytes (socket destroyed)
//   mock.ignoreRange = true    the named snapshot route answers 200 with the whole file to ranges
//   mock.route(method, regexp, (rec) => ({status, result} | {status, json} | {status, text}))
//                              checked first, in order; a handler returning undefined passes
//   mock.snapshots             named snapshots that exist (name -> description)
//   await mock.close()
//
// Behaviour modelled on Qdrant 1.19: the named snapshot download is a file response (Range with
// Content-Range and 206, ETag, Last-Modified, Accept-Ranges; a range answer is sent unencoded);
// the streamed routes (GET .../snapshot, POST .../snapshot/partial/create) are chunked and gzip
// encoded when the client accepts gzip; errors are JSON `{status: {error}}`; a missing or wrong
// key is a 401, a read-only key asking for a snapshot a 403. Unlike Qdrant (whose file responses
// ignore If-Range), this mock honors If-Range.

import { createServer } from 'node:http';
import { createReadStream, statSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createGzip } from 'node:zlib';
import { once } from 'node:events';

/** JSON with object keys sorted: equality of manifests regardless of key order. */
export function canonicalJson(v) {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const digests = new Map();
function sha256Of(file) {
  if (!digests.has(file)) digests.set(file, createHash('sha256').update(readFileSync(file)).digest('hex'));
  return digests.get(file);
}

export async function startMockQdrant({ apiKey = null, readOnlyApiKey = null, collections = {}, exposeHeaders = [] } = {}) {
  const mock = {
    url: '',
    requests: [],
    collections: Object.fromEntries(Object.entries(collections).map(([k, v]) => [k, { ...v }])),
    cut: null,
    ignoreRange: false,
    snapshots: new Map(),
    routes: [],
    route(method, pattern, handler) {
      this.routes.push({ method, pattern, handler });
    },
    /** The recorded requests whose path matches `pattern` (a string suffix or a RegExp). */
    seen(method, pattern) {
      return this.requests.filter(
        (r) => (!method || r.method === method) && (typeof pattern === 'string' ? r.path.endsWith(pattern) : pattern.test(r.path)),
      );
    },
  };
  let nextSnapshot = 1;
  let nextOperation = 1;

  const cors = (req, res) => {
    res.setHeader('access-control-allow-origin', req.headers.origin ?? '*');
    res.setHeader('vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
    if (exposeHeaders.length) res.setHeader('access-control-expose-headers', exposeHeaders.join(', '));
  };
  const json = (res, status, value) => {
    const body = JSON.stringify(value);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const ok = (res, result) => json(res, 200, { result, status: 'ok', time: 0.0001 });
  const fail = (res, status, error) => json(res, status, { status: { error }, time: 0.0001 });

  /** Should this body be cut? Takes one of mock.cut's `times`. */
  const takeCut = (route) => {
    const c = mock.cut;
    if (!c || (c.times ?? 1) <= 0) return undefined;
    if ((c.route ?? 'any') !== 'any' && c.route !== route) return undefined;
    c.times = (c.times ?? 1) - 1;
    if (c.times <= 0) mock.cut = null;
    return c.after;
  };

  /** Send bytes [start, end] of `file`, gzip-encoded or not, possibly cut after `cutAfter` bytes. */
  async function sendBody(res, file, { start = 0, end, gzip = false, cutAfter }) {
    let out = res;
    if (gzip) {
      out = createGzip();
      out.pipe(res);
    }
    let sent = 0;
    for await (const chunk of createReadStream(file, { start, end, highWaterMark: 64 * 1024 })) {
      if (res.destroyed) return;
      if (cutAfter !== undefined && sent + chunk.length >= cutAfter) {
        const part = chunk.subarray(0, cutAfter - sent);
        await new Promise((done) => out.write(part, done));
        if (gzip) await new Promise((done) => out.flush(done));
        await new Promise((done) => setTimeout(done, 20));
        res.socket.destroy();
        return;
      }
      sent += chunk.length;
      if (!out.write(chunk)) await once(out, 'drain');
    }
    out.end();
  }

  const acceptsGzip = (req) => /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');

  async function snapshotRoutes(req, res, rec, m) {
    const [, collection, shard, rest] = m;
    const state = mock.collections[decodeURIComponent(collection)];
    if (!state || shard !== '0') return fail(res, 404, `Not found: collection ${decodeURIComponent(collection)} shard ${shard} does not exist`);
    const write = rec.method !== 'GET' || rest === '/snapshot';
    if (readOnlyApiKey && rec.headers['api-key'] === readOnlyApiKey && write) {
      return fail(res, 403, 'Forbidden: this key has read-only access');
    }
    if (rec.method === 'POST' && rest === '/snapshots') {
      const size = statSync(state.full).size;
      const sha = state.checksum ?? sha256Of(state.full); // state.checksum: report a wrong one
      const created = new Date(Math.floor(Date.now() / 1000) * 1000);
      const name = `${decodeURIComponent(collection)}-shard-${shard}-${nextSnapshot++}.snapshot`;
      mock.snapshots.set(name, {
        file: state.full,
        size,
        checksum: sha,
        etag: `"${sha.slice(0, 16)}-${size.toString(16)}"`,
        lastModified: created.toUTCString(),
        creation_time: created.toISOString().slice(0, 19),
      });
      return ok(res, { name, creation_time: created.toISOString().slice(0, 19), size, checksum: sha });
    }
    const named = /^\/snapshots\/([^/]+)$/.exec(rest);
    if (named && rec.method === 'DELETE') {
      const name = decodeURIComponent(named[1]);
      if (!mock.snapshots.delete(name)) return fail(res, 404, `Not found: snapshot ${name}`);
      return ok(res, true);
    }
    if (named && rec.method === 'GET') {
      const snap = mock.snapshots.get(decodeURIComponent(named[1]));
      if (!snap) return fail(res, 404, `Not found: snapshot ${decodeURIComponent(named[1])}`);
      const headers = {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename="${decodeURIComponent(named[1])}"`,
        'accept-ranges': 'bytes',
        etag: snap.etag,
        'last-modified': snap.lastModified,
      };
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      const ifRange = req.headers['if-range'];
      const useRange = range && !mock.ignoreRange && (!ifRange || ifRange === snap.etag || ifRange === snap.lastModified);
      const cutAfter = takeCut('named');
      if (useRange) {
        const start = Number(range[1]);
        const end = range[2] === '' ? snap.size - 1 : Math.min(Number(range[2]), snap.size - 1);
        if (start >= snap.size || end < start) {
          res.writeHead(416, { ...headers, 'content-range': `bytes */${snap.size}` });
          return res.end();
        }
        if (req.headers['accept-encoding']) headers['content-encoding'] = 'identity';
        res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${snap.size}`, 'content-length': end - start + 1 });
        return sendBody(res, snap.file, { start, end, cutAfter });
      }
      if (acceptsGzip(req)) {
        res.writeHead(200, { ...headers, 'content-encoding': 'gzip', vary: 'accept-encoding' });
        return sendBody(res, snap.file, { gzip: true, cutAfter });
      }
      res.writeHead(200, { ...headers, 'content-length': snap.size });
      return sendBody(res, snap.file, { cutAfter });
    }
    const streamed = (file, route) => {
      const gzip = acceptsGzip(req);
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename="${decodeURIComponent(collection)}-shard-${shard}.snapshot"`,
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      });
      return sendBody(res, file, { gzip, cutAfter: takeCut(route) });
    };
    if (rec.method === 'GET' && rest === '/snapshot') return streamed(state.full, 'stream');
    if (rec.method === 'POST' && rest === '/snapshot/partial/create') {
      if (!rec.body || typeof rec.body !== 'object') return fail(res, 400, 'Format error in JSON body: a snapshot manifest is expected');
      if (state.manifest && canonicalJson(rec.body) === canonicalJson(state.manifest)) {
        res.writeHead(304);
        return res.end();
      }
      return streamed(state.partial, 'partial');
    }
    if (rec.method === 'GET' && rest === '/snapshot/partial/manifest') return ok(res, state.manifest ?? {});
    return fail(res, 404, `no route ${rec.method} ${rec.path}`);
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://mock');
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const rec = { method: req.method, path: url.pathname, query: url.search, headers: { ...req.headers }, body, status: null };
    res.on('finish', () => (rec.status = res.statusCode));
    res.on('close', () => (rec.status ??= res.statusCode));
    mock.requests.push(rec);
    cors(req, res);
    try {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'access-control-allow-methods': 'GET, POST, PUT, PATCH, DELETE, OPTIONS',
          'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
          'access-control-max-age': '600',
        });
        return res.end();
      }
      if (apiKey) {
        const given = req.headers['api-key'] ?? req.headers.authorization?.replace(/^Bearer /, '');
        if (!given) {
          res.writeHead(401, { 'content-type': 'text/plain' });
          return res.end('An API key (api-key header) or a bearer token is required');
        }
        if (given !== apiKey && given !== readOnlyApiKey) {
          res.writeHead(401, { 'content-type': 'text/plain' });
          return res.end('Invalid API key');
        }
      }
      for (const r of mock.routes) {
        if (r.method !== req.method) continue;
        if (!r.pattern.test(url.pathname)) continue;
        const a = await r.handler(rec);
        if (a === undefined || a === null) continue; // not handled: the next route, or the built-in ones
        if (a.text !== undefined) {
          res.writeHead(a.status ?? 200, { 'content-type': 'text/plain' });
          return res.end(a.text);
        }
        if (a.json !== undefined) return json(res, a.status ?? 200, a.json);
        return json(res, a.status ?? 200, { result: a.result ?? null, status: 'ok', time: 0.0001 });
      }
      const m = /^\/collections\/([^/]+)\/shards\/(\d+)(\/.*)$/.exec(url.pathname);
      if (m) return await snapshotRoutes(req, res, rec, m);
      return ok(res, { operation_id: nextOperation++, status: 'completed' });
    } catch (e) {
      if (!res.headersSent) fail(res, 500, String(e?.stack ?? e));
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  mock.url = `http://127.0.0.1:${server.address().port}`;
  mock.close = () =>
    new Promise((done) => {
      server.closeAllConnections?.();
      server.close(() => done());
    });
  return mock;
}
