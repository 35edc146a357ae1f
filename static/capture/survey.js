/* The "Nearby" tab: the cameras near the device, nearest first (from the server when there is a
 * signal, else from what the device kept), each with one-tap Verified / Faulty / Gone; a camera
 * chosen on the map or in the list can be moved or turned by dragging, have its notes changed or
 * get a photo. Every change goes to the outbox with the camera's version, so a change made
 * meanwhile by someone else comes back as a conflict to choose, never silently overwritten. */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util, geo = C.geo;
  const $ = util.byId;
  const REFETCH_M = 50;       // fetch the nearby cameras again after moving this far
  const OUTCOMES = [["verified", "Verified"], ["faulty", "Faulty"], ["gone", "Gone"]];

  class Survey {
    constructor(app) {
      this.app = app;
      this.cameras = [];      // the server's cameras kept on the device
      this.pending = [];      // cameras added here, not yet sent
      this.selected = null;
      this.lastFetch = null;
    }

    centre() {
      if (this.app.fix) return { lat: this.app.fix.lat, lon: this.app.fix.lon };
      const c = this.app.view.map.getCenter();
      return { lat: c.lat, lon: c.lng };
    }

    async load() {
      this.cameras = await this.app.store.all("cameras");
      const entries = await this.app.outbox.list();
      this.pending = entries.filter((e) => e.kind === "create").map((e) => ({
        id: "local:" + e.local, local: e.local, pending: true, geometry: e.body.geometry,
        properties: Object.assign({ status: e.body.properties.status || "operational" }, e.body.properties) }));
      this.waiting = {};
      entries.forEach((e) => {
        const id = e.cameraId || (e.local && (this.app.outbox.serverId(e.local) || "local:" + e.local));
        if (id && e.kind !== "create") (this.waiting[id] = this.waiting[id] || []).push(e);
      });
    }

    // Asks the server for the cameras near the device (when there is a signal and it has moved).
    async fetchNear(force) {
      const c = this.centre();
      const radius = this.app.config.limits.nearby_radius_m;
      if (!navigator.onLine || (!force && this.lastFetch && geo.distance(this.lastFetch, c) < REFETCH_M)) return;
      const url = this.app.config.links.cameras + "?near=" + util.round(c.lon, 6) + "," + util.round(c.lat, 6) +
        "&radius_m=" + radius;
      let answer;
      try { answer = await C.api.request(url, { timeout: 15000 }); } catch (e) { this.app.network(false); return; }
      this.app.network(true);
      if (answer.status === 401) { this.app.signInAgain(); return; }
      if (answer.status !== 200 || !Array.isArray(answer.body.features)) {
        $("cap-nearby-note").textContent = "The nearby cameras could not be fetched: " + C.api.problemText(answer);
        return;
      }
      this.lastFetch = c;
      await this.app.store.replaceCameras(answer.body.features, c, radius, geo.distance);
      this.fetchedAt = Date.now();
      await this.app.refresh();
    }

    all() { return this.pending.concat(this.cameras); }

    at(cam) { return { lat: cam.geometry.coordinates[1], lon: cam.geometry.coordinates[0] }; }

    // Kept cameras (and ones added here) within `metres` of a point, nearest first.
    within(point, metres) {
      return this.all().map((cam) => ({ camera: cam, distance: geo.distance(point, this.at(cam)) }))
        .filter((n) => n.distance <= metres).sort((a, b) => a.distance - b.distance);
    }

    render() {
      const list = $("cap-nearby");
      util.clear(list);
      const c = this.centre();
      const near = this.within(c, this.app.config.limits.nearby_radius_m);
      $("cap-nearby-note").textContent = (near.length ? near.length + " cameras within " : "No cameras known within ") +
        this.app.config.limits.nearby_radius_m + " m" + (this.app.fix ? " of you" : " of the map centre") +
        (navigator.onLine ? "." : " (kept on this device; no signal).");
      near.forEach((n) => list.appendChild(this.item(n.camera, n.distance)));
      if (this.selected) this.renderSelected();
    }

    item(cam, distance) {
      const p = cam.properties || {};
      const li = util.el("li", "cap-item");
      li.dataset.camera = String(cam.id);
      const head = util.el("button", "cap-item-title", util.cameraLabel(p, cam.id));
      head.type = "button";
      head.addEventListener("click", () => this.select(cam, true));
      li.appendChild(head);
      const facts = [p.camera_type, p.status === "decommissioned" ? "gone" : p.status, util.metres(distance) + " away",
        p.verified_at ? "verified " + util.when(p.verified_at) + (p.verified_by ? " by " + p.verified_by : "") : "never verified"];
      li.appendChild(util.el("p", "cap-item-facts", facts.filter(Boolean).join(" · ")));
      const waiting = (this.waiting[cam.id] || []).length + (cam.pending ? 1 : 0);
      if (waiting) li.appendChild(util.el("p", "cap-item-waiting", waiting + " change" + (waiting > 1 ? "s" : "") + " waiting in the outbox"));
      const row = util.el("div", "cap-outcomes");
      OUTCOMES.forEach(([outcome, text]) => {
        const b = util.button(text, "cap-outcome cap-outcome-" + outcome, () => this.mark(cam, outcome));
        row.appendChild(b);
      });
      li.appendChild(row);
      return li;
    }

    target(cam) { return cam.pending ? { local: cam.local } : { cameraId: cam.id }; }

    // One tap: verified, faulty or gone, into the outbox (shown at once as done on the device).
    async mark(cam, outcome) {
      const label = { verified: "Verified", faulty: "Faulty", gone: "Gone" }[outcome] + ": " + util.cameraLabel(cam.properties, cam.id);
      await this.app.outbox.add(Object.assign({ kind: "survey", body: { outcome }, label,
        position: this.app.devicePosition() }, this.target(cam)));
      if (!cam.pending) {
        const p = cam.properties;
        if (outcome === "verified") { p.verified_at = new Date().toISOString(); p.verified_by = this.app.config.user.name; }
        if (outcome === "faulty") p.status = "faulty";
        if (outcome === "gone") p.status = "decommissioned";
        await this.app.store.put("cameras", cam);
      }
      this.app.toast(label + (navigator.onLine ? "" : " (saved on this device)"));
      await this.app.refresh();
    }

    // -- one camera chosen --------------------------------------------------------------------------

    select(cam, pan) {
      this.selected = cam;
      this.app.showTab("nearby");
      if (pan) this.app.view.map.setView([this.at(cam).lat, this.at(cam).lon], Math.max(this.app.view.map.getZoom(), 18));
      this.renderSelected();
      this.app.view.showCameras(this.all(), cam.id);
    }

    renderSelected() {
      const box = $("cap-selected"), cam = this.selected;
      util.clear(box);
      box.hidden = !cam;
      if (!cam) return;
      const fresh = this.all().find((c) => c.id === cam.id);
      if (fresh) this.selected = fresh;
      const p = this.selected.properties || {};
      box.appendChild(util.el("h2", null, util.cameraLabel(p, cam.id)));
      const facts = [["Reference", p.reference], ["Type", p.camera_type], ["Status", p.status], ["Owner", p.owner_agency],
        ["Direction", p.bearing === null || p.bearing === undefined ? "not known" : Math.round(p.bearing) + "°"],
        ["Last verified", p.verified_at ? util.when(p.verified_at) + (p.verified_by ? " by " + p.verified_by : "") : "never"],
        ["Photos", p.photo_count]];
      const dl = util.el("dl", "cap-facts");
      facts.forEach(([k, v]) => {
        if (v === undefined || v === null || v === "") return;
        dl.appendChild(util.el("dt", null, k));
        dl.appendChild(util.el("dd", null, v));
      });
      box.appendChild(dl);
      if (cam.pending) {
        box.appendChild(util.el("p", "cap-hint", "Not sent yet: it can be moved or changed once the server has it."));
      } else {
        const row = util.el("div", "cap-actions");
        row.appendChild(util.button(this.moving ? "Save move and turn" : "Move or turn", "cap-primary", () =>
          this.moving ? this.saveMove() : this.startMove()));
        if (this.moving) row.appendChild(util.button("Cancel", "cap-secondary", () => this.stopMove()));
        box.appendChild(row);
        const notes = util.el("label", null, "Notes");
        const area = util.el("textarea");
        area.id = "cap-selected-notes";
        area.rows = 2;
        area.maxLength = 4000;
        area.value = p.notes || "";
        notes.appendChild(area);
        box.appendChild(notes);
        box.appendChild(util.button("Save notes", "cap-secondary", () => this.savePatch({ notes: area.value.trim() }, null,
          "Notes: " + util.cameraLabel(p, cam.id))));
        const photo = util.el("label", "cap-button cap-secondary cap-photo-button", "Add a photo");
        const input = util.el("input");
        input.type = "file";
        input.accept = "image/*";
        input.setAttribute("capture", "environment");
        input.id = "cap-selected-photo";
        input.addEventListener("change", () => {
          if (input.files[0]) this.app.queuePhoto({ cameraId: cam.id }, input.files[0], util.cameraLabel(p, cam.id));
        });
        photo.appendChild(input);
        box.appendChild(photo);
      }
      box.appendChild(util.button("Close", "cap-secondary", () => { this.stopMove(); this.selected = null; this.renderSelected();
        this.app.view.showCameras(this.all(), null); }));
    }

    startMove() {
      const cam = this.selected, p = cam.properties;
      this.moving = { lat: this.at(cam).lat, lon: this.at(cam).lon, camera_type: p.camera_type, bearing: p.bearing,
        fov: p.fov, range_m: p.range_m, height_m: p.height_m, resolution_px: p.resolution_px, purpose: p.purpose };
      this.moveBase = Object.assign({}, this.moving);
      this.app.view.edit(this.moving, { movable: true, cameraId: cam.id, onChange: () => {} });
      this.app.view.showCameras(this.all(), cam.id);
      this.renderSelected();
    }

    stopMove() {
      if (!this.moving) return;
      this.moving = null;
      this.app.view.stopEditing();
      this.app.view.showCameras(this.all(), this.selected && this.selected.id);
      this.renderSelected();
    }

    async saveMove() {
      const m = this.moving, b = this.moveBase, changes = {};
      let geometry = null;
      if (geo.distance(m, b) > 0.05) geometry = { type: "Point", coordinates: [util.round(m.lon, 7), util.round(m.lat, 7)] };
      if (m.bearing !== b.bearing && m.bearing !== null && m.bearing !== undefined) changes.bearing = util.round(m.bearing, 1);
      if (!geometry && !Object.keys(changes).length) { this.stopMove(); return; }
      await this.savePatch(changes, geometry, "Moved or turned: " + util.cameraLabel(this.selected.properties, this.selected.id));
      this.stopMove();
    }

    // A change to a server camera, based on the version the device holds.
    async savePatch(changes, geometry, label) {
      const cam = this.selected, p = cam.properties;
      const body = { type: "Feature", properties: Object.assign({ version: p.version }, changes) };
      if (geometry) body.geometry = geometry;
      await this.app.outbox.add({ kind: "patch", cameraId: cam.id, body, label, position: this.app.devicePosition(),
        base: Object.assign({}, p) });
      Object.assign(p, changes);
      if (geometry) cam.geometry = geometry;
      await this.app.store.put("cameras", cam);
      this.app.toast(label + (navigator.onLine ? "" : " (saved on this device)"));
      await this.app.refresh();
    }
  }

  C.Survey = Survey;
})();
