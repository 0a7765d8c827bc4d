// qdrant-edge-wasm for the browser main thread: every EdgeShard runs in its own dedicated
// module Worker (worker.js); calls are proxied as promises and run there one at a time.

import { defineEdgeShard } from './facade.js';
import { QdrantEdgeError, toError } from './errors.js';

export { QdrantEdgeError };

class WorkerTransport {
  inProcess = false;
  #worker;
  #pending = new Map();
  #next = 1;
  #dead = null;

  constructor(workerUrl) {
    // the literal `new Worker(new URL('./worker.js', import.meta.url), {type: 'module'})` is the
    // pattern bundlers (Vite, webpack 5, Parcel) recognize to emit the worker and its wasm
    this.#worker = workerUrl
      ? new Worker(workerUrl, { type: 'module' })
      : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = (event) => {
      const { id, ok, value, error } = event.data;
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      if (ok) p.resolve(value);
      else p.reject(toError(error));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault?.();
      this.#fail(new QdrantEdgeError('internal', `the shard worker failed: ${event.message || 'could not load worker.js'}`));
    };
    this.#worker.onmessageerror = () => {
      this.#fail(new QdrantEdgeError('internal', 'a reply from the shard worker could not be deserialized'));
    };
  }

  #fail(error) {
    this.#dead = error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    this.#worker.terminate();
  }

  call(op, args, transfer = []) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      try {
        this.#worker.postMessage({ id, op, args }, transfer);
      } catch (e) {
        this.#pending.delete(id);
        reject(new QdrantEdgeError('invalid_argument', `the request cannot be sent to the worker: ${e.message}`));
      }
    });
  }

  terminate() {
    if (!this.#dead) this.#fail(new QdrantEdgeError('shard_closed', 'shard is closed'));
  }
}

export const EdgeShard = defineEdgeShard({
  defaultStorage: 'idb',
  checkStorage(storage) {
    if (storage === 'memory' || storage === 'idb' || storage === 'opfs') return;
    throw new QdrantEdgeError(
      'invalid_argument',
      `unknown storage ${JSON.stringify(storage)} (expected "opfs", "idb" or "memory")`,
    );
  },
  connect({ workerUrl } = {}) {
    if (typeof Worker === 'undefined') {
      throw new QdrantEdgeError('unsupported', 'this environment has no Web Workers; in Node import the package normally (its "node" entry)');
    }
    return new WorkerTransport(workerUrl);
  },
});

export default EdgeShard;
