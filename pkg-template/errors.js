// QdrantEdgeError: the error every call of the package rejects with.

/**
 * Codes: invalid_argument, not_found, corrupted, unsupported, io, shard_closed, internal, and for
 * the calls to a Qdrant server (remote.js) unauthorized and remote. `status` is the HTTP status
 * of a server's answer, when there was one.
 */
export class QdrantEdgeError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = 'QdrantEdgeError';
    this.code = code;
    if (status !== undefined) this.status = status;
  }
}

const CODES = new Set([
  'invalid_argument',
  'not_found',
  'corrupted',
  'unsupported',
  'io',
  'shard_closed',
  'internal',
  'unauthorized',
  'remote',
]);

/** A plain, structured-cloneable description of any thrown value. */
export function describeError(e) {
  if (e && typeof e === 'object' && e.name === 'QdrantEdgeError' && CODES.has(e.code)) {
    return { name: 'QdrantEdgeError', code: e.code, message: String(e.message) };
  }
  // a trap (a Rust panic aborts) or a JS failure in the glue: the engine's state is unknown
  const message = e && typeof e === 'object' && 'message' in e ? `${e.name || 'Error'}: ${e.message}` : String(e);
  return { name: 'QdrantEdgeError', code: 'internal', message };
}

/** Re-create a QdrantEdgeError from its description. */
export function toError(d) {
  return new QdrantEdgeError(CODES.has(d?.code) ? d.code : 'internal', d?.message ?? 'unknown error');
}
