// The demo's service worker: precaches the app shell, the package (worker.js, the .wasm) and the
// sample shard at install, and answers same-origin GETs from that cache first, so the app loads
// and works offline after the first visit. scripts/www.mjs fills in the list and the version.
const PRECACHE = '__PRECACHE__';
const CACHE = 'qew-demo-__VERSION__';

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: 'reload' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('qew-demo-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return; // e.g. a Qdrant server
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const hit = await cache.match(req, { ignoreSearch: true });
      if (hit) return hit;
      if (req.mode === 'navigate') {
        try {
          return await fetch(req);
        } catch {
          return (await cache.match('./')) ?? Response.error();
        }
      }
      return fetch(req);
    })(),
  );
});
