/* Choices the PCSO makes about an entry the server did not take as it was:
 *   - a conflict (409 with `conflicts`): someone changed the same fields meanwhile; both values are
 *     shown side by side and the PCSO picks one for each; the change is resent on the current version;
 *   - a duplicate (409 with `nearby`): a camera within 10 m is already recorded; "this is the same
 *     camera" marks that one verified instead, or the camera is saved as a new one after all;
 *   - a refusal or a deleted camera: said plainly, with "try again" or "discard".
 * Built with textContent only, in one <dialog>. */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util, geo = C.geo;
  const $ = util.byId;
  const FIELD = { bearing: "Direction (°)", fov: "Field of view (°)", range_m: "Range (m)", height_m: "Height (m)",
    camera_type: "Type", status: "Status", monitored: "Monitored", retention_days: "Footage kept (days)",
    owner_agency: "Owner", notes: "Notes", name: "Name", reference: "Reference", contact: "Contact",
    owner_contact: "Owner's contact", geometry: "Position", coordinates: "Position" };

  function show(value) {
    if (value === null || value === undefined || value === "") return "(empty)";
    if (value === true) return "Yes";
    if (value === false) return "No";
    if (Array.isArray(value)) return value.map((x) => util.round(Number(x), 6)).join(", ");
    if (typeof value === "object") return value.coordinates ? show(value.coordinates) : JSON.stringify(value);
    return String(value);
  }

  class Dialogs {
    constructor(app) {
      this.app = app;
      this.dialog = $("cap-dialog");
    }

    open(title, build) {
      const d = this.dialog;
      util.clear(d);
      d.appendChild(util.el("h2", null, title));
      build(d);
      if (!d.open) d.showModal();
    }

    close() { if (this.dialog.open) this.dialog.close(); }

    confirm(title, text, yes) {
      return new Promise((resolve) => {
        this.open(title, (d) => {
          d.appendChild(util.el("p", null, text));
          const row = util.el("div", "cap-actions");
          row.appendChild(util.button(yes, "cap-danger", () => { this.close(); resolve(true); }));
          row.appendChild(util.button("Keep it", "cap-secondary", () => { this.close(); resolve(false); }));
          d.appendChild(row);
        });
      });
    }

    // The entry the server answered with a choice to make.
    attend(entry) {
      if (entry.state === "conflict") this.conflict(entry);
      else if (entry.state === "duplicate") this.duplicate(entry);
      else this.refused(entry);
    }

    conflict(entry) {
      const problem = entry.problem || {}, current = problem.current || {};
      const choices = {};
      this.open("Someone else changed this camera", (d) => {
        d.appendChild(util.el("p", null, util.cameraLabel(current.properties, current.id) +
          " was changed on the server after you read it. Choose which value to keep for each:"));
        const table = util.el("div", "cap-conflicts");
        (problem.conflicts || []).forEach((c, i) => {
          choices[c.field] = "yours";
          const box = util.el("fieldset", "cap-conflict");
          box.appendChild(util.el("legend", null, FIELD[c.field] || c.field));
          [["yours", "Yours: ", c.yours], ["theirs", "Now on the server: ", c.theirs]].forEach(([side, text, value]) => {
            const label = util.el("label", "cap-choice cap-choice-" + side);
            const radio = util.el("input");
            radio.type = "radio";
            radio.name = "cap-conflict-" + i;
            radio.value = side;
            radio.checked = side === "yours";
            radio.addEventListener("change", () => { choices[c.field] = side; });
            label.appendChild(radio);
            label.appendChild(util.el("span", null, text + show(value)));
            box.appendChild(label);
          });
          if (c.base !== undefined) box.appendChild(util.el("p", "cap-hint", "Before both changes: " + show(c.base)));
          table.appendChild(box);
        });
        d.appendChild(table);
        const row = util.el("div", "cap-actions");
        row.appendChild(util.button("Send with these choices", "cap-primary", () => { this.close(); this.resolve(entry, choices); }));
        row.appendChild(util.button("Decide later", "cap-secondary", () => this.close()));
        d.appendChild(row);
      });
    }

    // Resends the change on the camera's current version: the fields chosen as "yours", and the
    // other fields of the change (the refused request applied none of them).
    async resolve(entry, choices) {
      const problem = entry.problem || {}, current = problem.current || {};
      const mine = Object.assign({}, (entry.body || {}).properties);
      delete mine.version;
      const props = { version: (current.properties || {}).version };
      let geometry = entry.body.geometry || null;
      Object.keys(mine).forEach((k) => { if (choices[k] !== "theirs") props[k] = mine[k]; });
      if (choices.geometry === "theirs" || choices.coordinates === "theirs") geometry = null;
      if (Object.keys(props).length === 1 && !geometry) {
        await this.app.outbox.discard(entry.key);
        this.app.toast("Kept the server's values; your change is withdrawn.");
        if (current.id !== undefined) await this.app.store.put("cameras", current);
        await this.app.refresh();
        return;
      }
      const body = { type: "Feature", properties: props };
      if (geometry) body.geometry = geometry;
      if (current.id !== undefined) await this.app.store.put("cameras", current);
      await this.app.outbox.replace(entry, { body, base: current.properties });
      await this.app.refresh();
    }

    duplicate(entry) {
      const nearby = (entry.problem || {}).nearby || [];
      const at = entry.body.geometry.coordinates;
      this.open("This camera may already be recorded", (d) => {
        d.appendChild(util.el("p", null, C.api.problemText({ body: entry.problem, status: 409 })));
        nearby.forEach((f) => {
          const row = util.el("div", "cap-duplicate");
          const dist = f.properties && f.properties.distance_m !== undefined ? f.properties.distance_m
            : geo.distance({ lat: at[1], lon: at[0] }, { lat: f.geometry.coordinates[1], lon: f.geometry.coordinates[0] });
          row.appendChild(util.el("span", null, util.cameraLabel(f.properties, f.id) + " · " +
            ((f.properties || {}).camera_type || "") + " · " + util.metres(dist)));
          row.appendChild(util.button("This is the same camera", "cap-primary", () => { this.close(); this.same(entry, f); }));
          d.appendChild(row);
        });
        const row = util.el("div", "cap-actions");
        row.appendChild(util.button("It is a different camera: save it", "cap-secondary", async () => {
          this.close();
          const body = JSON.parse(JSON.stringify(entry.body));
          body.properties.confirm_new = true;
          await this.app.outbox.replace(entry, { body });
        }));
        row.appendChild(util.button("Decide later", "cap-secondary", () => this.close()));
        d.appendChild(row);
      });
    }

    // The camera was already recorded: that one is marked verified, and what was waiting for the
    // new camera (photos, surveys) goes to it.
    async same(entry, feature) {
      await this.app.outbox.link(entry.local, feature.id);
      await this.app.store.put("cameras", feature);
      await this.app.outbox.replace(entry, { kind: "survey", local: null, cameraId: feature.id, body: { outcome: "verified" },
        label: "Verified: " + util.cameraLabel(feature.properties, feature.id) });
      await this.app.refresh();
    }

    refused(entry) {
      this.open(entry.state === "deleted" ? "This camera was deleted" : "The server refused this", (d) => {
        d.appendChild(util.el("p", null, entry.label));
        d.appendChild(util.el("p", "cap-bad", (entry.status ? entry.status + ": " : "") + (entry.error || "")));
        const row = util.el("div", "cap-actions");
        if (entry.state !== "deleted") row.appendChild(util.button("Try again", "cap-secondary", () => { this.close(); this.app.outbox.retry(entry); }));
        row.appendChild(util.button("Discard", "cap-danger", async () => {
          this.close();
          if (await this.confirm("Discard this entry?", entry.label + " will not be sent.", "Discard")) {
            await this.app.outbox.discard(entry.key);
            await this.app.refresh();
          }
        }));
        row.appendChild(util.button("Close", "cap-secondary", () => this.close()));
        d.appendChild(row);
      });
    }
  }

  C.Dialogs = Dialogs;
})();
