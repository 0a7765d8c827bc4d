// Builds the demo PWA (www/) into target/www and serves it. Used by scripts/www.sh and by
// tests/npm/www.test.mjs. No bundler: the app's ES modules import the package's browser files,
// copied from the packed package (target/npm/package, scripts/build-npm.sh) into target/www/pkg/.
//
//   node scripts/www.mjs [--build-only] [--port N] [--host H]
//
// target/www/
//   index.html app.js style.css manifest.webmanifest icon.svg    the app shell (www/)
//   sw.js                    the service worker, with the precache list and a content hash filled in
//   pkg/                     the package's browser modules, worker.js and the .wasm
//   sample/demo-shard.tar.gz the sample shard (tests/data/demo-shard.tar.gz, see sampleArchive)

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { cpSync, createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const wwwOut = join(repo, 'target/www');
const pkgDir = join(repo, 'target/npm/package');
const SAMPLE = join(repo, 'tests/data/demo-shard.tar.gz');

/** The package files a browser needs (not the Node entry, types, docs). */
const PKG_FILES = ['index.js', 'facade.js', 'errors.js', 'remote.js', 'outbox.js', 'engine.js', 'worker.js', 'qdrant_edge_wasm.js', 'qdrant_edge_wasm_bg.wasm'];
const SHELL = ['index.html', 'app.js', 'style.css', 'manifest.webmanifest', 'icon.svg'];

function tarName(block) {
  const field = (a, b) => block.subarray(a, b).toString('latin1').replace(/\0.*$/s, '');
  const prefix = field(345, 500);
  const name = field(0, 100);
  return prefix ? `${prefix}/${name}` : name;
}

/**
 * The sample archive as served. tests/data/demo-shard.tar.gz was made with `tar -C <shard> .`, so
 * its first entry is the directory `./` (the shard directory itself). The engine's snapshot
 * reader refuses that entry ("snapshot entry `./`: empty path", src/snapshot/mod.rs, Ctx::split):
 * an entry whose path normalizes to nothing. Until the engine accepts a root entry, the build
 * drops that one 512-byte header block (a directory entry has no data) and gzips the rest again;
 * every other entry (files, sparse headers) is kept byte for byte.
 */
export function sampleArchive(gz = readFileSync(SAMPLE)) {
  const tar = gunzipSync(gz);
  const first = tar.subarray(0, 512);
  const root = ['./', '.'].includes(tarName(first)) && first[156] === 0x35; /* '5': directory */
  return { bytes: root ? gzipSync(tar.subarray(512)) : gz, droppedRoot: root };
}

function listFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

/** Build target/www. Needs target/npm/package (scripts/build-npm.sh). Returns the output dir. */
export function build({ out = wwwOut, log = () => {} } = {}) {
  for (const f of PKG_FILES) {
    if (!existsSync(join(pkgDir, f))) throw new Error(`target/npm/package/${f} is missing: run scripts/build-npm.sh first`);
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'pkg'), { recursive: true });
  mkdirSync(join(out, 'sample'), { recursive: true });
  for (const f of SHELL) cpSync(join(repo, 'www', f), join(out, f));
  for (const f of PKG_FILES) cpSync(join(pkgDir, f), join(out, 'pkg', f));
  const sample = sampleArchive();
  if (sample.droppedRoot) log('sample: dropped the archive\'s root "./" entry (the engine refuses it; see scripts/www.mjs)');
  writeFileSync(join(out, 'sample/demo-shard.tar.gz'), sample.bytes);

  // the service worker precaches every file of the build; its cache name is their content hash,
  // so a new build replaces the old cache
  const files = listFiles(out).map((p) => relative(out, p).split(sep).join('/')).sort();
  const hash = createHash('sha256');
  for (const f of files) hash.update(f).update('\0').update(readFileSync(join(out, f)));
  const version = hash.digest('hex').slice(0, 16);
  const sw = readFileSync(join(repo, 'www/sw.js'), 'utf8')
    .replace("'__PRECACHE__'", JSON.stringify(['./', ...files]))
    .replace('__VERSION__', version);
  writeFileSync(join(out, 'sw.js'), sw);
  log(`built ${out} (${files.length + 1} files, cache ${version})`);
  return out;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.gz': 'application/gzip',
  '.json': 'application/json',
};

/** A static file server for `root` (files with their types and lengths; no compression). */
export function serve(root = wwwOut, { port = 0, host = '127.0.0.1' } = {}) {
  root = resolve(root);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
    if ((req.method === 'GET' || req.method === 'HEAD') && file.startsWith(root + sep) && existsSync(file) && statSync(file).isFile()) {
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': statSync(file).size,
        'cache-control': 'no-cache',
      });
      if (req.method === 'HEAD') return res.end();
      return createReadStream(file).pipe(res);
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok(server));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
  build({ log: (m) => console.log(m) });
  if (!args.includes('--build-only')) {
    const host = opt('--host', '127.0.0.1');
    const server = await serve(wwwOut, { port: Number(opt('--port', process.env.PORT ?? 8080)), host });
    const shown = host === '0.0.0.0' ? 'localhost' : host;
    console.log(`demo PWA: http://${shown}:${server.address().port}/  (Ctrl-C stops)`);
  }
}
