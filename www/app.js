// The demo PWA: Qdrant Edge (qdrant-edge-wasm) on a bundled sample shard, no server.
// First run: the sample (sample/demo-shard.tar.gz, a Qdrant shard: 32-d Cosine vector `v`,
// payload `color`, `n`, `price`) is restored into OPFS (IndexedDB when OPFS is missing; `?storage=idb`
// forces it). Later runs open it. Every shard call runs in the package's Worker.

import { EdgeShard, QdrantEdgeError } from './pkg/index.js';

const NAME = 'demo';
const PAGE = 20;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const storage = params.get('storage') ?? (navigator.storage?.getDirectory ? 'opfs' : 'idb');
let shard = null;
let pageOffsets = [undefined];

function status(text) {
  $('status').textContent = text;
}
function showError(e) {
  const text = e instanceof QdrantEdgeError ? `${e.code}: ${e.message}` : `error: ${e?.message ?? e}`;
  $('error').textContent = text;
  $('error').hidden = false;
  console.error(e);
}
function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}
/** Run an action; its failure becomes the error message. */
async function act(f) {
  clearError();
  document.body.dataset.busy = '1';
  try {
    return await f();
  } catch (e) {
    showError(e);
  } finally {
    document.body.dataset.busy = '';
    document.body.dataset.rev = String(Number(document.body.dataset.rev ?? 0) + 1);
  }
}
function rows(table, list, cells, attrs = () => ({})) {
  const tbody = $(table).tBodies[0];
  tbody.replaceChildren(
    ...list.map((item) => {
      const tr = document.createElement('tr');
      for (const [k, v] of Object.entries(attrs(item))) tr.dataset[k] = v;
      for (const c of cells(item)) {
        const td = document.createElement('td');
        if (c instanceof Node) td.append(c);
        else td.textContent = c ?? '';
        tr.append(td);
      }
      return tr;
    }),
  );
}
function button(text, onclick) {
  const b = document.createElement('button');
  b.textContent = text;
  b.type = 'button';
  b.onclick = onclick;
  return b;
}

// ------------------------------------------------------------------ open / restore

async function openExisting() {
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const s = await EdgeShard.open({ storage, name: NAME });
      document.body.dataset.open = `${attempt + 1} attempts, ${Math.round(performance.now() - t0)} ms`;
      return s;
    } catch (e) {
      // a reload: the previous page's worker releases the shard's lock a moment later
      if (!(e instanceof QdrantEdgeError && e.code === 'io') || attempt >= 50) throw e;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
}

async function restoreSample() {
  status('downloading and restoring the sample shard…');
  const res = await fetch('sample/demo-shard.tar.gz');
  if (!res.ok) throw new Error(`sample/demo-shard.tar.gz: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || undefined;
  const bar = $('progress');
  bar.hidden = false;
  bar.removeAttribute('value');
  const s = await EdgeShard.restoreSnapshot({
    storage,
    name: NAME,
    source: res.body,
    onProgress: ({ received }) => {
      if (total) {
        bar.max = total;
        bar.value = received;
      }
      status(`restoring the sample shard… ${(received / 1048576).toFixed(1)} MiB${total ? ` of ${(total / 1048576).toFixed(1)} MiB` : ''}`);
    },
  });
  bar.hidden = true;
  document.body.dataset.restored = '1';
  return s;
}

async function start() {
  $('storage').textContent = storage;
  try {
    shard = await openExisting();
    status(`opened the stored shard (${document.body.dataset.open})`);
  } catch (e) {
    if (!(e instanceof QdrantEdgeError && e.code === 'not_found')) throw e;
    shard = await restoreSample();
    status('restored the sample shard');
  }
  const remote = loadRemote();
  if (remote && localStorage.getItem('qew-demo-outbox') === 'on') {
    const apiKey = sessionStorage.getItem('qew-demo-key') ?? undefined;
    await shard.setOutboxRemote({ url: remote.url, collection: remote.collection, apiKey });
  }
  await refresh();
}

async function refresh() {
  const info = await shard.info();
  $('info').textContent = JSON.stringify(info, null, 2);
  $('info').dataset.pointsCount = String(info.points_count);
  const facet = await shard.facet({ key: 'color', exact: true });
  rows('facet', facet.hits, (h) => [String(h.value), String(h.count)], (h) => ({ value: String(h.value), count: String(h.count) }));
  const sel = $('f-color');
  const cur = sel.value;
  sel.replaceChildren(new Option('any', ''), ...facet.hits.map((h) => new Option(String(h.value), String(h.value))));
  sel.value = facet.hits.some((h) => String(h.value) === cur) ? cur : '';
  await showPage();
}

async function showPage() {
  const offset = pageOffsets.at(-1);
  const { points, next_page_offset } = await shard.scroll({ offset, limit: PAGE, with_payload: ['color', 'n', 'price'] });
  rows(
    'points',
    points,
    (p) => [String(p.id), p.payload?.color, p.payload?.n, p.payload?.price, button('similar', () => similarTo(p.id))],
    (p) => ({ id: String(p.id) }),
  );
  $('points').dataset.next = next_page_offset ?? '';
  $('page').textContent = `page ${pageOffsets.length}${next_page_offset == null ? ' (last)' : ''}`;
}

// ------------------------------------------------------------------ similar search

/** The payload filter of the form (null: none). */
function formFilter() {
  const must = [];
  const color = $('f-color').value;
  if (color) must.push({ key: 'color', match: { value: color } });
  const range = {};
  if ($('f-price-min').value !== '') range.gte = Number($('f-price-min').value);
  if ($('f-price-max').value !== '') range.lte = Number($('f-price-max').value);
  if (Object.keys(range).length) must.push({ key: 'price', range });
  return must.length ? { must } : null;
}

async function similar() {
  const filter = formFilter();
  const body = {
    query: Number($('sim-id').value),
    using: 'v',
    limit: Number($('sim-limit').value) || 10,
    with_payload: ['color', 'price'],
    ...(filter ? { filter } : {}),
  };
  $('sim-body').textContent = `shard.query(${JSON.stringify(body, null, 1)})`;
  const { count } = await shard.count({ exact: true, ...(filter ? { filter } : {}) });
  $('filter-count').textContent = String(count);
  const { points } = await shard.query(body);
  rows(
    'results',
    points,
    (p) => [String(p.id), p.score.toFixed(6), p.payload?.color, p.payload?.price],
    (p) => ({ id: String(p.id), score: String(p.score) }),
  );
}

function similarTo(id) {
  $('sim-id').value = String(id);
  act(similar);
}

// ------------------------------------------------------------------ edit

async function loadPoint() {
  const id = Number($('e-id').value);
  const [p] = await shard.retrieve({ ids: [id], with_payload: true });
  $('e-out').textContent = p ? JSON.stringify(p.payload, null, 1) : `no point ${id}`;
  $('e-color').value = p?.payload?.color ?? '';
  $('e-price').value = p?.payload?.price ?? '';
  return p;
}

async function savePoint() {
  const id = Number($('e-id').value);
  const payload = {};
  if ($('e-color').value !== '') payload.color = $('e-color').value;
  if ($('e-price').value !== '') payload.price = Number($('e-price').value);
  const [existing] = await shard.retrieve({ ids: [id] });
  if (existing) {
    await shard.setPayload({ payload, points: [id] });
  } else {
    // a new point: a random unit vector (the collection's `v` has 32 dimensions)
    const v = Array.from({ length: 32 }, () => Math.random() - 0.5);
    await shard.upsert({ points: [{ id, vector: { v }, payload }] });
  }
  await loadPoint();
  await refresh();
}

async function deletePoint() {
  await shard.delete({ points: [Number($('e-id').value)] });
  await loadPoint();
  await refresh();
}

// ------------------------------------------------------------------ reset

async function reset() {
  status('resetting…');
  await shard?.close().catch(() => {});
  shard = null;
  await EdgeShard.destroy({ storage, name: NAME });
  pageOffsets = [undefined];
  shard = await restoreSample();
  status('restored the sample shard');
  await refresh();
}

// ------------------------------------------------------------------ Qdrant server (optional)

function loadRemote() {
  try {
    return JSON.parse(localStorage.getItem('qew-demo-remote') ?? 'null');
  } catch {
    return null;
  }
}
function formServer() {
  const server = {
    url: $('s-url').value.trim(),
    collection: $('s-collection').value.trim(),
    shard: Number($('s-shard').value) || 0,
    apiKey: $('s-key').value || undefined,
  };
  if (!server.url || !server.collection) throw new QdrantEdgeError('invalid_argument', 'enter the server URL and the collection');
  // the key stays in this tab's session only
  localStorage.setItem('qew-demo-remote', JSON.stringify({ url: server.url, collection: server.collection, shard: server.shard }));
  if (server.apiKey) sessionStorage.setItem('qew-demo-key', server.apiKey);
  return server;
}
const progressOut = ({ received, total }) => ($('s-out').textContent = `received ${received}${total ? ` of ${total}` : ''} bytes`);

const serverActions = {
  's-restore': async () => {
    const server = formServer();
    await shard?.close().catch(() => {});
    shard = null;
    await EdgeShard.destroy({ storage, name: NAME });
    pageOffsets = [undefined];
    try {
      shard = await EdgeShard.restoreFromServer({ storage, name: NAME, ...server, onProgress: progressOut });
    } catch (e) {
      // nothing is left under NAME after a failed restore: bring the sample back, then report
      shard = await restoreSample();
      await refresh();
      throw e;
    }
    $('s-out').textContent = 'restored from the server';
    await refresh();
  },
  's-pull': async () => {
    const r = await shard.pullFromServer({ ...formServer(), onProgress: progressOut });
    $('s-out').textContent = JSON.stringify(r, null, 1);
    await refresh();
  },
  's-outbox-on': async () => {
    const { url, collection, apiKey } = formServer();
    await shard.setOutboxRemote({ url, collection, apiKey });
    localStorage.setItem('qew-demo-outbox', 'on');
    $('s-out').textContent = JSON.stringify(await shard.outboxStatus(), null, 1);
  },
  's-outbox-off': async () => {
    await shard.setOutboxRemote(null);
    localStorage.setItem('qew-demo-outbox', 'off');
    $('s-out').textContent = JSON.stringify(await shard.outboxStatus(), null, 1);
  },
  's-sync': async () => ($('s-out').textContent = JSON.stringify(await shard.syncOutbox(), null, 1)),
  's-status': async () => ($('s-out').textContent = JSON.stringify(await shard.outboxStatus(), null, 1)),
};

// ------------------------------------------------------------------ wiring

function wire() {
  const remote = loadRemote();
  if (remote) {
    $('s-url').value = remote.url;
    $('s-collection').value = remote.collection;
    $('s-shard').value = remote.shard ?? 0;
  }
  $('sim').onsubmit = (e) => (e.preventDefault(), act(similar));
  $('edit').onsubmit = (e) => (e.preventDefault(), act(savePoint));
  $('e-load').onclick = () => act(loadPoint);
  $('e-delete').onclick = () => act(deletePoint);
  $('reset').onclick = () => act(reset);
  $('next').onclick = () => act(async () => {
    const next = $('points').dataset.next;
    if (next === '') return;
    pageOffsets.push(Number(next));
    await showPage();
  });
  $('prev').onclick = () => act(async () => {
    if (pageOffsets.length > 1) pageOffsets.pop();
    await showPage();
  });
  for (const [id, f] of Object.entries(serverActions)) $(id).onclick = () => act(f);
}

async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) {
    $('sw-status').textContent = 'no service worker support: no offline use';
    return;
  }
  try {
    await navigator.serviceWorker.register('sw.js');
    await navigator.serviceWorker.ready;
    $('sw-status').textContent = 'works offline';
    document.body.dataset.offlineReady = '1';
  } catch (e) {
    $('sw-status').textContent = `service worker failed: ${e.message}`;
  }
}

wire();
registerServiceWorker();
await act(start);
window.demo = { get shard() { return shard; } };
document.body.dataset.ready = '1';
