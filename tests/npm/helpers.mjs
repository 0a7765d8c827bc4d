// Shared by the package tests: installing the packed tarball into a temporary consumer project,
// the fixtures' location, and the comparison of a shard's answers with a Qdrant server's.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const npmDir = join(repo, 'target/npm');
/** The real server's snapshots and answers (../shared/fixtures beside the repo, or QEW_SHARED). */
export const fixtures = join(process.env.QEW_SHARED ?? join(repo, '../shared'), 'fixtures');

/** The packed tarball (scripts/build-npm.sh). */
export function tarball() {
  const tgz = readdirSync(npmDir).filter((f) => /^qdrant-edge-wasm-.*\.tgz$/.test(f));
  assert.equal(tgz.length, 1, 'run scripts/build-npm.sh first (one tarball in target/npm)');
  return join(npmDir, tgz[0]);
}

/** A temporary project with the tarball installed (offline); its entry.mjs re-exports the package. */
export function installPackage(prefix = 'qew-npm-') {
  const project = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball()], { cwd: project, stdio: 'pipe' });
  // a module inside the consumer project, so that the bare name resolves through its node_modules
  writeFileSync(join(project, 'entry.mjs'), "export * from 'qdrant-edge-wasm';\nexport { default } from 'qdrant-edge-wasm';\n");
  return project;
}

/** The recorded requests of `expected.answers` that an exact comparison can use. */
export function exactQueries(expected) {
  return Object.entries(expected.answers).filter(([, c]) => {
    const body = c.request.body;
    // exact queries only; `match: {text}` without a full-text index differs by design (docs/format-notes.md)
    if (c.request.path !== 'points/query' || c.status !== 200 || body?.params?.exact !== true) return false;
    return !JSON.stringify(body.filter ?? null).includes('"text":');
  });
}

/**
 * Ask `shard` (anything with query(body)) every exact query of `expected` and compare ids, order
 * and scores with the server's answers. Resolves to how many were compared.
 */
export async function compareExactQueries(shard, expected) {
  let compared = 0;
  for (const [label, c] of exactQueries(expected)) {
    const got = await shard.query(c.request.body);
    assert.deepEqual(got.points.map((p) => p.id), c.response.points.map((p) => p.id), label);
    for (const [k, p] of got.points.entries()) {
      const want = c.response.points[k].score;
      assert.ok(Math.abs(p.score - want) <= 1e-4 * Math.max(1, Math.abs(want)), `${label}: ${p.score} vs ${want}`);
    }
    compared++;
  }
  assert.ok(compared >= 3, `only ${compared} exact queries compared`);
  return compared;
}

/** Debian's chromium, headless, through playwright-core's `chromium` (never a downloaded browser). */
export function launchChromium(chromium, executablePath) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-quic'],
  });
}

/** The console messages and errors of `page`, collected for failure messages. */
export function pageLogs(page) {
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  return logs;
}

/** Debian's chromium (CHROMIUM overrides), or null. */
export function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}
