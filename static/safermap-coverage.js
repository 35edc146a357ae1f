/* The CCTV control-room page: every camera coloured by status (faults ringed and listed), what each
 * covers, the gaps, and the two footage tools: who could have seen a spot at a time, and the walking
 * path between related incidents. Operators also get camera siting.
 *
 * Layers come from the catalog through safermap-layers.js; the camera list, faults, gap figures
 * and footage lists come from the JSON API. Every layer's TileJSON ETag is checked every
 * `refresh_seconds`, and a layer whose data changed is drawn again, so the map is never stale;
 * the header says when it last checked, or that it could not.
 *
 * The owner and monitored filters restyle features already drawn (no new tile requests): hidden
 * features get no stroke and no fill, so they neither show nor take clicks. They apply to the
 * cameras, their coverage and their bands; the union and the gaps are of all cameras.
 *
 * Data reaches the page through textContent only (SaferMapCommon.el); Leaflet's layer names and
 * attribution, which are inserted as HTML, are escaped.
 */
(function () {
  "use strict";

  var common = window.SaferMapCommon;
  var shared = window.SaferMapLayers;
  var el = common.el, fetchJson = common.fetchJson;
  var UK = "Europe/London";
  var DAY_MS = 24 * 3600 * 1000;
  var FAULT_RING = "#7f1d1d";
  var HIDDEN = { stroke: false, fill: false };  // drawn as nothing, takes no clicks
  var LETTERS = "ABCDEFGHIJ";
  var FILTERED = { cameras: true, coverage: true, coverage_bands: true };
  var REFRESH_AFTER_CAMERA_CHANGE = ["cameras", "coverage", "coverage_bands", "coverage_union", "gaps"];

  // -- times: the control room reads UK local time ------------------------------------------------

  function ukParts(date) {
    var out = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: UK, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23",
    }).formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }

  // The value of a datetime-local input for now in the UK ("2026-03-01T22:15"); the API reads a
  // time without an offset as Europe/London.
  function ukNowInput() {
    var p = ukParts(new Date());
    return p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute;
  }

  function ukClock(date) {
    var p = ukParts(date);
    return p.hour + ":" + p.minute + ":" + p.second;
  }

  function ukTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return new Intl.DateTimeFormat("en-GB", {
      timeZone: UK, weekday: "short", day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(d);
  }

  function ukHourMinute(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : ukParts(d).hour + ":" + ukParts(d).minute;
  }

  // Expired (red), due within `days` (amber), or in time.
  function deadlineState(entry, days) {
    if (entry.expired) return "expired";
    var left = new Date(entry.request_by).getTime() - Date.now();
    return left < days * DAY_MS ? "due-soon" : "ok";
  }

  function number(n) { return Number(n).toLocaleString("en-GB"); }
  function percent(share) { return share === null || share === undefined ? null : (share * 100).toFixed(1) + "%"; }
  function metres(m) { return m < 1000 ? Math.round(m) + " m" : (m / 1000).toFixed(2) + " km"; }

  function withQuery(url, params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      (Array.isArray(v) ? v : [v]).forEach(function (one) {
        if (one !== undefined && one !== null && one !== "") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(one));
      });
    });
    return parts.length ? url + "?" + parts.join("&") : url;
  }

  function fixed(x) { return Math.round(x * 1e7) / 1e7; }

  // -- small DOM pieces -----------------------------------------------------------------------------

  function button(text, className, onClick) {
    var b = el("button", "sm-button" + (className ? " " + className : ""), text);
    b.type = "button";
    if (onClick) b.addEventListener("click", onClick);
    return b;
  }

  function field(parent, labelText, input, className) {
    var label = el("label", "sm-cov-field" + (className ? " " + className : ""));
    label.appendChild(el("span", null, labelText));
    label.appendChild(input);
    parent.appendChild(label);
    return input;
  }

  function message(parent, className) {
    var p = el("p", "sm-cov-message" + (className ? " " + className : ""));
    p.setAttribute("role", "status");
    parent.appendChild(p);
    return p;
  }

  function section(parent, id, title) {
    var box = el("section", "sm-cov-section");
    box.id = id;
    var heading = el("h2", null, title);
    heading.id = id + "-title";
    box.setAttribute("aria-labelledby", heading.id);
    box.appendChild(heading);
    parent.appendChild(box);
    return { box: box, heading: heading };
  }

  // A numbered or lettered mark on the map (the text goes in as a text node).
  function markIcon(text, className) {
    return L.divIcon({ className: "sm-cov-mark " + className, html: el("span", null, text),
      iconSize: [26, 26], iconAnchor: [13, 13] });
  }

  // What a footage list says about one camera: who, how to reach them, how good the view, by when.
  function cameraEntry(entry, index, config, extra) {
    var item = el("li", "sm-cov-camera");
    var head = el("div", "sm-cov-camera-head");
    head.appendChild(el("span", "sm-cov-num", index));
    var who = el("span", "sm-cov-camera-who");
    who.appendChild(el("strong", null, entry.reference));
    if (entry.name) who.appendChild(el("span", "sm-cov-camera-name", entry.name));
    head.appendChild(who);
    item.appendChild(head);
    var facts = el("dl", "sm-cov-facts");
    function fact(label, value, className) {
      facts.appendChild(el("dt", null, label));
      var dd = facts.appendChild(el("dd", className || null, value));
      return dd;
    }
    fact("Owner", entry.owner_agency || "not recorded");
    fact("Contact", entry.contact || "not recorded");
    fact("Monitored", entry.monitored ? "Yes" : "No");
    fact("View", (entry.band ? entry.band : "no quality band") +
      (entry.distance_m !== undefined && entry.distance_m !== null ? ", " + Math.round(entry.distance_m) + " m away" : "") +
      (entry.coverage_assumed ? " (coverage assumed)" : ""));
    if (extra) extra(fact);
    var state = deadlineState(entry, config.due_soon_days);
    var deadline = fact("Request by", ukTime(entry.request_by) +
      (state === "expired" ? " — expired" : state === "due-soon" ? " — due soon" : "") +
      (entry.retention_assumed ? " (31 days assumed)" : ""), "sm-cov-deadline sm-cov-" + state);
    deadline.setAttribute("data-state", state);
    if (!entry.status_known) fact("Status then", "not known (registered later): " + entry.status_at_time);
    item.appendChild(facts);
    return item;
  }

  // A tool's results: a line saying where, the cameras, those not working then, and a print link.
  function cameraLists(box, listId, printText, printId) {
    var where = el("p", "sm-cov-where");
    box.appendChild(where);
    var list = el("ol", "sm-cov-cameras");
    list.id = listId;
    box.appendChild(list);
    var faultyTitle = el("h3", "sm-cov-subtitle");
    box.appendChild(faultyTitle);
    var faultyList = el("ol", "sm-cov-cameras sm-cov-not-operational");
    box.appendChild(faultyList);
    var print = el("a", "sm-button sm-cov-print", printText);
    print.id = printId;
    print.target = "_blank";
    print.rel = "noopener";
    print.hidden = true;
    box.appendChild(print);
    return { where: where, list: list, faultyTitle: faultyTitle, faultyList: faultyList, print: print };
  }

  // -- the page's frame: a bar on top, the map and the side panel beside it ---------------------------

  function frame(map, config) {
    var f = common.pageFrame(map, "sm-cov", "CCTV control room", "Control room", config.partnership.name,
                             config.links.overview);
    var bar = f.bar, side = f.side;

    var counts = el("div", "sm-cov-counts");
    counts.id = "sm-cov-counts";
    counts.setAttribute("aria-live", "polite");
    bar.appendChild(counts);

    var filters = el("form", "sm-cov-filters");
    filters.setAttribute("aria-label", "Filter cameras and coverage");
    bar.appendChild(filters);

    var right = el("div", "sm-cov-bar-right");
    var live = el("p", "sm-cov-live");
    live.id = "sm-cov-live";
    live.setAttribute("role", "status");
    right.appendChild(live);
    var who = el("div", "sm-cov-user");
    who.appendChild(el("span", null, config.user.name + " (" + config.user.role + ")"));
    who.appendChild(button("Sign out", "sm-cov-sign-out", function () {
      fetch(config.links.session, { method: "DELETE", credentials: "same-origin" })
        .finally(function () { window.location.assign(config.links.signIn); });
    }));
    right.appendChild(who);
    bar.appendChild(right);
    map.invalidateSize();
    return { bar: bar, side: side, counts: counts, filters: filters, live: live };
  }

  // -- start ----------------------------------------------------------------------------------------

  function start(map, configId) {
    var config = JSON.parse(document.getElementById(configId).textContent);
    var links = config.links;
    var ui = frame(map, config);
    var narrow = window.innerWidth < 1000 || shared.coarsePointer;
    if (map.attributionControl) map.attributionControl.setPrefix(false);
    if (config.bounds) map.fitBounds(config.bounds, { padding: [24, 24], maxZoom: 17, animate: false });

    var state = {
      mode: "browse",        // browse (popups) | who | path
      owner: null,           // null: every owner; else an owner's name, or "" for none recorded
      monitored: "",         // "" | "yes" | "no"
      cameras: [],           // every camera of the partnership, from the API
      byId: {},
    };
    var grids = {};
    var etags = {};
    map.createPane("sm-cov-marks").style.zIndex = 460;
    var marks = {
      faults: L.layerGroup().addTo(map),
      who: L.layerGroup().addTo(map),
      path: L.layerGroup().addTo(map),
      sites: L.layerGroup().addTo(map),
    };

    // -- filters --
    function passes(layerId, props) {
      if (!FILTERED[layerId]) return true;
      var cam = props.camera_id !== undefined ? state.byId[props.camera_id] : null;
      var owner = props.owner_agency !== undefined ? props.owner_agency : cam ? cam.properties.owner_agency : null;
      if (state.owner !== null && (owner || "") !== state.owner) return false;
      if (state.monitored) {
        var monitored = props.monitored !== undefined ? props.monitored : cam ? cam.properties.monitored : undefined;
        if (monitored === undefined) return true;  // not known: shown rather than hidden
        if ((monitored === true) !== (state.monitored === "yes")) return false;
      }
      return true;
    }

    function styleWith(layer) {
      return function (base) {
        return function (props, zoom) {
          var style = base(props, zoom);
          if (layer.id === "cameras" && props.status === "faulty") {
            // Faults stand out: bigger, with a dark red ring round the red dot.
            style = L.extend({}, style, { radius: style.radius + 4, color: FAULT_RING, weight: 3 });
          }
          // A hidden feature keeps its size (a restyle does not redraw a circle's outline).
          return passes(layer.id, props) ? style : L.extend({}, style, HIDDEN);
        };
      };
    }

    // Restyle what is drawn (VectorGrid keeps each tile's features by id); new tiles take the
    // current filter from the style function itself.
    function restyle(grid) {
      var style = grid.options.vectorTileLayerStyles[grid.options.layerId];
      Object.keys(grid._vectorTiles || {}).forEach(function (key) {
        var tile = grid._vectorTiles[key];
        Object.keys(tile._features || {}).forEach(function (id) {
          grid._updateStyles(tile._features[id].feature, tile, style);
        });
      });
    }

    // -- layers --
    config.background.forEach(function (layer) {
      grids[layer.id] = shared.makeLayer(map, layer, { interactive: false });
      grids[layer.id].addTo(map);
    });
    var overlays = {};
    config.layers.forEach(function (layer) {
      grids[layer.id] = shared.makeLayer(map, layer, { style: styleWith(layer), onClick: onFeatureClick });
      overlays[shared.layerName(layer)] = grids[layer.id];
    });
    var rank = { point: 0, line: 1, polygon: 2 };  // points first: cameras show before coverage
    config.layers.slice().sort(function (a, b) { return rank[a.geometry] - rank[b.geometry]; })
      .forEach(function (layer) { if (layer.visible) grids[layer.id].addTo(map); });
    overlays['<span class="sm-layer-name">Faulty cameras (red rings)</span>'] = marks.faults;
    L.control.layers(null, overlays, { collapsed: narrow, position: "topright" }).addTo(map);
    // Folded unless the screen has room for it beside the map's subject.
    var legend = shared.legendControl({ layers: config.layers }, narrow || window.innerWidth < 1800);
    legend.addTo(map);
    var faultLegend = el("section");
    var faultRow = el("div", "sm-legend-row");
    faultRow.appendChild(el("span", "sm-swatch sm-swatch-round sm-cov-swatch-fault"));
    faultRow.appendChild(el("span", null, "Faulty camera (ringed at every zoom)"));
    faultLegend.appendChild(faultRow);
    legend.getContainer().appendChild(faultLegend);
    shared.updateZoomHints(map, config.layers);
    map.on("zoomend", function () { shared.updateZoomHints(map, config.layers); });

    // -- the side panel --
    var side = ui.side;
    var modes = el("div", "sm-cov-modes");
    modes.setAttribute("role", "group");
    modes.setAttribute("aria-label", "What a click on the map does");
    side.appendChild(modes);
    var modeButtons = {};
    [["browse", "Camera details"], ["who", "Who could have seen it"], ["path", "Path between incidents"]]
      .forEach(function (m) {
        var b = button(m[1], "sm-cov-mode", function () { setMode(m[0]); });
        b.id = "sm-cov-mode-" + m[0];
        b.setAttribute("aria-pressed", "false");
        modeButtons[m[0]] = b;
        modes.appendChild(b);
      });
    var modeHint = el("p", "sm-cov-hint");
    modeHint.id = "sm-cov-mode-hint";
    side.appendChild(modeHint);

    var who = whoPanel();
    var path = pathPanel();
    var faults = faultsPanel();
    var gaps = gapsPanel();

    function setMode(mode) {
      state.mode = mode;
      Object.keys(modeButtons).forEach(function (k) { modeButtons[k].setAttribute("aria-pressed", String(k === mode)); });
      who.box.hidden = mode !== "who";
      path.box.hidden = mode !== "path";
      // Each tool's marks show while it is in use (and come back with it).
      [["who", marks.who], ["path", marks.path]].forEach(function (m) {
        if (m[0] === mode) map.addLayer(m[1]); else map.removeLayer(m[1]);
      });
      map.getContainer().classList.toggle("sm-cov-picking", mode !== "browse");
      map.closePopup();
      modeHint.textContent = mode === "browse" ? "Click a camera or its coverage for its details."
        : mode === "who" ? "Click the map where it happened (or use the map centre)."
        : "Click the map at each related incident, in time order (" + config.path.min + " to " + config.path.max + ").";
    }

    // A click on a feature in a picking mode is a click on the map there, not a popup.
    function onFeatureClick(e) {
      if (state.mode === "browse") return false;
      if (e.originalEvent) e.originalEvent._smPicked = true;
      picked(e.latlng);
      return true;
    }
    map.on("click", function (e) {
      if (state.mode === "browse" || (e.originalEvent && e.originalEvent._smPicked)) return;
      picked(e.latlng);
    });
    function picked(latlng) {
      if (state.mode === "who") who.lookup(latlng);
      else if (state.mode === "path") path.add(latlng);
    }

    // -- who could have seen it --
    function whoPanel() {
      var s = section(side, "sm-cov-who", "Who could have seen it");
      var box = s.box;
      var form = el("form", "sm-cov-form");
      box.appendChild(form);
      var at = field(form, "Date and time (UK)", el("input"));
      at.type = "datetime-local";
      at.name = "at";
      at.step = 60;
      at.value = ukNowInput();
      at.max = at.value;
      at.required = true;
      var row = el("div", "sm-cov-row");
      form.appendChild(row);
      row.appendChild(button("Use the map centre", "sm-cov-centre", function () { lookup(map.getCenter()); }));
      var now = button("Now", "sm-cov-now", function () { at.value = ukNowInput(); at.max = at.value; again(); });
      row.appendChild(now);
      var status = message(box);
      var out = cameraLists(box, "sm-cov-who-list", "Printable footage-request list", "sm-cov-who-print");
      var where = out.where, list = out.list, faultyTitle = out.faultyTitle;
      var faultyList = out.faultyList, print = out.print;
      box.appendChild(el("p", "sm-cov-hint", "Every camera whose coverage (buildings taken into account) held the spot " +
        "and that was working then, nearest first, whatever the map filters. Footage is usually kept 28–31 days."));
      var last = null;
      var generation = 0;

      function again() { if (last) lookup(last); }
      at.addEventListener("change", again);
      form.addEventListener("submit", function (e) { e.preventDefault(); again(); });

      function lookup(latlng) {
        last = latlng;
        var gen = ++generation;
        if (!at.value) { status.textContent = "Give the date and time."; return; }
        var params = { lon: fixed(latlng.lng), lat: fixed(latlng.lat), at: at.value };
        marks.who.clearLayers();
        L.marker(latlng, { icon: markIcon("?", "sm-cov-mark-spot"), keyboard: false, interactive: false }).addTo(marks.who);
        status.textContent = "Looking…";
        status.classList.remove("sm-cov-error");
        fetchJson(withQuery(links.at, params)).then(function (body) {
          if (gen !== generation) return;
          show(body, params);
        }).catch(function (err) {
          if (gen !== generation) return;
          status.textContent = err.message;
          status.classList.add("sm-cov-error");
          list.textContent = "";
          faultyList.textContent = "";
          faultyTitle.textContent = "";
          print.hidden = true;
        });
      }

      function show(body, params) {
        list.textContent = "";
        faultyList.textContent = "";
        var n = body.cameras.length;
        status.textContent = n ? n + (n === 1 ? " camera" : " cameras") + " could have seen it." : "No working camera covered this spot then.";
        where.textContent = "At " + ukTime(body.at) + ", " + body.point.lat.toFixed(5) + ", " + body.point.lon.toFixed(5);
        body.cameras.forEach(function (c, i) {
          var item = cameraEntry(c, i + 1, config);
          item.addEventListener("click", function () { map.panTo([c.lat, c.lon]); });
          list.appendChild(item);
          L.marker([c.lat, c.lon], { icon: markIcon(String(i + 1), "sm-cov-mark-camera"), keyboard: false,
            title: c.reference }).addTo(marks.who);
        });
        faultyTitle.textContent = body.not_operational.length
          ? "Faulty at that time (" + body.not_operational.length + "): ask the owner whether it recorded" : "";
        body.not_operational.forEach(function (c, i) { faultyList.appendChild(cameraEntry(c, "!" , config)); });
        print.href = withQuery(links.footageRequest, params);
        print.hidden = false;
      }

      return { box: box, lookup: lookup, list: list };
    }

    // -- the path between related incidents --
    function pathPanel() {
      var s = section(side, "sm-cov-path", "Path between incidents");
      var box = s.box;
      box.appendChild(el("p", "sm-cov-hint", "Each incident must be within " + config.path.snap_max_m +
        " m of a street. Give each its time; the walk between them is timed evenly."));
      var points = [];
      var rows = el("ol", "sm-cov-points");
      rows.id = "sm-cov-points";
      box.appendChild(rows);
      var form = el("div", "sm-cov-row");
      box.appendChild(form);
      var margin = field(form, "Minutes either side", el("input"), "sm-cov-margin");
      margin.type = "number";
      margin.min = 0;
      margin.max = 240;
      margin.value = config.path.margin_minutes;
      var buttons = el("div", "sm-cov-row");
      box.appendChild(buttons);
      var build = button("Build pack", "sm-cov-primary", buildPack);
      build.id = "sm-cov-build";
      buttons.appendChild(build);
      buttons.appendChild(button("Add the map centre", null, function () { add(map.getCenter()); }));
      buttons.appendChild(button("Clear", null, clear));
      var status = message(box);
      status.id = "sm-cov-path-message";
      var out = cameraLists(box, "sm-cov-path-list", "Print pack", "sm-cov-print-pack");
      var summary = out.where, list = out.list, faultyTitle = out.faultyTitle;
      var faultyList = out.faultyList, print = out.print;
      var drawn = L.layerGroup().addTo(marks.path);
      var pointMarks = L.layerGroup().addTo(marks.path);

      function renumber() {
        pointMarks.clearLayers();
        points.forEach(function (p, i) {
          p.letter.textContent = LETTERS[i];
          p.row.setAttribute("aria-label", "Incident " + LETTERS[i]);
          p.remove.setAttribute("aria-label", "Remove incident " + LETTERS[i]);
          L.marker(p.latlng, { icon: markIcon(LETTERS[i], "sm-cov-mark-incident" + (p.error ? " sm-cov-mark-error" : "")),
            keyboard: false, interactive: false }).addTo(pointMarks);
        });
        build.disabled = points.length < config.path.min;
      }

      function stale() {
        drawn.clearLayers();
        list.textContent = "";
        faultyList.textContent = "";
        faultyTitle.textContent = "";
        summary.textContent = "";
        print.hidden = true;
      }

      function add(latlng) {
        if (points.length >= config.path.max) {
          status.textContent = "At most " + config.path.max + " incidents in one pack.";
          return;
        }
        var row = el("li", "sm-cov-point");
        var letter = el("span", "sm-cov-num sm-cov-letter");
        row.appendChild(letter);
        var inputs = el("div", "sm-cov-point-inputs");
        row.appendChild(inputs);
        var at = field(inputs, "Time (UK)", el("input"));
        at.type = "datetime-local";
        at.step = 60;
        at.required = true;
        at.max = ukNowInput();
        at.value = points.length ? points[points.length - 1].at.value : who.box.querySelector("input[name=at]").value || ukNowInput();
        var label = field(inputs, "Label (optional)", el("input"));
        label.type = "text";
        label.maxLength = 100;
        label.placeholder = points.length ? "e.g. phone found" : "e.g. robbery";
        var remove = button("Remove", "sm-cov-remove", function () {
          points.splice(points.indexOf(point), 1);
          rows.removeChild(row);
          stale();
          renumber();
        });
        row.appendChild(remove);
        var point = { latlng: latlng, at: at, label: label, row: row, letter: letter, remove: remove, error: false };
        [at, label].forEach(function (input) { input.addEventListener("change", stale); });
        points.push(point);
        rows.appendChild(row);
        status.textContent = "";
        stale();
        renumber();
      }

      function clear() {
        points.splice(0, points.length);
        rows.textContent = "";
        status.textContent = "";
        status.classList.remove("sm-cov-error");
        stale();
        renumber();
      }

      function incidents() {
        return points.map(function (p) {
          return { lon: fixed(p.latlng.lng), lat: fixed(p.latlng.lat), at: p.at.value, label: p.label.value.trim() };
        });
      }

      function buildPack() {
        points.forEach(function (p) { p.error = false; p.row.classList.remove("sm-cov-error"); });
        var missing = points.filter(function (p) { return !p.at.value; });
        if (missing.length) { status.textContent = "Give a time for every incident."; status.classList.add("sm-cov-error"); return; }
        var body = { incidents: incidents(), margin_minutes: Number(margin.value) || 0 };
        status.textContent = "Finding the path…";
        status.classList.remove("sm-cov-error");
        stale();
        build.disabled = true;
        fetchJson(links.path, { method: "POST", body: body }).then(function (pack) {
          status.textContent = "";
          show(pack, body);
        }).catch(function (err) {
          status.textContent = err.message;
          status.classList.add("sm-cov-error");
          var i = err.problem && err.problem.incident;
          if (typeof i === "number" && points[i]) { points[i].error = true; points[i].row.classList.add("sm-cov-error"); }
        }).finally(function () { renumber(); });
      }

      function show(pack, body) {
        var line = pack.path.coordinates.map(function (c) { return [c[1], c[0]]; });
        L.polyline(line, { pane: "sm-cov-marks", color: "#ffffff", weight: 8, opacity: 0.9, interactive: false }).addTo(drawn);
        L.polyline(line, { pane: "sm-cov-marks", color: "#111827", weight: 4, opacity: 0.95, interactive: false }).addTo(drawn);
        summary.textContent = "Walking path " + metres(pack.length_m) + " · " + pack.cameras.length +
          (pack.cameras.length === 1 ? " camera" : " cameras") + " along it, windows widened by " + pack.margin_minutes + " min.";
        pack.cameras.forEach(function (c, i) {
          var item = cameraEntry(c, i + 1, config, function (fact) {
            fact("Window", ukTime(c.window_start) + " – " + ukHourMinute(c.window_end));
            fact("Along path", metres(c.distance_along_m));
          });
          item.addEventListener("click", function () { map.panTo([c.lat, c.lon]); });
          list.appendChild(item);
          L.marker([c.lat, c.lon], { icon: markIcon(String(i + 1), "sm-cov-mark-camera"), keyboard: false,
            title: c.reference }).addTo(drawn);
        });
        faultyTitle.textContent = pack.not_operational.length
          ? "Faulty at that time (" + pack.not_operational.length + "): ask the owner whether it recorded" : "";
        pack.not_operational.forEach(function (c) { faultyList.appendChild(cameraEntry(c, "!", config)); });
        print.href = withQuery(links.footagePack, {
          incident: body.incidents.map(function (p) { return [p.lon, p.lat, p.at, p.label].join(","); }),
          margin_minutes: body.margin_minutes,
        });
        print.hidden = false;
        map.fitBounds(L.latLngBounds(line).pad(0.15), { maxZoom: 18 });
      }

      renumber();
      return { box: box, add: add, clear: clear, list: list };
    }

    // -- faults --
    function faultsPanel() {
      var s = section(side, "sm-cov-faults", "Faults");
      var list = el("ul", "sm-cov-fault-list");
      list.id = "sm-cov-fault-list";
      s.box.appendChild(list);
      var note = el("p", "sm-cov-hint");
      s.box.appendChild(note);

      function show() {
        var all = state.cameras.filter(function (f) { return f.properties.status === "faulty"; });
        var shown = all.filter(function (f) { return passes("cameras", f.properties); });
        s.heading.textContent = "Faults (" + all.length + ")";
        list.textContent = "";
        marks.faults.clearLayers();
        note.textContent = all.length === shown.length ? (all.length ? "" : "No camera is marked faulty.")
          : (all.length - shown.length) + " more hidden by the filters.";
        shown.forEach(function (f) {
          var p = f.properties;
          var latlng = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
          var item = el("li");
          var b = el("button", "sm-cov-fault");
          b.type = "button";
          var head = b.appendChild(el("span", "sm-cov-fault-head"));
          head.appendChild(el("strong", null, p.reference));
          if (p.name) head.appendChild(el("span", null, p.name));
          b.appendChild(el("span", "sm-cov-fault-owner", (p.owner_agency || "Owner not recorded") +
            (p.monitored ? " · monitored" : "")));
          b.addEventListener("click", function () {
            map.setView(latlng, Math.max(map.getZoom(), 18));
            L.popup({ maxWidth: 320 }).setLatLng(latlng).setContent(faultPopup(f)).openOn(map);
          });
          item.appendChild(b);
          list.appendChild(item);
          L.circleMarker(latlng, { radius: 14, color: "#dc2626", weight: 3, fill: false, interactive: false,
            pane: "sm-cov-marks", className: "sm-cov-fault-ring" }).addTo(marks.faults);
        });
      }

      function faultPopup(f) {
        var p = f.properties;
        var box = el("div", "sm-popup");
        box.appendChild(el("h3", "sm-popup-title", p.reference));
        box.appendChild(el("p", "sm-popup-layer", "Faulty camera"));
        var dl = el("dl");
        [["Name", p.name], ["Owner", p.owner_agency], ["Contact", p.contact], ["Monitored", p.monitored ? "Yes" : "No"],
          ["Type", p.camera_type], ["Notes", p.notes]].forEach(function (r) {
          dl.appendChild(el("dt", null, r[0]));
          dl.appendChild(el("dd", null, r[1] === undefined || r[1] === null || r[1] === "" ? "—" : r[1]));
        });
        box.appendChild(dl);
        return box;
      }

      return { show: show, list: list };
    }

    // -- the camera list: counts, owners for the filter, faults --
    function loadCameras() {
      var all = [];
      function page(url) {
        return fetchJson(url).then(function (fc) {
          all = all.concat(fc.features || []);
          if (!fc.next) return all;
          var next = new URL(fc.next, window.location.href);
          return page(next.pathname + next.search);
        });
      }
      return page(withQuery(links.cameras, { limit: 10000 })).then(function (features) {
        state.cameras = features;
        state.byId = {};
        features.forEach(function (f) { state.byId[f.id] = f; });
        showCounts();
        ownerOptions();
        faults.show();
        Object.keys(FILTERED).forEach(function (id) { if (grids[id]) restyle(grids[id]); });
      });
    }

    function showCounts() {
      var by = {};
      state.cameras.forEach(function (f) { by[f.properties.status] = (by[f.properties.status] || 0) + 1; });
      ui.counts.textContent = "";
      ui.counts.appendChild(el("strong", null, number(state.cameras.length) + " cameras"));
      [["operational", "working"], ["faulty", "faulty"], ["planned", "planned"], ["decommissioned", "decommissioned"]]
        .forEach(function (s) {
          if (!by[s[0]]) return;
          var span = el("span", "sm-cov-count sm-cov-count-" + s[0], number(by[s[0]]) + " " + s[1]);
          ui.counts.appendChild(span);
        });
    }

    // -- filters in the bar --
    var ownerSelect = field(ui.filters, "Owner", el("select"));
    ownerSelect.id = "sm-cov-owner";
    var monitoredSelect = field(ui.filters, "Monitored", el("select"));
    monitoredSelect.id = "sm-cov-monitored";
    [["", "Monitored or not"], ["yes", "Monitored only"], ["no", "Not monitored"]].forEach(function (o) {
      monitoredSelect.appendChild(el("option", null, o[1])).value = o[0];
    });
    var owners = [];
    function ownerOptions() {
      var counts = {};
      state.cameras.forEach(function (f) { var o = f.properties.owner_agency || ""; counts[o] = (counts[o] || 0) + 1; });
      owners = Object.keys(counts).sort(function (a, b) { return a === "" ? 1 : b === "" ? -1 : a.localeCompare(b); });
      var chosen = state.owner;
      ownerSelect.textContent = "";
      ownerSelect.appendChild(el("option", null, "All owners (" + number(state.cameras.length) + ")")).value = "all";
      owners.forEach(function (o, i) {
        var opt = ownerSelect.appendChild(el("option", null, (o || "Owner not recorded") + " (" + counts[o] + ")"));
        opt.value = String(i);
        if (chosen !== null && o === chosen) opt.selected = true;
      });
      if (chosen !== null && owners.indexOf(chosen) < 0) state.owner = null;
    }
    function applyFilters() {
      state.owner = ownerSelect.value === "all" ? null : owners[Number(ownerSelect.value)];
      if (state.owner === undefined) state.owner = null;
      state.monitored = monitoredSelect.value;
      Object.keys(FILTERED).forEach(function (id) { if (grids[id]) restyle(grids[id]); });
      faults.show();
    }
    ownerSelect.addEventListener("change", applyFilters);
    monitoredSelect.addEventListener("change", applyFilters);
    ui.filters.addEventListener("submit", function (e) { e.preventDefault(); applyFilters(); });
    var filterHint = "Filters the cameras, their coverage and bands (the union and the gaps are of all cameras).";
    ui.filters.title = filterHint;
    ui.filters.appendChild(el("span", "sm-cov-filter-hint", filterHint));

    // -- coverage gaps and siting --
    function gapsPanel() {
      var s = section(side, "sm-cov-gaps", "Coverage and gaps");
      var box = s.box;
      var figures = el("div", "sm-cov-figures");
      figures.id = "sm-cov-gap-figures";
      box.appendChild(figures);
      var status = message(box);
      var notes = el("p", "sm-cov-hint");
      box.appendChild(notes);
      var generation = 0;

      // `null` is a figure held back (too few incidents to show); `undefined` one with nothing to count.
      function figure(parent, label, now, planned, id) {
        var row = el("div", "sm-cov-figure");
        if (id) row.id = id;
        row.appendChild(el("span", "sm-cov-figure-label", label));
        [["sm-cov-figure-now", now], ["sm-cov-figure-planned", planned]].forEach(function (cell) {
          row.appendChild(el("span", cell[0], cell[1] === null ? "held back" : cell[1] === undefined ? "—" : cell[1]));
        });
        parent.appendChild(row);
      }

      // A share, or why there is none: no incidents placed (undefined), or held back (null).
      function shareOf(group) {
        if (!group || group.placed === 0) return undefined;
        return percent(group.share_covered);
      }

      function load() {
        var gen = ++generation;
        status.textContent = "Counting…";
        fetchJson(withQuery(links.gaps, { planned: "true", clusters: 0, areas: 0 })).then(function (body) {
          if (gen !== generation) return;
          status.textContent = "";
          show(body);
        }).catch(function (err) { if (gen === generation) status.textContent = err.message; });
      }

      function show(body) {
        figures.textContent = "";
        var now = body.current, planned = body.with_planned || body.current;
        var head = el("div", "sm-cov-figure sm-cov-figure-head");
        head.appendChild(el("span", "sm-cov-figure-label", ""));
        head.appendChild(el("span", "sm-cov-figure-now", "Now"));
        head.appendChild(el("span", "sm-cov-figure-planned", "With planned"));
        figures.appendChild(head);
        var t = now.totals, tp = planned.totals;
        figure(figures, "Incidents in working cameras' view", shareOf(t), shareOf(tp), "sm-cov-share");
        function coveredOf(g) {
          if (!g || g.placed === 0) return undefined;
          return g.covered === null ? null : number(g.covered) + " of " + number(g.placed);
        }
        figure(figures, "Covered incidents", coveredOf(t), coveredOf(tp));
        figure(figures, "Street length in view", percent(now.streets.share_covered) || undefined,
          percent(planned.streets.share_covered) || undefined);
        (now.by_category || []).slice(0, 5).forEach(function (c) {
          var p = (planned.by_category || []).filter(function (x) { return x.category === c.category; })[0];
          figure(figures, c.category, shareOf(c), shareOf(p));
        });
        var cov = body.coverage;
        var words = [number(cov.operational_cameras) + " working, " + number(cov.planned_cameras) + " planned and " +
          number(cov.faulty_cameras) + " faulty cameras (faulty ones cover nothing here)."];
        if (t && (t.unknown_position || t.no_location)) {
          words.push(number((t.unknown_position || 0) + (t.no_location || 0)) + " incidents cannot be placed (counts only, or no location).");
        }
        if (t && t.suppressed) words.push("Counts under " + body.suppress_below + " are held back, as you do not see every incident exactly.");
        if (config.synthetic.length) words.push("Demonstration data: " + config.synthetic.join(", ") + " is synthetic, not real crime.");
        words.push("Incidents sit where your sharing level places them (anonymous points below exact).");
        notes.textContent = words.join(" ");
      }

      var siting = config.can.site ? sitingTool(box, load) : null;
      return { load: load, siting: siting };
    }

    function sitingTool(parent, reloadFigures) {
      var box = el("div", "sm-cov-siting");
      box.id = "sm-cov-siting";
      parent.appendChild(box);
      box.appendChild(el("h3", "sm-cov-subtitle", "Where new cameras would help most"));
      var row = el("div", "sm-cov-row");
      box.appendChild(row);
      var k = field(row, "Sites", el("select"), "sm-cov-k");
      for (var i = 1; i <= 10; i++) k.appendChild(el("option", null, String(i))).value = String(i);
      k.value = String(config.siting_k);
      var inView = el("input");
      inView.type = "checkbox";
      var inViewLabel = el("label", "sm-cov-check");
      inViewLabel.appendChild(inView);
      inViewLabel.appendChild(el("span", null, "Only in the map view"));
      row.appendChild(inViewLabel);
      var suggest = button("Suggest sites", "sm-cov-primary", run);
      suggest.id = "sm-cov-suggest";
      box.appendChild(suggest);
      var status = message(box);
      var list = el("ol", "sm-cov-sites");
      list.id = "sm-cov-sites";
      box.appendChild(list);
      box.appendChild(el("p", "sm-cov-hint", "Each site covers the most incidents no working or planned camera covers " +
        "(30 m dome, line of sight past buildings). Adding one as planned shows its effect in the figures above."));

      function run() {
        var params = { k: k.value, planned: "true" };
        if (inView.checked) params.bbox = map.getBounds().toBBoxString();
        status.textContent = "Searching…";
        suggest.disabled = true;
        list.textContent = "";
        marks.sites.clearLayers();
        fetchJson(withQuery(config.links.siting, params)).then(function (body) {
          status.textContent = body.picks.length ? "" : "No site would cover any more incidents.";
          body.picks.forEach(function (pick) { showPick(pick, body); });
        }).catch(function (err) { status.textContent = err.message; })
          .finally(function () { suggest.disabled = false; });
      }

      function showPick(pick, body) {
        var latlng = [pick.lat, pick.lon];
        L.geoJSON(pick.coverage, { pane: "sm-cov-marks", interactive: false,
          style: { color: "#7c3aed", weight: 2, dashArray: "5 4", fillColor: "#a78bfa", fillOpacity: 0.25 } }).addTo(marks.sites);
        L.marker(latlng, { icon: markIcon("S" + pick.rank, "sm-cov-mark-site"), keyboard: false, interactive: false }).addTo(marks.sites);
        var item = el("li", "sm-cov-site");
        var head = el("div", "sm-cov-camera-head");
        head.appendChild(el("span", "sm-cov-num sm-cov-num-site", "S" + pick.rank));
        head.appendChild(el("strong", null, pick.gain === null ? "a few more incidents" : "+" + number(pick.gain) +
          (pick.gain === 1 ? " incident" : " incidents")));
        item.appendChild(head);
        item.appendChild(el("p", "sm-cov-site-after", pick.share_after === null ? "" : "Share covered after it: " + percent(pick.share_after)));
        var show = button("Show on map", null, function () { map.setView(latlng, Math.max(map.getZoom(), 17)); });
        show.setAttribute("aria-label", "Show site S" + pick.rank + " on the map");
        item.appendChild(show);
        if (config.can.add_camera) {
          var add = button("Add as planned", "sm-cov-add", function () { addPlanned(pick, body, add, item); });
          add.setAttribute("aria-label", "Add site S" + pick.rank + " as a planned camera");
          item.appendChild(add);
        }
        list.appendChild(item);
      }

      function addPlanned(pick, body, add, item) {
        var p = ukParts(new Date());
        var reference = "SITE-" + p.year + p.month + p.day + "-" + p.hour + p.minute + p.second + "-" + pick.rank;
        var props = { reference: reference, name: "Proposed site " + pick.rank, status: "planned",
          camera_type: body.fov >= 360 ? "dome" : "fixed", fov: body.fov, range_m: body.range_m,
          notes: "Suggested by camera siting" + (pick.gain === null ? "" : ": +" + pick.gain + " incidents") + "." };
        if (pick.bearing !== null) props.bearing = pick.bearing;
        add.disabled = true;
        fetchJson(config.links.cameras, { method: "POST", body: {
          type: "Feature", geometry: { type: "Point", coordinates: [pick.lon, pick.lat] }, properties: props,
        } }).then(function () {
          add.textContent = "Added as " + reference;
          item.classList.add("sm-cov-site-added");
          refreshLayers(REFRESH_AFTER_CAMERA_CHANGE);
          loadCameras();
          reloadFigures();
        }).catch(function (err) {
          add.disabled = false;
          status.textContent = err.message;
        });
      }

      return { run: run, list: list };
    }

    // -- never stale: check each drawn layer's TileJSON ETag, redraw what changed --
    function refreshLayers(ids) {
      ids.forEach(function (id) {
        if (grids[id] && map.hasLayer(grids[id])) grids[id].redraw();
        delete etags[id];
      });
    }

    function check() {
      var ids = Object.keys(grids).filter(function (id) { return map.hasLayer(grids[id]); });
      return Promise.all(ids.map(function (id) {
        return fetch(links.tilejson.replace("{layer}", encodeURIComponent(id)),
          { credentials: "same-origin", cache: "no-cache" }).then(function (r) {
          if (!r.ok) throw new Error(r.status === 401 ? "signed out" : "the server answered " + r.status);
          var tag = r.headers.get("ETag");
          var changed = etags[id] !== undefined && tag !== etags[id];
          etags[id] = tag;
          return changed ? id : null;
        });
      })).then(function (changed) {
        changed = changed.filter(Boolean);
        if (changed.length) {
          changed.forEach(function (id) { grids[id].redraw(); });
          if (changed.indexOf("cameras") >= 0) loadCameras();
          if (changed.indexOf("coverage_union") >= 0 || changed.indexOf("gaps") >= 0) gaps.load();
        }
        ui.live.classList.remove("sm-cov-error");
        ui.live.textContent = (changed.length ? "Updated " : "Live · checked ") + ukClock(new Date());
      }).catch(function (err) {
        ui.live.classList.add("sm-cov-error");
        ui.live.textContent = "Not live: " + err.message + " (" + ukClock(new Date()) + ")";
      });
    }
    setInterval(check, config.refresh_seconds * 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) check(); });
    map.on("overlayadd", function () { check(); });

    setMode("browse");
    if (!config.bounds) {
      map.getContainer().appendChild(el("div", "sm-note sm-note-empty", "No cameras yet for " + config.partnership.name + "."));
    }
    loadCameras().catch(function (err) { ui.counts.textContent = "Cameras: " + err.message; });
    gaps.load();
    check();

    // For tests and for people poking at the page from the console.
    window.saferCoverage = { map: map, layers: grids, marks: marks, config: config, state: state, check: check,
      who: who, path: path, setMode: setMode, gaps: gaps };
    return window.saferCoverage;
  }

  window.SaferMapCoverage = { start: start, ukNowInput: ukNowInput, deadlineState: deadlineState };
})();
