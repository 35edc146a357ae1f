/* The tasking page: hotspot map, filter bar, always-visible legend and period, top hotspots beside
 * the map, optional Gi* and change layers, and print exports for the meeting pack.
 *
 * The server embeds the default period, the data sets and the endpoint URLs; everything else is
 * fetched for the filters chosen. Data reaches the page through textContent only (SaferMapCommon.el);
 * Leaflet's attribution, which inserts HTML, gets escaped text.
 */
(function () {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el, colour = common.colour, escapeHtml = common.escapeHtml, fetchJson = common.fetchJson;
  var MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December"];
  var LEVEL_WORDS = { exact: "exact positions", sanitised: "anonymous points", aggregate: "counts only" };
  // Gi* classes: hot reds and cold blues, darker with more confidence (ColorBrewer RdBu).
  var GISTAR = {
    hot: { 99: "#b2182b", 95: "#ef8a62", 90: "#fddbc7" },
    cold: { 99: "#2166ac", 95: "#67a9cf", 90: "#d1e5f0" },
  };
  var ROSE = "#c2410c", FELL = "#1d4ed8";
  var TOP_N = 10;

  // -- periods ----------------------------------------------------------------------------------

  function monthIndex(ym) { return Number(ym.slice(0, 4)) * 12 + Number(ym.slice(5, 7)) - 1; }
  function monthOf(index) {
    var m = index % 12 + 1;
    return Math.floor(index / 12) + "-" + (m < 10 ? "0" : "") + m;
  }
  function monthName(ym) { return MONTHS[Number(ym.slice(5, 7)) - 1] + " " + ym.slice(0, 4); }
  function isMonthStart(iso) { return iso.length === 7 || iso.slice(8, 10) === "01"; }
  function isMonthEnd(iso) {
    if (iso.length === 7) return true;
    var d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + 1);
    return d.getUTCDate() === 1;
  }

  // "March 2024", "January – March 2024", or the ISO dates when the period is not whole months.
  function periodLabel(from, to) {
    if (!from || !to) return "All months";
    if (!isMonthStart(from) || !isMonthEnd(to)) return from + " – " + to;
    var a = from.slice(0, 7), b = to.slice(0, 7);
    if (a === b) return monthName(a);
    if (a.slice(0, 4) === b.slice(0, 4)) return MONTHS[Number(a.slice(5, 7)) - 1] + " – " + monthName(b);
    return monthName(a) + " – " + monthName(b);
  }

  function number(n) { return Number(n).toLocaleString("en-GB"); }

  // -- the request --------------------------------------------------------------------------------

  function query(state, extra) {
    var parts = [];
    function add(k, v) { parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v)); }
    if (state.from) add("from", state.from);
    if (state.to) add("to", state.to);
    state.categories.forEach(function (c) { add("category", c); });
    state.datasets.forEach(function (d) { add("dataset", d); });
    if (state.classes !== "stddev") add("classes", state.classes);
    Object.keys(extra || {}).forEach(function (k) { if (extra[k]) add(k, extra[k]); });
    return parts.join("&");
  }

  function withQuery(url, qs) { return qs ? url + "?" + qs : url; }

  // -- the page's frame: bar on top, map and top list side by side ---------------------------------

  function frame(map, config) {
    var f = common.pageFrame(map, "sm-hs", "Hotspots", "Top hotspots", config.partnership.name, "/maps/overview");
    var bar = f.bar, side = f.side;
    var period = el("div", "sm-hs-period");
    period.id = "sm-hs-period";
    period.setAttribute("aria-live", "polite");
    bar.appendChild(period);
    var form = el("form", "sm-hs-filters");
    form.setAttribute("aria-label", "Filters");
    bar.appendChild(form);
    map.invalidateSize();
    return { bar: bar, side: side, form: form, period: period };
  }

  function field(parent, labelText, input) {
    var label = el("label", "sm-hs-field");
    label.appendChild(el("span", null, labelText));
    label.appendChild(input);
    parent.appendChild(label);
    return input;
  }

  // A drop-down of checkboxes; none ticked means all.
  function checkList(parent, title, allText, onChange) {
    var box = el("details", "sm-hs-checklist");
    var summary = el("summary", null, title + ": " + allText);
    box.appendChild(summary);
    var list = el("div", "sm-hs-checklist-items");
    box.appendChild(list);
    parent.appendChild(box);
    var inputs = [];
    function selected() { return inputs.filter(function (i) { return i.checked; }).map(function (i) { return i.value; }); }
    function describe() {
      var s = selected();
      summary.textContent = title + ": " + (s.length === 0 ? allText : s.length === 1 ? s[0] : s.length + " chosen");
    }
    function set(items, chosen) {
      list.textContent = "";
      inputs = [];
      var clear = el("button", "sm-button sm-hs-clear", "Show " + allText);
      clear.type = "button";
      clear.addEventListener("click", function () { inputs.forEach(function (i) { i.checked = false; }); describe(); onChange(); });
      list.appendChild(clear);
      items.forEach(function (item) {
        var label = el("label", "sm-hs-check");
        var input = el("input");
        input.type = "checkbox";
        input.value = item.value;
        input.checked = chosen.indexOf(item.value) >= 0;
        input.addEventListener("change", function () { describe(); onChange(); });
        label.appendChild(input);
        label.appendChild(el("span", null, item.label));
        list.appendChild(label);
        inputs.push(input);
      });
      describe();
    }
    set([], []);
    return { element: box, selected: selected, set: set };
  }

  // -- legend -------------------------------------------------------------------------------------

  function legendControl() {
    var control = L.control({ position: "bottomleft" });
    var parts = {};
    control.onAdd = function () {
      var box = el("section", "sm-hs-legend leaflet-bar");
      box.id = "sm-hs-legend";
      box.setAttribute("aria-label", "Legend");
      // Title and period stay in view however far the legend is scrolled.
      var head = box.appendChild(el("div", "sm-hs-legend-head"));
      head.appendChild(el("h2", null, "Hotspot density"));
      parts.period = head.appendChild(el("p", "sm-hs-legend-period"));
      parts.filters = box.appendChild(el("p", "sm-hs-legend-filters"));
      parts.classes = box.appendChild(el("div", "sm-hs-legend-classes"));
      parts.method = box.appendChild(el("p", "sm-hs-legend-method"));
      parts.count = box.appendChild(el("p", "sm-hs-legend-count"));
      parts.extra = box.appendChild(el("div", "sm-hs-legend-extra"));
      parts.note = box.appendChild(el("p", "sm-hs-note"));
      parts.note.id = "sm-hs-sanitised-note";
      parts.message = box.appendChild(el("p", "sm-hs-message"));
      parts.message.setAttribute("role", "status");
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      parts.box = box;
      return box;
    };
    control.parts = parts;
    return control;
  }

  function swatch(fill, border) {
    var s = el("span", "sm-hs-swatch");
    s.style.backgroundColor = fill;
    s.style.borderColor = border || fill;
    return s;
  }

  function legendRow(parent, fill, text, border) {
    var row = el("div", "sm-hs-legend-row");
    row.appendChild(swatch(fill, border));
    row.appendChild(el("span", null, text));
    parent.appendChild(row);
  }

  var METHOD_WORDS = {
    stddev: "Classes: standard deviations above the mean density.",
    quantile: "Classes: quantiles (equal shares of the mapped cells).",
  };

  function showLegend(parts, legend) {
    parts.classes.textContent = "";
    // Highest class on top: the eye reads the hottest first.
    (legend.classes || []).slice().reverse().forEach(function (c) {
      legendRow(parts.classes, colour(c.colour, "#999999"), c.label);
    });
    var units = legend.units || "incidents per km²";
    parts.method.textContent = "Quartic kernel density, " + units + " (cell " + number(Math.round(legend.cell_m)) +
      " m, bandwidth " + number(Math.round(legend.bandwidth_m)) + " m). " + (METHOD_WORDS[legend.method] || "");
    parts.count.textContent = (legend.count === null ? "Too few incidents to show" : number(legend.count) + " incidents mapped") +
      (legend.unplaced ? "; " + number(legend.unplaced) + " counted but not mapped" : "") + ".";
  }

  // What the map is made of: the sharing levels of the data sets in the filter (known when the page
  // opens) and, once the legend has come, what the surface was actually built from.
  function sharingNote(config, state, legend) {
    var chosen = config.datasets.filter(function (d) { return !state.datasets.length || state.datasets.indexOf(d.key) >= 0; });
    var byLevel = {};
    chosen.forEach(function (d) { (byLevel[d.level] = byLevel[d.level] || []).push(d.name); });
    var sanitised = legend ? legend.sanitised : !!byLevel.sanitised;
    var notes = [];
    if (legend && legend.suppressed) notes.push("Fewer than " + config.suppress_below + " incidents: the surface is held back.");
    if (sanitised) {
      notes.push("Sanitised data shown: " + (byLevel.sanitised ? byLevel.sanitised.join(", ") + " at" : "some incidents at") +
        " anonymous points (on or near a street), not their exact places.");
    }
    if (byLevel.aggregate) notes.push(byLevel.aggregate.join(", ") + ": counts only, not in the surface.");
    if (legend && legend.unplaced) notes.push(number(legend.unplaced) + " incidents are counted but not mapped (no location, or counts only).");
    if (sanitised || byLevel.aggregate) notes.push("Counts below " + config.suppress_below + " are held back.");
    var synthetic = chosen.filter(function (d) { return d.synthetic; }).map(function (d) { return d.name; });
    if (synthetic.length) notes.push("Demonstration data: " + synthetic.join(", ") + " is synthetic, not real crime.");
    return notes.join(" ");
  }

  // -- top hotspots -------------------------------------------------------------------------------

  function changeText(change) {
    if (change === null || change === undefined) return "";
    if (change > 0) return "▲ +" + number(change);
    if (change < 0) return "▼ " + number(change);
    return "no change";
  }

  function countText(count, k) { return count === null || count === undefined ? "fewer than " + k : number(count); }

  function coverageText(area) {
    if (area.share_in_coverage !== null && area.share_in_coverage !== undefined) {
      return Math.round(area.share_in_coverage * 100) + "% in working camera view";
    }
    if (area.cameras_inside !== null && area.cameras_inside !== undefined) {
      return area.cameras_inside + (area.cameras_inside === 1 ? " camera inside" : " cameras inside");
    }
    return "";
  }

  // -- start --------------------------------------------------------------------------------------

  function start(map, configId) {
    var config = JSON.parse(document.getElementById(configId).textContent);
    var links = config.links;
    var ui = frame(map, config);
    if (map.attributionControl) map.attributionControl.setPrefix(false);
    if (config.bounds) {
      // Leave the legend's corner free, so the data opens beside it rather than under it.
      var legendRoom = Math.min(380, map.getSize().x / 3);
      map.fitBounds(config.bounds, { paddingTopLeft: [legendRoom, 24], paddingBottomRight: [24, 24], maxZoom: 16,
        animate: false });
    }

    var initial = config.filter;
    var state = {
      from: initial.from ? initial.from.slice(0, 7) : "",
      to: initial.to ? initial.to.slice(0, 7) : "",
      categories: initial.categories.slice(),
      datasets: initial.datasets.slice(),
      classes: "stddev",
      title: "",
      gistar: false,
      change: false,
      compare: "previous",
    };

    // Background: the app's own streets and buildings, below everything.
    map.createPane("sm-background").style.zIndex = 250;
    map.createPane("sm-hotspots").style.zIndex = 350;
    map.createPane("sm-analysis").style.zIndex = 420;
    map.createPane("sm-top").style.zIndex = 440;
    var background = {};
    config.background.forEach(function (layer) {
      var st = layer.style;
      var styles = {};
      styles[layer.id] = layer.geometry === "polygon"
        ? { fill: true, fillColor: colour(st.fill_color || st.color, "#e5e7eb"), fillOpacity: st.fill_opacity,
            stroke: true, color: colour(st.color, "#d1d5db"), weight: st.weight }
        : { color: colour(st.color, "#9ca3af"), weight: st.weight, opacity: 0.9 };
      background[layer.id] = L.vectorGrid.protobuf(layer.tiles, {
        pane: "sm-background", interactive: false, minZoom: layer.minzoom, maxZoom: layer.maxzoom,
        vectorTileLayerStyles: styles, fetchOptions: { credentials: "same-origin" },
        attribution: layer.attribution ? escapeHtml(layer.attribution) : undefined,
      }).addTo(map);
    });

    var hotspots = L.tileLayer(withQuery(links.tiles, query(state)), {
      pane: "sm-hotspots", opacity: 0.8, maxZoom: 20, tileSize: 256,
      attribution: config.attribution ? escapeHtml(config.attribution) : undefined,
    }).addTo(map);

    var legend = legendControl();
    legend.addTo(map);
    var parts = legend.parts;
    // Never taller than the map: a legend cut off at the top would hide the period.
    function fitLegend() {
      var mapBox = map.getContainer().getBoundingClientRect();
      var below = mapBox.bottom - parts.box.getBoundingClientRect().bottom;  // the scale bar, margins
      parts.box.style.maxHeight = Math.max(120, mapBox.height - below - 10) + "px";
    }
    fitLegend();
    map.on("resize", fitLegend);

    // -- the filter bar --
    var form = ui.form;
    var periodBox = el("div", "sm-hs-group");
    form.appendChild(periodBox);
    var from = field(periodBox, "From", el("input"));
    var to = field(periodBox, "To", el("input"));
    [from, to].forEach(function (input) {
      input.type = "month";
      input.pattern = "[0-9]{4}-[0-9]{2}";
      input.required = true;
      if (config.months) { input.min = config.months[0]; input.max = config.months[1]; }
    });
    from.name = "from";
    to.name = "to";
    from.value = state.from;
    to.value = state.to;

    var picks = el("div", "sm-hs-group sm-hs-picks");
    form.appendChild(picks);
    function pick(text, id, compute) {
      var b = el("button", "sm-button sm-hs-pick", text);
      b.type = "button";
      b.id = id;
      b.disabled = !config.latest;
      b.addEventListener("click", function () {
        var p = compute(monthIndex(config.latest));
        from.value = monthOf(p[0]);
        to.value = monthOf(p[1]);
        apply();
      });
      picks.appendChild(b);
    }
    pick("Latest month", "sm-hs-pick-latest", function (m) { return [m, m]; });
    pick("Last 3 months", "sm-hs-pick-3", function (m) { return [m - 2, m]; });
    pick("Same month last year", "sm-hs-pick-last-year", function () {
      var m = monthIndex(from.value || config.latest);
      return [m - 12, m - 12];
    });

    var choose = el("div", "sm-hs-group");
    form.appendChild(choose);
    var categories = checkList(choose, "Categories", "all", function () { apply(); });
    var datasets = null;
    if (config.datasets.length > 1) {  // one data set needs no choice
      datasets = checkList(choose, "Data", "all data sets", function () { apply(); });
      datasets.set(config.datasets.map(function (d) {
        return { value: d.key, label: d.name + " (" + (LEVEL_WORDS[d.level] || d.level) + ")" };
      }), state.datasets);
    }
    var classes = field(choose, "Classes", el("select"));
    classes.name = "classes";
    [["stddev", "Standard deviations"], ["quantile", "Quantiles"]].forEach(function (o) {
      classes.appendChild(el("option", null, o[1])).value = o[0];
    });
    classes.addEventListener("change", function () { apply(); });

    var toggles = el("div", "sm-hs-group sm-hs-toggles");
    form.appendChild(toggles);
    function toggle(text, name) {
      var label = el("label", "sm-hs-check");
      var input = el("input");
      input.type = "checkbox";
      input.name = name;
      label.appendChild(input);
      label.appendChild(el("span", null, text));
      toggles.appendChild(label);
      input.addEventListener("change", function () { state[name] = input.checked; refreshLayers(); });
      return input;
    }
    toggle("Significant hot and cold spots (Gi*)", "gistar");
    toggle("Change", "change");
    var compare = field(choose, "Change against", el("select"));
    compare.name = "compare";
    [["previous", "The period before"], ["last_year", "The same period last year"]].forEach(function (o) {
      compare.appendChild(el("option", null, o[1])).value = o[0];
    });
    compare.addEventListener("change", function () { apply(); });

    var message = el("p", "sm-hs-message sm-hs-filter-message");
    message.setAttribute("role", "status");
    form.appendChild(message);
    form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
    [from, to].forEach(function (input) { input.addEventListener("change", function () { apply(); }); });

    // -- the side panel: top hotspots and the print buttons --
    var side = ui.side;
    side.appendChild(el("h2", null, "Top hotspots"));
    var sidePeriod = side.appendChild(el("p", "sm-hs-side-period"));
    var topList = side.appendChild(el("ol", "sm-hs-top"));
    topList.id = "sm-hs-top";
    var topMessage = side.appendChild(el("p", "sm-hs-message"));
    topMessage.setAttribute("role", "status");
    var printBox = side.appendChild(el("div", "sm-hs-print"));
    printBox.appendChild(el("h3", null, "Meeting pack"));
    var titleInput = field(printBox, "Title on the print", el("input"));
    titleInput.type = "text";
    titleInput.maxLength = 120;
    titleInput.placeholder = "Hotspots — " + config.partnership.name;
    var buttons = printBox.appendChild(el("div", "sm-hs-print-buttons"));
    var printPng = buttons.appendChild(el("a", "sm-button sm-hs-print-button", "Print PNG"));
    printPng.id = "sm-hs-print-png";
    var printPdf = buttons.appendChild(el("a", "sm-button sm-hs-print-button", "Print PDF"));
    printPdf.id = "sm-hs-print-pdf";
    [printPng, printPdf].forEach(function (a) { a.setAttribute("download", ""); });
    printBox.appendChild(el("p", "sm-hs-hint", "A4 landscape with legend, period, scale bar, north arrow, sources and " +
      "the sanitisation note. Drawing it takes a few seconds."));
    function compareParam() { return state.compare === "previous" ? "" : state.compare; }
    function updatePrintLinks() {
      var extra = { compare: compareParam(), title: titleInput.value.trim() };
      printPng.href = withQuery(links.printPng, query(state, extra));
      printPdf.href = withQuery(links.printPdf, query(state, extra));
    }
    titleInput.addEventListener("input", updatePrintLinks);

    var analysis = { gistar: null, change: null };
    var topLayer = L.featureGroup([], { pane: "sm-top" }).addTo(map);
    var generation = 0;

    function refreshLayers() {
      var gen = generation;
      ["gistar", "change"].forEach(function (name) {
        if (analysis[name]) { map.removeLayer(analysis[name]); analysis[name] = null; }
      });
      parts.extra.textContent = "";
      if (state.gistar) {
        fetchJson(withQuery(links.gistar, query(state))).then(function (fc) {
          if (gen !== generation || !state.gistar) return;
          analysis.gistar = L.geoJSON(fc, {
            pane: "sm-analysis",
            filter: function (f) { return f.properties["class"] === "hot" || f.properties["class"] === "cold"; },
            style: function (f) {
              var c = (GISTAR[f.properties["class"]] || {})[f.properties.confidence] || "#999999";
              return { color: c, weight: 1, fillColor: c, fillOpacity: 0.55 };
            },
            onEachFeature: function (f, layer) {
              var p = f.properties;
              var box = el("div", "sm-popup");
              box.appendChild(el("h3", "sm-popup-title", (p["class"] === "hot" ? "Hot spot" : "Cold spot") +
                (p.confidence ? ", " + p.confidence + "% confidence" : "")));
              box.appendChild(el("p", null, (p.count === null ? "Few" : number(p.count)) + " incidents in this cell; z = " +
                Number(p.z).toFixed(2) + ", FDR-adjusted p = " + Number(p.q).toPrecision(2)));
              layer.bindPopup(box);
            },
          }).addTo(map);
          var sec = parts.extra.appendChild(el("div", "sm-hs-legend-section"));
          sec.id = "sm-hs-legend-gistar";
          sec.appendChild(el("h3", null, "Gi* hot and cold spots"));
          [99, 95, 90].forEach(function (c) { legendRow(sec, GISTAR.hot[c], "Hot spot, " + c + "% confidence"); });
          [99, 95, 90].forEach(function (c) { legendRow(sec, GISTAR.cold[c], "Cold spot, " + c + "% confidence"); });
          sec.appendChild(el("p", "sm-hs-hint", "Getis-Ord Gi* with a false-discovery-rate correction."));
        }).catch(function (err) { if (gen === generation) parts.message.textContent = "Gi*: " + err.message; });
      }
      if (state.change) {
        fetchJson(withQuery(links.change, query(state, { compare: compareParam(), n: String(TOP_N) }))).then(function (body) {
          if (gen !== generation || !state.change) return;
          var features = (body.areas && body.areas.features) || [];
          var max = 1;
          features.forEach(function (f) { max = Math.max(max, Math.abs(Number(f.properties.change) || 0)); });
          analysis.change = L.geoJSON(body.areas, {
            pane: "sm-analysis",
            filter: function (f) { return Number(f.properties.change) !== 0 && f.properties.change !== null; },
            style: function (f) {
              var ch = Number(f.properties.change);
              var c = ch > 0 ? ROSE : FELL;
              return { color: c, weight: 1, fillColor: c, fillOpacity: 0.15 + 0.6 * Math.abs(ch) / max };
            },
            onEachFeature: function (f, layer) {
              var p = f.properties;
              var box = el("div", "sm-popup");
              box.appendChild(el("h3", "sm-popup-title", changeText(p.change)));
              box.appendChild(el("p", null, "This period " + countText(p.current, config.suppress_below) + ", before " +
                countText(p.previous, config.suppress_below)));
              layer.bindPopup(box);
            },
          }).addTo(map);
          var sec = parts.extra.appendChild(el("div", "sm-hs-legend-section"));
          sec.id = "sm-hs-legend-change";
          var prev = body.previous_period || {};
          sec.appendChild(el("h3", null, "Change against " + periodLabel(prev.from, prev.to)));
          legendRow(sec, ROSE, "Rose (darker: more)");
          legendRow(sec, FELL, "Fell (darker: more)");
        }).catch(function (err) { if (gen === generation) parts.message.textContent = "Change: " + err.message; });
      }
    }

    function showTop(body) {
      topList.textContent = "";
      topLayer.clearLayers();
      var areas = body.areas || [];
      var prev = body.previous_period || {};
      sidePeriod.textContent = periodLabel((body.period || {}).from, (body.period || {}).to) +
        (prev.from ? " · change against " + periodLabel(prev.from, prev.to) : "");
      topMessage.textContent = areas.length ? "" : "No hotspots to list for this period.";
      areas.forEach(function (area) {
        var item = el("li");
        var button = el("button", "sm-hs-top-item");
        button.type = "button";
        var head = button.appendChild(el("span", "sm-hs-top-head"));
        head.appendChild(el("span", "sm-hs-rank", area.rank));
        head.appendChild(el("span", "sm-hs-top-label", area.label || area.id));
        head.appendChild(el("span", "sm-hs-top-count", countText(area.count, config.suppress_below)));
        var ch = changeText(area.change);
        if (ch) {
          var chEl = head.appendChild(el("span", "sm-hs-top-change", ch));
          if (area.change > 0) chEl.classList.add("sm-rose");
          if (area.change < 0) chEl.classList.add("sm-fell");
        }
        var cats = (area.top_categories || []).slice(0, 3).map(function (c) {
          return c.category + (c.count === null || c.count === undefined ? "" : " " + number(c.count));
        }).join(", ");
        if (cats) button.appendChild(el("span", "sm-hs-top-cats", cats));
        var cov = coverageText(area);
        if (cov) button.appendChild(el("span", "sm-hs-top-cover", cov));
        item.appendChild(button);
        topList.appendChild(item);
        if (!area.geometry) return;
        var outline = L.geoJSON(area.geometry, {
          pane: "sm-top", style: { color: "#111827", weight: 2, fill: false, dashArray: "4 3" },
        });
        topLayer.addLayer(outline);
        // The rank sits just above the area, so it never hides the hotspot itself.
        var bounds = outline.getBounds();
        topLayer.addLayer(L.tooltip({ permanent: true, direction: "top", className: "sm-hs-rank-label", offset: [0, -2] })
          .setLatLng([bounds.getNorth(), bounds.getCenter().lng]).setContent(el("span", null, area.rank)));
        button.addEventListener("click", function () {
          var items = topList.querySelectorAll(".sm-hs-top-item");
          for (var i = 0; i < items.length; i++) items[i].classList.remove("sm-selected");
          button.classList.add("sm-selected");
          map.fitBounds(outline.getBounds(), { maxZoom: 17, padding: [40, 40] });
        });
      });
    }

    function refresh() {
      generation += 1;
      var gen = generation;
      var qs = query(state);
      hotspots.setUrl(withQuery(links.tiles, qs));
      updatePrintLinks();
      var label = periodLabel(state.from, state.to);
      ui.period.textContent = label;
      parts.period.textContent = label;
      parts.filters.textContent = "Categories: " + (state.categories.length ? state.categories.join(", ") : "all");
      parts.message.textContent = "";
      parts.note.textContent = sharingNote(config, state, null);
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", withQuery(window.location.pathname, query(state)));
      }
      fetchJson(withQuery(links.legend, qs)).then(function (body) {
        if (gen !== generation) return;
        showLegend(parts, body);
        if (body.period && body.period.from) {
          var server = periodLabel(body.period.from, body.period.to);
          ui.period.textContent = server;  // the server's word on the period is the one shown
          parts.period.textContent = server;
        }
        parts.note.textContent = sharingNote(config, state, body);
      }).catch(function (err) { if (gen === generation) parts.message.textContent = err.message; });
      fetchJson(withQuery(links.top, query(state, { n: String(TOP_N), compare: compareParam() }))).then(function (body) {
        if (gen === generation) showTop(body);
      }).catch(function (err) { if (gen === generation) topMessage.textContent = err.message; });
      refreshLayers();
    }

    function apply() {
      if (!from.value || !to.value) { message.textContent = "Choose both months."; return; }
      if (from.value > to.value) { message.textContent = "“From” must not be after “To”."; return; }
      message.textContent = "";
      state.from = from.value;
      state.to = to.value;
      state.categories = categories.selected();
      state.datasets = datasets ? datasets.selected() : state.datasets;
      state.classes = classes.value;
      state.compare = compare.value;
      refresh();
    }

    fetchJson(links.categories).then(function (body) {
      categories.set((body.categories || []).map(function (c) {
        return { value: c.name, label: c.name + (c.count === null ? "" : " (" + number(c.count) + ")") };
      }), state.categories);
    }).catch(function (err) { message.textContent = "Categories: " + err.message; });

    if (!config.latest) {
      var empty = el("div", "sm-note sm-note-empty", "No incidents yet for " + config.partnership.name + ".");
      map.getContainer().appendChild(empty);
    }
    refresh();

    // For tests and for people poking at the page from the console.
    window.saferHotspots = { map: map, config: config, state: state, hotspots: hotspots, background: background,
      analysis: analysis, top: topLayer, refresh: refresh };
    return window.saferHotspots;
  }

  window.SaferMapHotspots = { start: start, periodLabel: periodLabel, query: query };
})();
