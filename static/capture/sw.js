/* The capture page's service worker, served as /capture/sw.js with scope /capture (the server
 * sends Service-Worker-Allowed for that). It makes the page open with no signal once visited:
 *   - the page itself: from the network when it answers in time, else the copy kept;
 *   - /static/ files: versioned by content (?v=), so the kept copy is used first;
 *   - streets and buildings tiles, the coverage rule and the form's lists: network first (with a
 *     time limit, for a weak signal), else the copy kept.
 * Writes (POST, PATCH, DELETE) are never touched: the page's outbox deals with them.
 * No page data is cached here but those shared, non-personal GETs and the page shell. */
"use strict";

const CACHE = "safermap-capture";
const PAGE = "/capture";
const TILES = /^\/tiles\/(streets|buildings)\/\d+\/\d+\/\d+\.mvt$/;
const DATA = /^\/api\/cameras\/(rule|options)$/;
const PAGE_WAIT_MS = 6000;
const DATA_WAIT_MS = 5000;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function timeout(ms) {
  return new Promise((resolve, reject) => setTimeout(() => reject(new Error("timeout")), ms));
}

// The network's answer (kept when good), or the kept copy when there is no answer in time.
async function networkFirst(request, key, wait, missing) {
  const cache = await caches.open(CACHE);
  const network = fetch(request).then((response) => {
    if (response.ok && response.type === "basic" && !response.redirected) cache.put(key, response.clone());
    return response;
  });
  network.catch(() => {});   // a late failure after the timeout is expected, not an error
  try {
    return await Promise.race([network, timeout(wait)]);
  } catch (e) {
    const kept = await cache.match(key);
    if (kept) return kept;
    try { return await network; } catch (err) {
      if (missing) return missing();
      return new Response(JSON.stringify({ title: "No signal", status: 503,
        detail: "There is no signal and this was not kept on the device." }),
        { status: 503, headers: { "Content-Type": "application/problem+json" } });
    }
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request);
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok && new URL(request.url).search.includes("v=")) cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(networkFirst(request, PAGE, PAGE_WAIT_MS));
  } else if (url.pathname.startsWith("/static/")) {
    event.respondWith(cacheFirst(request));
  } else if (TILES.test(url.pathname)) {
    // A tile never kept is drawn empty (as the server answers for an empty tile), not as an error.
    event.respondWith(networkFirst(request, request.url, DATA_WAIT_MS, () => new Response(null, { status: 204 })));
  } else if (DATA.test(url.pathname)) {
    event.respondWith(networkFirst(request, request.url, DATA_WAIT_MS));
  }
});
