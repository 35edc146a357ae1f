/* The CCTV control-room page: every camera coloured by status (faults ringed and listed), what each
 * covers, the gaps, and the two footage tools: who could have seen a spot at a time, and the walking
 * path between related incidents. Operators also get camera siting.
 *
 * This file wires the page together; each part is its own script under static/coverage/, loaded
 * before this one (app/pages/coverage.py lists them in order) and registered on SaferMapCoverage:
 *   format.js     UK times, numbers, query strings         widgets.js    the panels' small DOM pieces
 *   bar.js        the bar: brand, counts, live line        filters.js    owner/monitored filters, styles
 *   freshness.js  TileJSON ETag checks, redraws            faults.js     the faults panel
 *   footage.js    who could have seen it                   path.js       the path between incidents
 *   gaps.js       coverage and gap figures                 siting.js     where new cameras would help
 *
 * Layers come from the catalog through safermap-layers.js; the camera list, faults, gap figures
 * and footage lists come from the JSON API. Data reaches the page through textContent only
 * (SaferMapCommon.el); Leaflet's layer names and attribution, inserted as HTML, are escaped.
 */
(function (cov) {
  "use strict";

  var common = window.SaferMapCommon;
  var shared = window.SaferMapLayers;
  var el = common.el;
  var REFRESH_AFTER_CAMERA_CHANGE = ["cameras", "coverage", "coverage_bands", "coverage_union", "gaps"];
  var MODES = [["browse", "Camera details"], ["who", "Who could have seen it"], ["path", "Path between incidents"]];

  // The catalog's layers, background first; points are added first so cameras show before coverage.
  function addLayers(room, filters, onFeatureClick) {
    var map = room.map, config = room.config, grids = room.grids;
    config.background.forEach(function (layer) {
      grids[layer.id] = shared.makeLayer(map, layer, { interactive: false });
      grids[layer.id].addTo(map);
    });
    var overlays = {};
    config.layers.forEach(function (layer) {
      grids[layer.id] = shared.makeLayer(map, layer, { style: filters.styleWith(layer), onClick: onFeatureClick });
      overlays[shared.layerName(layer)] = grids[layer.id];
    });
    var rank = { point: 0, line: 1, polygon: 2 };
    config.layers.slice().sort(function (a, b) { return rank[a.geometry] - rank[b.geometry]; })
      .forEach(function (layer) { if (layer.visible) grids[layer.id].addTo(map); });
    overlays['<span class="sm-layer-name">Faulty cameras (red rings)</span>'] = room.marks.faults;
    L.control.layers(null, overlays, { collapsed: room.narrow, position: "topright" }).addTo(map);
    // Folded unless the screen has room for it beside the map's subject.
    var legend = shared.legendControl({ layers: config.layers }, room.narrow || window.innerWidth < 1800);
    legend.addTo(map);
    var faultLegend = el("section");
    var faultRow = el("div", "sm-legend-row");
    faultRow.appendChild(el("span", "sm-swatch sm-swatch-round sm-cov-swatch-fault"));
    faultRow.appendChild(el("span", null, "Faulty camera (ringed at every zoom)"));
    faultLegend.appendChild(faultRow);
    legend.getContainer().appendChild(faultLegend);
    shared.updateZoomHints(map, config.layers);
    map.on("zoomend", function () { shared.updateZoomHints(map, config.layers); });
  }

  // What a click on the map does: browse (popups), who (could have seen it) or path (add an incident).
  function modeSwitch(room) {
    var side = room.ui.side;
    var box = el("div", "sm-cov-modes");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "What a click on the map does");
    side.appendChild(box);
    var buttons = {};
    MODES.forEach(function (m) {
      var b = cov.widgets.button(m[1], "sm-cov-mode", function () { room.setMode(m[0]); });
      b.id = "sm-cov-mode-" + m[0];
      b.setAttribute("aria-pressed", "false");
      buttons[m[0]] = b;
      box.appendChild(b);
    });
    var hint = el("p", "sm-cov-hint");
    hint.id = "sm-cov-mode-hint";
    side.appendChild(hint);
    return { buttons: buttons, hint: hint };
  }

  function start(map, configId) {
    var config = JSON.parse(document.getElementById(configId).textContent);
    var room = {
      map: map,
      config: config,
      ui: cov.bar.frame(map, config),
      narrow: window.innerWidth < 1000 || shared.coarsePointer,
      state: {
        mode: "browse",        // browse (popups) | who | path
        owner: null,           // null: every owner; else an owner's name, or "" for none recorded
        monitored: "",         // "" | "yes" | "no"
        cameras: [],           // every camera of the partnership, from the API
        byId: {},
      },
      grids: {},
    };
    var state = room.state;
    if (map.attributionControl) map.attributionControl.setPrefix(false);
    if (config.bounds) map.fitBounds(config.bounds, { padding: [24, 24], maxZoom: 17, animate: false });
    map.createPane("sm-cov-marks").style.zIndex = 460;
    room.marks = {
      faults: L.layerGroup().addTo(map),
      who: L.layerGroup().addTo(map),
      path: L.layerGroup().addTo(map),
      sites: L.layerGroup().addTo(map),
    };

    var filters = cov.filters(room, function () { faults.show(); });
    addLayers(room, filters, onFeatureClick);
    var modes = modeSwitch(room);
    var who = cov.whoPanel(room);
    var path = cov.pathPanel(room, who.time);
    var faults = cov.faultsPanel(room, filters.passes);
    var gaps = cov.gapsPanel(room);
    gaps.siting = config.can.site ? cov.sitingTool(room, gaps.box, function () {
      freshness.refresh(REFRESH_AFTER_CAMERA_CHANGE);
      loadCameras();
      gaps.load();
    }) : null;
    var freshness = cov.freshness(room, function (changed) {
      if (changed.indexOf("cameras") >= 0) loadCameras();
      if (changed.indexOf("coverage_union") >= 0 || changed.indexOf("gaps") >= 0) gaps.load();
    });

    room.setMode = function (mode) {
      state.mode = mode;
      Object.keys(modes.buttons).forEach(function (k) { modes.buttons[k].setAttribute("aria-pressed", String(k === mode)); });
      who.box.hidden = mode !== "who";
      path.box.hidden = mode !== "path";
      // Each tool's marks show while it is in use (and come back with it).
      [["who", room.marks.who], ["path", room.marks.path]].forEach(function (m) {
        if (m[0] === mode) map.addLayer(m[1]); else map.removeLayer(m[1]);
      });
      map.getContainer().classList.toggle("sm-cov-picking", mode !== "browse");
      map.closePopup();
      modes.hint.textContent = mode === "browse" ? "Click a camera or its coverage for its details."
        : mode === "who" ? "Click the map where it happened (or use the map centre)."
        : "Click the map at each related incident, in time order (" + config.path.min + " to " + config.path.max + ").";
    };

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

    // The camera list (every page of it): counts, owners for the filter, faults, filtered styles.
    function loadCameras() {
      var all = [];
      function page(url) {
        return common.fetchJson(url).then(function (fc) {
          all = all.concat(fc.features || []);
          if (!fc.next) return all;
          var next = new URL(fc.next, window.location.href);
          return page(next.pathname + next.search);
        });
      }
      return page(cov.format.withQuery(config.links.cameras, { limit: 10000 })).then(function (features) {
        state.cameras = features;
        state.byId = {};
        features.forEach(function (f) { state.byId[f.id] = f; });
        cov.bar.showCounts(room.ui.counts, features);
        filters.ownerOptions();
        faults.show();
        filters.restyle();
      });
    }

    room.setMode("browse");
    if (!config.bounds) {
      map.getContainer().appendChild(el("div", "sm-note sm-note-empty", "No cameras yet for " + config.partnership.name + "."));
    }
    loadCameras().catch(function (err) { room.ui.counts.textContent = "Cameras: " + err.message; });
    gaps.load();
    freshness.start();

    // For tests and for people poking at the page from the console.
    window.saferCoverage = { map: map, layers: room.grids, marks: room.marks, config: config, state: state,
      check: freshness.check, who: who, path: path, setMode: room.setMode, gaps: gaps };
    return window.saferCoverage;
  }

  cov.start = start;
  cov.ukNowInput = cov.format.ukNowInput;
  cov.deadlineState = cov.format.deadlineState;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
