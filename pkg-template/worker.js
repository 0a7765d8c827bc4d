// The dedicated module Worker behind EdgeShard (index.js). One worker holds one shard and runs
// its requests one at a time, in order. Protocol: {id, op, args} in; {id, ok, value} or
// {id, ok: false, error: {name, code, message}} out.

import init, * as wasm from './qdrant_edge_wasm.js';
import { createEngine } from './engine.js';
import { describeError } from './errors.js';

const ready = init().then(
  () => createEngine(wasm),
  (e) => {
    const error = describeError(e);
    error.message = `loading the wasm module failed: ${error.message}`;
    throw error;
  },
);

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  let reply;
  try {
    reply = await (await ready).handle(op, args);
  } catch (error) {
    reply = { ok: false, error };
  }
  self.postMessage({ id, ...reply });
};
