/* The "Outbox" tab and the bar's outbox button: how many entries wait and how old the oldest is,
 * each entry with its state and, when it failed, the server's reason (a failed send is never
 * hidden); "Send now", a backup to a file (photos inside as data URLs) and restoring one. */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util;
  const $ = util.byId;
  const STATE = { waiting: "Waiting to send", sending: "Sending…", conflict: "Needs your choice: changed by someone else",
    duplicate: "Needs your choice: may already be recorded", deleted: "Not sent: the camera was deleted",
    failed: "Not sent: refused" };

  class OutboxPanel {
    constructor(app) {
      this.app = app;
      $("cap-send").addEventListener("click", () => { $("cap-sign-in").hidden = true; app.outbox.flush(true); });
      $("cap-export").addEventListener("click", () => this.exportFile());
      $("cap-import").addEventListener("change", (e) => this.importFile(e.target));
      $("cap-outbox-button").addEventListener("click", () => app.showTab("outbox"));
      setInterval(() => this.render(), 30000);   // the ages move on
    }

    async render() {
      const entries = await this.app.outbox.list();
      const list = $("cap-outbox");
      util.clear(list);
      const now = Date.now();
      const attention = entries.filter((e) => ["conflict", "duplicate", "deleted", "failed"].indexOf(e.state) >= 0);
      const pill = $("cap-outbox-button");
      pill.textContent = "Outbox " + entries.length + (entries.length ? " · " + util.age(now - entries[0].created) : "");
      pill.classList.toggle("cap-pill-bad", attention.length > 0);
      pill.classList.toggle("cap-pill-busy", entries.length > 0 && !attention.length);
      $("cap-tab-outbox-button").textContent = "Outbox (" + entries.length + ")";
      $("cap-outbox-summary").textContent = !entries.length ? "Everything is sent."
        : entries.length + (entries.length === 1 ? " entry waits" : " entries wait") + "; the oldest was made " +
          util.age(now - entries[0].created) + " ago." + (attention.length ? " " + attention.length + " need" +
          (attention.length === 1 ? "s" : "") + " you: see below." : "");
      entries.forEach((e) => list.appendChild(this.item(e, now)));
    }

    item(e, now) {
      const li = util.el("li", "cap-item cap-entry cap-entry-" + e.state);
      li.dataset.key = e.key;
      li.appendChild(util.el("p", "cap-item-title", e.label || e.kind));
      li.appendChild(util.el("p", "cap-item-facts", (STATE[e.state] || e.state) + " · made " + util.age(now - e.created) + " ago" +
        (e.attempts ? " · tried " + e.attempts + "×" : "")));
      if (e.error) li.appendChild(util.el("p", "cap-entry-error", (e.status ? e.status + ": " : "") + e.error));
      if (e.state !== "waiting" && e.state !== "sending") {
        const row = util.el("div", "cap-actions");
        row.appendChild(util.button(e.state === "conflict" || e.state === "duplicate" ? "Choose" : "What now?", "cap-primary",
          () => this.app.dialogs.attend(e)));
        li.appendChild(row);
      }
      return li;
    }

    async exportFile() {
      const cfg = this.app.config;
      const blob = await this.app.outbox.exportBlob({ partnership: cfg.partnership.slug, user: cfg.user.name });
      const a = util.el("a");
      a.href = URL.createObjectURL(blob);
      a.download = "safermap-outbox-" + new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-") + ".json";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      this.app.toast("Backup saved: " + a.download);
    }

    async importFile(input) {
      const file = input.files[0];
      input.value = "";
      if (!file) return;
      try {
        const added = await this.app.outbox.importText(await file.text());
        this.app.toast(added ? added + " entries restored from the backup." : "Everything in that backup is already here.");
      } catch (err) {
        this.app.alert(err.message);
      }
      await this.app.refresh();
    }
  }

  C.OutboxPanel = OutboxPanel;
})();
