/* The outbox: every create, change, survey and photo goes here first and is sent from here, oldest
 * first, whether or not there is a signal. Nothing leaves it except by being accepted by the server
 * or discarded by the PCSO:
 *   - no connection, a timeout, 429 or 5xx: the entry waits and is retried with growing pauses;
 *   - 401 (session ended): the outbox pauses and asks to sign in again;
 *   - 409 with `conflicts` (both sides changed a field) or `nearby` (a camera within 10 m): the
 *     entry waits for the PCSO to choose; 410 (deleted meanwhile) and any other refusal: the entry
 *     stays, marked failed with the server's reason.
 * Each entry keeps the Idempotency-Key made when it was made, so a resend (after a lost answer, or
 * from a restored backup) returns the first answer instead of adding a second camera. A changed body
 * (after a conflict is resolved) is a new request and gets a new key.
 * A camera added offline has a local ref; its photos and surveys are sent once its id is known.
 */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util, api = C.api;
  const KINDS = ["create", "patch", "survey", "photo"];
  const MAX_BACKOFF_MS = 60000;
  const RETRY_409 = 5;  // a key still in flight (409, in_flight): its first request is still running

  function backoff(attempts, retryAfter) {
    if (retryAfter) return retryAfter * 1000;
    return Math.min(MAX_BACKOFF_MS, 2000 * Math.pow(2, Math.max(0, attempts - 1))) * (0.8 + Math.random() * 0.4);
  }

  function order(a, b) { return a.created - b.created || a.seq - b.seq; }

  class Outbox {
    constructor(store, links, hooks) {
      this.store = store;
      this.links = links;
      this.hooks = hooks;
      this.paused = false;
      this.running = false;
      this.again = false;
      this.seq = 0;
      this.ids = {};
    }

    async init() {
      this.ids = (await this.store.meta("ids")) || {};
      const entries = await this.list();
      this.seq = entries.reduce((m, e) => Math.max(m, e.seq || 0), 0);
      // An entry caught mid-send when the page closed goes back to waiting (its key makes it safe).
      for (const e of entries) if (e.state === "sending") { e.state = "waiting"; await this.store.put("outbox", e); }
    }

    list() { return this.store.all("outbox").then((entries) => entries.sort(order)); }

    serverId(local) { return this.ids[local]; }

    async add(entry) {
      entry.key = entry.key || util.uuid();
      entry.created = entry.created || Date.now();
      entry.seq = entry.seq || ++this.seq;
      entry.state = "waiting";
      entry.attempts = 0;
      entry.error = "";
      await this.store.put("outbox", entry);
      this.hooks.onChange();
      if (navigator.onLine) this.flush();
      return entry;
    }

    // A new request in the old one's place in the queue (a changed body needs a new key).
    async replace(old, changes) {
      const entry = Object.assign({}, old, changes, { key: util.uuid(), state: "waiting", attempts: 0, error: "",
        problem: null, nextTry: 0 });
      await this.store.tx(["outbox"], "readwrite", (s) => { s.outbox.delete(old.key); s.outbox.put(entry); });
      this.hooks.onChange();
      if (navigator.onLine) this.flush(true);
      return entry;
    }

    async discard(key) {
      await this.store.del("outbox", key);
      this.hooks.onChange();
    }

    async retry(entry) {
      Object.assign(entry, { state: "waiting", attempts: 0, nextTry: 0, error: "" });
      await this.store.put("outbox", entry);
      this.hooks.onChange();
      this.flush(true);
    }

    // Ties a camera added here to the server's camera (created, or chosen as "the same camera").
    async link(local, id) {
      this.ids[local] = id;
      await this.store.setMeta("ids", this.ids);
    }

    // Sends what is waiting, oldest first. `now` ignores the pauses between retries (the signal is
    // back, or the PCSO pressed Send now); `force` (Send now) also ends a pause for signing in.
    async flush(force, now) {
      if (force) this.paused = false;
      now = now || force;
      if (this.running) { this.again = true; this.againNow = this.againNow || now; return; }
      this.running = true;
      try {
        do {
          this.again = false;
          now = now || this.againNow;
          this.againNow = false;
          if (this.paused) break;
          const stuck = new Set();   // local cameras whose create has not gone through
          for (const e of await this.list()) {
            // Oldest first, strictly: an older entry still pausing between retries holds back the
            // newer ones (their retry pauses are jittered, so a newer one may come due sooner).
            if (e.state === "waiting" && !now && e.nextTry && e.nextTry > Date.now()) break;
            const waiting = e.state === "waiting" && (now || !e.nextTry || e.nextTry <= Date.now());
            const id = e.kind === "create" ? null : e.cameraId || this.ids[e.local];
            if (!waiting || (e.kind !== "create" && !id) || (e.local && stuck.has(e.local) && !id)) {
              if (e.kind === "create") stuck.add(e.local);
              continue;
            }
            const outcome = await this.send(e, id);
            if (outcome === "stop") break;
            if (e.kind === "create" && outcome !== "done") stuck.add(e.local);
          }
        } while (this.again && !this.paused);
      } finally {
        this.running = false;
        this.hooks.onChange();
      }
      await this.schedule();
    }

    // The next try when the soonest waiting entry is due (the retry pauses grow: 2, 4, 8... 60 s).
    async schedule() {
      clearTimeout(this.timer);
      if (this.paused) return;
      // The oldest waiting entry goes first (flush holds the rest behind it), so its pause decides.
      const next = (await this.list()).find((e) => e.state === "waiting" && e.nextTry);
      if (next) this.timer = setTimeout(() => this.flush(), Math.max(250, next.nextTry - Date.now()));
    }

    request(e, id) {
      const base = this.links.cameras;
      const common = { key: e.key, position: e.position || undefined, timeout: 60000 };
      if (e.kind === "create") return api.request(base, Object.assign({ method: "POST", json: e.body }, common));
      if (e.kind === "patch") return api.request(base + "/" + id, Object.assign({ method: "PATCH", json: e.body }, common));
      if (e.kind === "survey") return api.request(base + "/" + id + "/survey", Object.assign({ method: "POST", json: e.body }, common));
      const part = api.multipart(e.key, e.photo, e.photoName);
      return api.request(base + "/" + id + "/photos", Object.assign({ method: "POST", body: part.body,
        headers: { "Content-Type": part.contentType } }, common));
    }

    async send(e, id) {
      e.state = "sending";
      this.hooks.onChange(e);
      let answer;
      try {
        answer = await this.request(e, id);
      } catch (err) {
        Object.assign(e, { state: "waiting", attempts: (e.attempts || 0) + 1, status: null,
          error: err.message + " It will be sent when the signal returns." });
        e.nextTry = Date.now() + backoff(e.attempts);
        await this.store.put("outbox", e);
        this.hooks.onNoConnection();
        return "stop";
      }
      const s = answer.status, body = answer.body || {};
      e.status = s;
      if (s >= 200 && s < 300) {
        if (e.kind === "create") await this.link(e.local, body.id !== undefined ? body.id : (body.properties || {}).id);
        await this.store.del("outbox", e.key);
        this.hooks.onSent(e, body, id);
        return "done";
      }
      e.error = api.problemText(answer);
      if (s === 401) {
        this.paused = true;
        e.state = "waiting";
        await this.store.put("outbox", e);
        this.hooks.onSignIn();
        return "stop";
      }
      if (s === 409 && Array.isArray(body.conflicts)) {
        Object.assign(e, { state: "conflict", problem: body });
      } else if (s === 409 && Array.isArray(body.nearby)) {
        Object.assign(e, { state: "duplicate", problem: body });
      } else if (s === 410) {
        Object.assign(e, { state: "deleted", problem: body });
      } else if ((s === 409 && body.in_flight && (e.attempts || 0) < RETRY_409) || s === 408 || s === 425 || s === 429 || s >= 500) {
        e.state = "waiting";
        e.attempts = (e.attempts || 0) + 1;
        e.nextTry = Date.now() + backoff(e.attempts, Number(answer.headers.get("Retry-After")) || 0);
        e.error += " It will be tried again.";
      } else {
        e.state = "failed";
      }
      e.failedAt = Date.now();
      await this.store.put("outbox", e);
      if (e.state !== "waiting") this.hooks.onAttention(e);
      return "next";
    }

    // -- backups ---------------------------------------------------------------------------------

    async exportBlob(about) {
      const entries = [];
      for (const e of await this.list()) {
        const copy = Object.assign({}, e);
        if (e.photo) copy.photo = await dataUrl(e.photo);
        if (copy.state === "sending") copy.state = "waiting";
        entries.push(copy);
      }
      const doc = Object.assign({ format: "safermap-outbox", version: 1, exported_at: new Date().toISOString(),
        entries }, about);
      return new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" });
    }

    // Restores a backup: entries already here are kept as they are; the rest wait to be sent
    // with their own keys (so what the server already has comes back as its first answer).
    async importText(text) {
      let doc;
      try { doc = JSON.parse(text); } catch (e) { throw new Error("That file is not an outbox backup (not JSON)."); }
      if (!doc || doc.format !== "safermap-outbox" || !Array.isArray(doc.entries)) {
        throw new Error("That file is not a SaferMap outbox backup.");
      }
      const have = new Set((await this.list()).map((e) => e.key));
      let added = 0;
      for (const raw of doc.entries) {
        if (!raw || typeof raw.key !== "string" || KINDS.indexOf(raw.kind) < 0 || !isFinite(raw.created)) continue;
        if (have.has(raw.key)) continue;
        const e = Object.assign({}, raw, { state: "waiting", attempts: 0, nextTry: 0, error: "", problem: null });
        if (typeof raw.photo === "string") e.photo = blobOf(raw.photo);
        if (e.kind === "photo" && !(e.photo instanceof Blob)) continue;
        e.seq = e.seq || ++this.seq;
        await this.store.put("outbox", e);
        added++;
      }
      this.hooks.onChange();
      if (navigator.onLine) this.flush(true);
      return added;
    }
  }

  function dataUrl(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  // A data: URL back to a Blob, without fetch (the page's policy allows no data: connections).
  function blobOf(url) {
    const m = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(url);
    if (!m) return null;
    const raw = m[2] ? atob(m[3]) : decodeURIComponent(m[3]);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Blob([bytes], { type: m[1] || "application/octet-stream" });
  }

  C.Outbox = Outbox;
})();
