/* What the capture page keeps on the device, in IndexedDB (one database per partnership and
 * person, so nobody's outbox is ever sent under another's session):
 *   outbox  - entries waiting to be sent, keyed by their Idempotency-Key (photos as Blobs);
 *   cameras - the cameras last seen near here, keyed by id (for the survey and the duplicate check
 *             with no signal);
 *   meta    - the coverage rule, the form's lists, local camera refs -> server ids, the pause flag.
 * The page asks for persistent storage (navigator.storage.persist) so the browser does not evict it.
 */
(function () {
  "use strict";

  const VERSION = 1;

  function promised(request) {
    return new Promise((resolve, reject) => {
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  function open(name) {
    const request = indexedDB.open(name, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox", { keyPath: "key" });
      if (!db.objectStoreNames.contains("cameras")) db.createObjectStore("cameras", { keyPath: "id" });
      if (!db.objectStoreNames.contains("meta")) db.createObjectStore("meta", { keyPath: "k" });
    };
    return promised(request).then((db) => new Store(db));
  }

  class Store {
    constructor(db) { this.db = db; }

    // Runs fn(stores) in one transaction; resolves with fn's value once the transaction commits.
    tx(names, mode, fn) {
      return new Promise((resolve, reject) => {
        const t = this.db.transaction(names, mode);
        const stores = {};
        names.forEach((n) => { stores[n] = t.objectStore(n); });
        let value;
        Promise.resolve(fn(stores)).then((v) => { value = v; }, (e) => { t.abort(); reject(e); });
        t.oncomplete = () => resolve(value);
        t.onerror = () => reject(t.error);
        t.onabort = () => reject(t.error || new Error("The device's storage refused the change."));
      });
    }

    all(name) { return this.tx([name], "readonly", (s) => promised(s[name].getAll())); }
    get(name, key) { return this.tx([name], "readonly", (s) => promised(s[name].get(key))); }
    put(name, value) { return this.tx([name], "readwrite", (s) => { s[name].put(value); }); }
    del(name, key) { return this.tx([name], "readwrite", (s) => { s[name].delete(key); }); }

    meta(key) { return this.get("meta", key).then((row) => (row ? row.v : undefined)); }
    setMeta(key, value) { return this.put("meta", { k: key, v: value }); }

    // The server's cameras within `radius` of a point replace what was kept there (so a camera
    // deleted on the server is forgotten here too); others are kept.
    replaceCameras(features, centre, radius, distance) {
      return this.tx(["cameras"], "readwrite", (s) => promised(s.cameras.getAll()).then((kept) => {
        const fresh = new Set(features.map((f) => f.id));
        kept.forEach((f) => {
          const at = { lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] };
          if (!fresh.has(f.id) && distance(centre, at) <= radius) s.cameras.delete(f.id);
        });
        features.forEach((f) => s.cameras.put(f));
      }));
    }
  }

  window.SaferCapture.store = { open };
})();
