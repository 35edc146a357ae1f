/* What lets the capture page open and work with no signal once it has been visited:
 *   - the service worker (/capture/sw.js, scope /capture) answers the page, its scripts, the rule
 *     and the streets and buildings tiles from the device when the network does not;
 *   - the page itself puts its shell in the cache on every visit (the first visit is not yet
 *     under the worker's control) and fetches the tiles around the PCSO ahead of need;
 *   - persistent storage is asked for, so the browser does not evict the outbox to free space. */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util;
  const CACHE = "safermap-capture";          // the worker reads this cache (and writes it)
  const PREFETCH_ZOOMS = [16, 17, 18];
  const PREFETCH_RADIUS_M = 250;
  const PREFETCH_AGAIN_M = 100;

  async function registerWorker(config) {
    if (!("serviceWorker" in navigator)) return "This browser cannot keep the page for use offline.";
    try {
      await navigator.serviceWorker.register(config.links.sw, { scope: config.links.scope });
      return "";
    } catch (e) {
      return "The page could not be kept for use offline: " + e.message;
    }
  }

  // The page's own files (and the page) into the cache; old versions of our static files out.
  async function keepShell(config) {
    if (!window.caches) return;
    const cache = await caches.open(CACHE);
    const wanted = new Set(config.assets.map((u) => new URL(u, location.href).href));
    for (const url of wanted) {
      if (!(await cache.match(url))) {
        try { await cache.add(url); } catch (e) { /* offline now: next visit */ }
      }
    }
    for (const req of await cache.keys()) {
      const u = new URL(req.url);
      if (u.pathname.startsWith("/static/") && !wanted.has(u.href)) await cache.delete(req);
    }
    // The page, and the rule and lists it reads first (the worker keeps later copies itself).
    for (const url of [config.links.page, config.links.rule, config.links.options]) {
      try {
        const r = await fetch(url, { credentials: "same-origin", redirect: "manual", cache: "no-store" });
        if (r.ok && r.type === "basic" && !r.redirected) await cache.put(new URL(url, location.href).href, r);
      } catch (e) { /* offline: the kept copy stays */ }
    }
  }

  function tileXY(lat, lon, z) {
    const n = Math.pow(2, z), r = lat * Math.PI / 180;
    return { x: Math.floor((lon + 180) / 360 * n), y: Math.floor((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * n) };
  }

  let lastPrefetch = null;

  // The background tiles within a few hundred metres, so that the map still shows the streets
  // when the signal drops a street further on.
  async function prefetchTiles(config, lat, lon) {
    if (!window.caches || !navigator.onLine) return;
    if (lastPrefetch && C.geo.distance(lastPrefetch, { lat, lon }) < PREFETCH_AGAIN_M) return;
    lastPrefetch = { lat, lon };
    const cache = await caches.open(CACHE);
    const sw = C.geo.offset(lat, lon, -PREFETCH_RADIUS_M, -PREFETCH_RADIUS_M);
    const ne = C.geo.offset(lat, lon, PREFETCH_RADIUS_M, PREFETCH_RADIUS_M);
    const urls = [];
    PREFETCH_ZOOMS.forEach((z) => {
      const a = tileXY(ne.lat, sw.lon, z), b = tileXY(sw.lat, ne.lon, z);
      config.background.forEach((layer) => {
        if (z < layer.minzoom || z > layer.maxzoom) return;
        for (let x = a.x; x <= b.x; x++) for (let y = a.y; y <= b.y; y++) {
          urls.push(layer.tiles.replace("{z}", z).replace("{x}", x).replace("{y}", y));
        }
      });
    });
    for (const url of urls) {
      if (!navigator.onLine) return;
      const abs = new URL(url, location.href).href;
      if (await cache.match(abs)) continue;
      try {
        const r = await fetch(abs, { credentials: "same-origin" });
        if (r.status === 200 || r.status === 204) await cache.put(abs, r);
      } catch (e) { return; }
    }
  }

  async function persist() {
    if (!navigator.storage || !navigator.storage.persist) return "This browser cannot promise to keep the outbox: save backups.";
    let kept = await navigator.storage.persisted();
    if (!kept) kept = await navigator.storage.persist();
    let space = "";
    if (navigator.storage.estimate) {
      const e = await navigator.storage.estimate();
      if (e.usage !== undefined) space = " " + util.round(e.usage / 1048576, 1) + " MB used on this device.";
    }
    return (kept ? "The outbox is kept on this device until it is sent." :
      "The browser may clear the outbox if the device runs short of space: save a backup now and then.") + space;
  }

  C.offline = { registerWorker, keepShell, prefetchTiles, persist, CACHE };
})();
