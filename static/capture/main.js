/* The capture page starts here: it reads its config, opens the device's store, loads the coverage
 * rule and the form's lists (from the server, else as kept), and wires the map, the form, the
 * survey, the outbox and the offline support together. window.saferCapture is the running page. */
(function () {
  "use strict";

  const C = window.SaferCapture, util = C.util;
  const $ = util.byId;
  const TABS = ["add", "nearby", "outbox"];
  const SEND_EVERY_MS = 15000;

  async function cached(store, key, url) {
    if (!navigator.onLine) return store.meta(key);
    try {
      const answer = await C.api.request(url, { timeout: 10000 });
      if (answer.status === 200) { await store.setMeta(key, answer.body); return answer.body; }
    } catch (e) { /* no signal: what was kept */ }
    return store.meta(key);
  }

  class App {
    constructor(config, store) {
      this.config = config;
      this.store = store;
      this.fix = null;
      this.rule = null;
      this.geo = C.geo;
    }

    async start() {
      const config = this.config;
      this.view = new C.MapView(config, {
        onTap: (latlng) => { if (this.tab === "add") this.form.tapped(latlng); },
        onSelect: (cam) => this.survey.select(cam, false),
      });
      this.outbox = new C.Outbox(this.store, config.links, {
        onChange: () => this.panel && this.panel.render(),
        onSent: (entry, body) => { this.network(true); return this.sent(entry, body); },
        onNoConnection: () => this.network(false),
        onSignIn: () => this.signInAgain(),
        onAttention: (entry) => { this.showTab("outbox"); this.dialogs.attend(entry); },
      });
      await this.outbox.init();
      this.form = new C.Form(this);
      this.survey = new C.Survey(this);
      this.dialogs = new C.Dialogs(this);
      this.panel = new C.OutboxPanel(this);
      TABS.forEach((t) => $("cap-tab-" + t + "-button").addEventListener("click", () => this.showTab(t)));
      this.showTab("add");
      $("cap-locate").addEventListener("click", () => { if (this.fix) this.view.showFix(this.fix, true); });
      window.addEventListener("online", () => { this.network(true); this.outbox.flush(false, true); this.survey.fetchNear(true); });
      window.addEventListener("offline", () => this.network());
      this.network();

      [this.rule, this.options] = await Promise.all([cached(this.store, "rule", config.links.rule),
        cached(this.store, "options", config.links.options)]);
      this.view.rule = this.rule;
      if (!this.rule) this.alert("The coverage rule is not on this device yet: connect once to see the wedges.");
      this.form.fillOptions(this.options);
      this.form.sliders();
      await this.refresh();
      this.watchPosition();
      setInterval(() => { if (navigator.onLine) this.outbox.flush(); }, SEND_EVERY_MS);
      this.outbox.flush();
      C.offline.persist().then((text) => { $("cap-storage").textContent = text; });
      const problem = await C.offline.registerWorker(config);
      if (problem) this.alert(problem);
      C.offline.keepShell(config).then(() => { this.shellKept = true; }, () => {});
    }

    showTab(name) {
      this.tab = name;
      TABS.forEach((t) => {
        $("cap-tab-" + t).hidden = t !== name;
        $("cap-tab-" + t + "-button").setAttribute("aria-selected", String(t === name));
      });
    }

    // Online when the browser says so and the last request got through (a browser can think it
    // is online behind a dead signal).
    network(reached) {
      if (reached !== undefined) this.reached = reached;
      if (!navigator.onLine) this.reached = false;
      const up = navigator.onLine && this.reached !== false;
      const pill = $("cap-net");
      pill.textContent = up ? "Online" : "No signal";
      pill.classList.toggle("cap-pill-bad", !up);
    }

    watchPosition() {
      if (!navigator.geolocation) { $("cap-fix").textContent = "No position on this device: tap the map."; return; }
      let first = true;
      navigator.geolocation.watchPosition((pos) => {
        this.fix = { lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy, at: pos.timestamp };
        const limit = this.config.limits.accuracy_warn_m;
        const fixText = $("cap-fix");
        fixText.textContent = "Your position: ±" + util.metres(this.fix.accuracy) +
          (this.fix.accuracy > limit ? " (not good enough to place a camera by: tap its spot)" : "");
        fixText.classList.toggle("cap-bad", this.fix.accuracy > limit);
        this.view.showFix(this.fix, first);
        first = false;
        this.survey.fetchNear(false);
        this.survey.render();
        C.offline.prefetchTiles(this.config, this.fix.lat, this.fix.lon);
      }, (err) => {
        $("cap-fix").textContent = "No position (" + (err.message || "refused") + "): tap the camera's spot on the map.";
      }, { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 });
    }

    // X-Device-Position for the audit trail: where the device was when the entry was made.
    devicePosition() {
      const f = this.fix;
      return f ? [util.round(f.lon, 7), util.round(f.lat, 7), util.round(f.accuracy, 1)].join(",") : null;
    }

    async queuePhoto(target, file, label) {
      await this.outbox.add(Object.assign({ kind: "photo", photo: file, photoName: file.name || "photo.jpg",
        label: "Photo of " + label + " (" + util.round(file.size / 1048576, 1) + " MB)", position: this.devicePosition() }, target));
      this.toast("Photo saved for " + label + (navigator.onLine ? ": sending." : " (saved on this device)."));
    }

    // The server's answer to a sent entry updates what the device keeps.
    async sent(entry, body) {
      this.sentCount = (this.sentCount || 0) + 1;
      if (body && body.type === "Feature" && body.geometry) await this.store.put("cameras", body);
      await this.refresh();
    }

    signInAgain() {
      $("cap-sign-in").hidden = false;
      this.showTab("outbox");
      this.alert("Your session has ended: sign in again to send the outbox. Nothing is lost.");
    }

    alert(text) {
      const box = $("cap-alert");
      box.textContent = text;
      box.hidden = !text;
    }

    toast(text) {
      const m = $("cap-form-message");
      m.textContent = text;
      m.classList.remove("cap-bad");
      const note = $("cap-nearby-note");
      if (this.tab === "nearby") note.textContent = text;
    }

    async refresh() {
      await this.survey.load();
      this.survey.render();
      this.view.showCameras(this.survey.all(), this.survey.selected && this.survey.selected.id);
      await this.panel.render();
    }
  }

  async function start() {
    const config = JSON.parse($("safermap-config").textContent);
    let store;
    try {
      store = await C.store.open("safermap-capture-" + config.partnership.slug + "-" + config.user.id);
    } catch (e) {
      $("cap-alert").hidden = false;
      $("cap-alert").textContent = "This browser will not keep data on the device (private mode?): entries cannot wait for a signal.";
      return;
    }
    const app = window.saferCapture = new App(config, store);
    await app.start();
    app.ready = true;
  }

  start();
})();
