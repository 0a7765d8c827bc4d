// qdrant-edge-wasm for Node (>= 20): the same EdgeShard API as the browser entry, run in
// process (no Worker). Storage "fs" (a shard directory on disk; `name` is its path, relative
// to the working directory or absolute) or "memory". Node has neither IndexedDB nor OPFS.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import init, * as wasm from './qdrant_edge_wasm.js';
import { createFsHost } from './nodefs.js';
import { createEngine } from './engine.js';
import { defineEdgeShard } from './facade.js';
import { QdrantEdgeError, toError } from './errors.js';

export { QdrantEdgeError };

let loaded = null;
function load() {
  loaded ??= readFile(new URL('./qdrant_edge_wasm_bg.wasm', import.meta.url))
    .then((bytes) => init({ module_or_path: bytes }))
    .then(() => wasm.setFsHost(createFsHost()));
  return loaded;
}

class InProcessTransport {
  inProcess = true;
  #engine = null;
  #closed = false;

  async call(op, args) {
    if (this.#closed) throw new QdrantEdgeError('shard_closed', 'shard is closed');
    if (!this.#engine) {
      try {
        await load();
      } catch (e) {
        loaded = null;
        throw new QdrantEdgeError('internal', `loading the wasm module failed: ${e.message}`);
      }
      this.#engine ??= createEngine(wasm);
    }
    const r = await this.#engine.handle(op, args);
    if (r.ok) return r.value;
    throw toError(r.error);
  }

  terminate() {
    this.#closed = true;
  }
}

export const EdgeShard = defineEdgeShard({
  defaultStorage: 'memory',
  checkStorage(storage) {
    if (storage === 'memory' || storage === 'fs') return;
    throw new QdrantEdgeError(
      'unsupported',
      `storage ${JSON.stringify(storage)} is not available in Node (no IndexedDB or OPFS); use "fs" or "memory"`,
    );
  },
  // "fs": the shard's directory, absolute (one lock per directory, whatever the spelling)
  shardName(storage, name) {
    return storage === 'fs' ? resolve(name) : name;
  },
  connect() {
    return new InProcessTransport();
  },
});

export default EdgeShard;
