import { defineConfig } from 'vite';

// Nothing specific to qdrant-edge-wasm is needed for `vite build`: the package starts its worker
// with `new Worker(new URL('./worker.js', import.meta.url), {type: 'module'})`, which Vite emits.
export default defineConfig({
  build: { target: 'es2022' },
  worker: { format: 'es' },
  logLevel: 'warn',
});
