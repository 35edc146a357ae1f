/* The "Add" tab: a new camera placed by GPS or by a tap, turned with the map handle, its field of
 * view and range set with sliders (the type's usual values, from the server's rule, until moved),
 * its owner, type, status, monitoring, retention, notes and a photo. Saving puts it in the outbox;
 * before that, a camera already kept within the duplicate distance is offered as "the same camera". */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util, geo = C.geo;
  const $ = util.byId;
  const PRIVATE = "__private";

  class Form {
    constructor(app) {
      this.app = app;
      this.draft = null;
      this.decidedNew = false;
      this.form = $("cap-form");
      this.type = $("cap-type");
      this.fov = $("cap-fov");
      this.range = $("cap-range");
      this.owner = $("cap-owner");
      this.type.addEventListener("change", () => this.changed("type"));
      this.fov.addEventListener("input", () => { this.ensureDraft(); this.draft.fov = Number(this.fov.value); this.changed("fov"); });
      this.range.addEventListener("input", () => { this.ensureDraft(); this.draft.range_m = Number(this.range.value); this.changed("range"); });
      $("cap-height").addEventListener("input", () => this.changed("height"));
      $("cap-preset").addEventListener("click", () => {
        if (this.draft) { this.draft.fov = null; this.draft.range_m = null; }
        this.changed("preset");
      });
      this.owner.addEventListener("change", () => { $("cap-private").hidden = this.owner.value !== PRIVATE; });
      $("cap-use-gps").addEventListener("click", () => this.useFix());
      $("cap-clear").addEventListener("click", () => this.reset("Cleared."));
      this.form.addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
      this.newReference();
      this.sliders();
    }

    // The lists from GET /api/cameras/options (kept on the device for use offline).
    fillOptions(options) {
      if (!options) return;
      const owner = this.owner, keep = owner.value;
      util.clear(owner);
      owner.appendChild(new Option("Not known", ""));
      (options.agencies || []).forEach((a) => owner.appendChild(new Option(a.name + (a.kind ? " (" + a.kind + ")" : ""), a.name)));
      owner.appendChild(new Option("A private owner…", PRIVATE));
      owner.value = keep;
      const retention = $("cap-retention"), kept = retention.value;
      util.clear(retention);
      retention.appendChild(new Option("Not known", ""));
      (options.retention_days || []).forEach((d) => retention.appendChild(new Option(d + " days", String(d))));
      retention.value = kept;
      this.agencies = {};
      (options.agencies || []).forEach((a) => { this.agencies[a.name] = a; });
    }

    newReference() {
      const d = new Date();
      const ymd = d.getFullYear() + String(d.getMonth() + 1).padStart(2, "0") + String(d.getDate()).padStart(2, "0");
      $("cap-reference").value = "PCSO-" + ymd + "-" + util.uuid().slice(0, 6).toUpperCase();
    }

    values() {
      const d = this.draft || {};
      return { camera_type: this.type.value, bearing: d.bearing, fov: d.fov, range_m: d.range_m,
        height_m: $("cap-height").value === "" ? null : Number($("cap-height").value) };
    }

    // The sliders show what will be drawn: the values set, else the type's usual ones.
    sliders() {
      const rule = this.app.rule;
      if (!rule) { $("cap-fov-out").textContent = ""; $("cap-range-out").textContent = ""; return; }
      const v = this.values();
      const plain = geo.plain(rule, Object.assign({}, v, { bearing: v.bearing === null || v.bearing === undefined ? 0 : v.bearing }));
      this.fov.value = String(Math.round(plain.fov));
      this.range.value = String(Math.round(plain.range_m));
      $("cap-fov-out").textContent = Math.round(plain.fov) + "°" + (v.fov === null || v.fov === undefined ? " (usual for the type)" : "");
      $("cap-range-out").textContent = Math.round(plain.range_m) + " m" + (v.range_m === null || v.range_m === undefined ? " (usual for the type)" : "");
      const d = this.draft;
      $("cap-direction").textContent = plain.fov >= 360 ? "Direction: this type sees all round."
        : !d || d.bearing === null || d.bearing === undefined ? "Direction: drag the round handle on the map."
          : "Direction: " + Math.round(geo.trueAzimuth(this.app.config.grid, d.lat, d.lon, d.bearing)) + "° from north.";
    }

    changed() {
      if (this.draft) Object.assign(this.draft, this.values());
      this.sliders();
      if (this.app.view.editor && this.app.view.editor.values === this.draft) this.app.view.editor.redraw();
    }

    ensureDraft() {
      if (this.draft) return;
      const c = this.app.view.map.getCenter();
      this.place(c.lat, c.lng, null, "centre");
    }

    // Puts the new camera at a point; the map shows it with its handle and wedge.
    place(lat, lon, accuracy, source) {
      const keep = this.draft || { local: util.uuid(), bearing: null, fov: null, range_m: null };
      this.draft = Object.assign(keep, this.values(), { lat, lon, accuracy, source, bearing: keep.bearing,
        fov: keep.fov, range_m: keep.range_m });
      this.decidedNew = false;
      $("cap-duplicates").hidden = true;
      this.app.view.edit(this.draft, { movable: true, onChange: (v, what) => {
        if (what === "moved") { this.draft.source = "tap"; this.draft.accuracy = this.tapAccuracy(); this.confirmFix(true); this.where(); }
        this.sliders();
      } });
      this.where();
      this.sliders();
    }

    // A tapped or dragged spot is as good as a fingertip on the map at this zoom.
    tapAccuracy() { return util.round(this.app.view.metresPerPixel() * 11, 1); }

    tapped(latlng) {
      this.place(latlng.lat, latlng.lng, this.tapAccuracy(), "tap");
      this.confirmFix(true);
    }

    useFix() {
      const fix = this.app.fix;
      if (!fix) { this.say("No position from the device yet: tap the camera's spot on the map."); return; }
      this.place(fix.lat, fix.lon, util.round(fix.accuracy, 1), "gps");
      this.app.view.map.setView([fix.lat, fix.lon], Math.max(this.app.view.map.getZoom(), 18));
      this.confirmFix(fix.accuracy <= this.app.config.limits.accuracy_warn_m);
    }

    // A fix worse than the limit needs the PCSO to confirm it, or to tap the spot instead.
    confirmFix(ok) {
      const box = $("cap-accuracy-warning");
      util.clear(box);
      this.fixConfirmed = ok;
      box.hidden = ok;
      if (ok) return;
      const limit = this.app.config.limits.accuracy_warn_m;
      box.appendChild(util.el("span", null, "Your position is only good to ±" + Math.round(this.draft.accuracy) +
        " m (a camera needs " + limit + " m or better). Tap the camera's spot on the map, or "));
      box.appendChild(util.button("Use it anyway", "cap-secondary", () => this.confirmFix(true)));
    }

    where() {
      const d = this.draft;
      $("cap-where").textContent = !d ? "Tap the map or use your position."
        : (d.source === "gps" ? "At your position" : "At the spot tapped") + " (±" + util.metres(d.accuracy) + ")";
    }

    say(text, bad) {
      const m = $("cap-form-message");
      m.textContent = text;
      m.classList.toggle("cap-bad", !!bad);
    }

    reset(message) {
      this.draft = null;
      this.decidedNew = false;
      this.app.view.stopEditing();
      this.form.reset();
      $("cap-private").hidden = true;
      $("cap-duplicates").hidden = true;
      $("cap-accuracy-warning").hidden = true;
      this.newReference();
      this.where();
      this.sliders();
      this.say(message || "");
    }

    body() {
      const d = this.draft, r = util.round;
      // check_duplicates: the server refuses (409, nearby) a camera within 10 m of a recorded one,
      // unless confirm_new says the PCSO has seen them and this is another camera.
      const p = { reference: $("cap-reference").value.trim() || ("PCSO-" + d.local.slice(0, 8)),
        camera_type: this.type.value, status: $("cap-status").value, monitored: $("cap-monitored").checked,
        check_duplicates: true };
      const name = $("cap-name").value.trim();
      if (name) p.name = name;
      if (d.bearing !== null && d.bearing !== undefined) p.bearing = r(d.bearing, 1);
      if (d.fov !== null && d.fov !== undefined) p.fov = d.fov;
      if (d.range_m !== null && d.range_m !== undefined) p.range_m = d.range_m;
      if ($("cap-height").value !== "") p.height_m = Number($("cap-height").value);
      if (this.owner.value === PRIVATE) {
        const owner = $("cap-owner-name").value.trim();
        if (owner) { p.owner_agency = owner; p.owner_agency_kind = "private"; }
        const contact = $("cap-owner-contact").value.trim();
        if (contact) p.owner_contact = contact;
      } else if (this.owner.value) {
        p.owner_agency = this.owner.value;
      }
      if ($("cap-retention").value !== "") p.retention_days = Number($("cap-retention").value);
      const notes = $("cap-notes").value.trim();
      if (notes) p.notes = notes;
      if (d.accuracy !== null && d.accuracy !== undefined) p.location_accuracy_m = r(d.accuracy, 1);
      if (this.decidedNew) p.confirm_new = true;
      return { type: "Feature", geometry: { type: "Point", coordinates: [r(d.lon, 7), r(d.lat, 7)] }, properties: p };
    }

    async save() {
      const d = this.draft;
      if (!d || d.source === "centre") { this.say("Place the camera first: tap its spot on the map or use your position.", true); return; }
      if (!this.fixConfirmed) { this.say("Confirm the position or tap the spot on the map first.", true); return; }
      if (this.owner.value === PRIVATE && !$("cap-owner-name").value.trim()) {
        this.say("Give the private owner's name (or choose 'Not known').", true);
        return;
      }
      if (!this.decidedNew) {
        const near = this.app.survey.within({ lat: d.lat, lon: d.lon }, this.app.config.limits.duplicate_m);
        if (near.length) { this.showDuplicates(near); return; }
      }
      const body = this.body();
      const photo = $("cap-photo").files[0];
      await this.app.outbox.add({ kind: "create", local: d.local, body, position: this.app.devicePosition(),
        label: "New camera " + body.properties.reference });
      if (photo) await this.app.queuePhoto({ local: d.local }, photo, body.properties.reference);
      this.reset(navigator.onLine ? "Saved: sending now." : "Saved on this device: it will be sent when the signal returns.");
      this.app.refresh();
    }

    // Cameras already kept this close: "this is the same camera", or save it as another.
    showDuplicates(near) {
      const box = $("cap-duplicates");
      util.clear(box);
      box.hidden = false;
      box.appendChild(util.el("p", "cap-warning-text", near.length === 1
        ? "A camera is already recorded " + util.metres(near[0].distance) + " from here. Is it this one?"
        : near.length + " cameras are already recorded within " + this.app.config.limits.duplicate_m + " m. Is it one of these?"));
      near.forEach((n) => {
        const row = util.el("div", "cap-duplicate");
        const p = n.camera.properties || {};
        row.appendChild(util.el("span", null, util.cameraLabel(p, n.camera.id) + " · " + (p.camera_type || "") + " · " +
          util.metres(n.distance) + (n.camera.pending ? " · not sent yet" : "")));
        row.appendChild(util.button("This is the same camera", "cap-primary", () => this.sameAs(n.camera)));
        box.appendChild(row);
      });
      box.appendChild(util.button("It is a different camera: save it", "cap-secondary", () => {
        this.decidedNew = true;
        box.hidden = true;
        this.save();
      }));
    }

    // The camera was already there: it is marked verified (and given the photo) instead.
    async sameAs(camera) {
      const photo = $("cap-photo").files[0];
      const target = camera.pending ? { local: camera.local } : { cameraId: camera.id };
      await this.app.survey.mark(camera, "verified");
      if (photo) await this.app.queuePhoto(target, photo, util.cameraLabel(camera.properties, camera.id));
      this.reset("Marked " + util.cameraLabel(camera.properties, camera.id) + " as verified instead.");
    }
  }

  C.Form = Form;
})();
