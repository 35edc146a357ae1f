/* The overview map page: every catalog layer the caller may see, with the layers control, legend,
 * period and category filters, all driven by the JSON config the server embeds. The layers
 * themselves are drawn by safermap-layers.js.
 *
 * Every piece of data reaches the page through textContent, never innerHTML.
 */
(function () {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el;
  var layers = window.SaferMapLayers;
  var tileUrl = layers.tileUrl, makeLayer = layers.makeLayer, layerName = layers.layerName;
  var legendControl = layers.legendControl, updateZoomHints = layers.updateZoomHints;
  var coarsePointer = layers.coarsePointer;

  function filterControl(config, grids, narrow) {
    var filtered = config.layers.filter(function (l) { return l.filters.date || l.filters.category; });
    if (!filtered.length) return null;
    var months = null;
    var categories = [];
    filtered.forEach(function (l) {
      if (l.months) {
        months = months ? [l.months[0] < months[0] ? l.months[0] : months[0],
          l.months[1] > months[1] ? l.months[1] : months[1]] : l.months.slice();
      }
      l.categories.forEach(function (c) { if (categories.indexOf(c) < 0) categories.push(c); });
    });
    categories.sort();

    var control = L.control({ position: "topright" });
    control.onAdd = function () {
      var box = el("details", "sm-filters leaflet-bar");
      box.open = !narrow;
      box.appendChild(el("summary", null, "Filter " + filtered.map(function (l) { return l.title.toLowerCase(); }).join(", ")));
      var form = el("form");
      box.appendChild(form);
      var period = el("div", "sm-filter-period");
      form.appendChild(period);
      function field(labelText, input, parent) {
        var label = el("label");
        label.appendChild(el("span", null, labelText));
        label.appendChild(input);
        (parent || form).appendChild(label);
        return input;
      }
      var from = field("From", el("input"), period);
      var to = field("To", el("input"), period);
      [from, to].forEach(function (input) {
        input.type = "month";
        input.pattern = "[0-9]{4}-[0-9]{2}";
        if (months) { input.min = months[0]; input.max = months[1]; }
      });
      from.name = "from";
      to.name = "to";
      var category = field("Category", el("select"));
      category.name = "category";
      category.appendChild(el("option", null, "All categories")).value = "";
      categories.forEach(function (c) { category.appendChild(el("option", null, c)).value = c; });
      var message = el("p", "sm-filter-message");
      message.setAttribute("role", "status");
      form.appendChild(message);
      var reset = el("button", "sm-button", "Show all");
      reset.type = "reset";
      form.appendChild(reset);

      function apply() {
        var values = { from: from.value, to: to.value, category: category.value };
        if (values.from && values.to && values.from > values.to) {
          message.textContent = "“From” must not be after “To”.";
          return;
        }
        message.textContent = "";
        filtered.forEach(function (l) { grids[l.id].setUrl(tileUrl(l, values)); });
      }
      form.addEventListener("change", apply);
      form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
      form.addEventListener("reset", function () { setTimeout(apply, 0); });
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    return control;
  }

  function brandControl(config) {
    var control = L.control({ position: "topleft" });
    control.onAdd = function () {
      var box = el("div", "sm-brand leaflet-bar");
      box.appendChild(el("strong", null, "SaferMap"));
      box.appendChild(el("span", "sm-brand-partnership", config.partnership.name));
      var nav = el("nav", "sm-brand-pages");
      nav.setAttribute("aria-label", "Map pages");
      (config.pages || []).forEach(function (page) {
        var link = el("a", "sm-brand-page", page.title);
        link.href = page.href;
        nav.appendChild(link);
      });
      box.appendChild(nav);
      var who = el("span", "sm-brand-user", config.user.name + " (" + config.user.role + ")");
      box.appendChild(who);
      var out = el("button", "sm-button sm-sign-out", "Sign out");
      out.type = "button";
      out.addEventListener("click", function () {
        fetch(config.links.session, { method: "DELETE", credentials: "same-origin" })
          .finally(function () { window.location.assign(config.links.signIn); });
      });
      box.appendChild(out);
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    return control;
  }

  function syntheticNote(map, config) {
    if (!config.synthetic || !config.synthetic.length) return;
    var note = el("div", "sm-note");
    note.setAttribute("role", "note");
    note.id = "sm-synthetic-note";
    note.appendChild(el("strong", null, "Demonstration data. "));
    note.appendChild(el("span", null, "The incidents on this map are synthetic, not real crimes (" +
      config.synthetic.join(", ") + ")."));
    map.getContainer().appendChild(note);
    L.DomEvent.disableClickPropagation(note);
  }

  function start(map, configId) {
    var config = JSON.parse(document.getElementById(configId).textContent);
    // Phones and tablets start with the panels folded, so the map is what they see first.
    var narrow = window.innerWidth < 1000 || coarsePointer;

    brandControl(config).addTo(map);
    if (map.zoomControl) { map.zoomControl.remove(); map.zoomControl.addTo(map); } // below the brand
    if (map.attributionControl) map.attributionControl.setPrefix(false);

    if (config.bounds) {
      map.fitBounds(config.bounds, { padding: [32, 32], maxZoom: 17, animate: false });
    }

    var grids = {};
    var overlays = {};
    config.layers.forEach(function (layer) {
      grids[layer.id] = makeLayer(map, layer);
      overlays[layerName(layer)] = grids[layer.id];
    });
    // Points first: their tiles are requested first, so cameras show before the buildings do.
    var rank = { point: 0, line: 1, polygon: 2 };
    config.layers.slice().sort(function (a, b) { return rank[a.geometry] - rank[b.geometry]; })
      .forEach(function (layer) { if (layer.visible) grids[layer.id].addTo(map); });
    L.control.layers(null, overlays, { collapsed: narrow, position: "topright" }).addTo(map);
    var filters = filterControl(config, grids, narrow);
    if (filters) filters.addTo(map);
    legendControl(config, narrow).addTo(map);
    syntheticNote(map, config);
    if (!config.bounds) {
      var empty = el("div", "sm-note sm-note-empty", "No cameras or incidents yet for " + config.partnership.name + ".");
      map.getContainer().appendChild(empty);
    }

    updateZoomHints(map, config.layers);
    map.on("zoomend", function () { updateZoomHints(map, config.layers); });

    // For tests and for people poking at the page from the console.
    window.saferMap = { map: map, layers: grids, config: config };
    return window.saferMap;
  }

  window.SaferMap = { start: start, tileUrl: tileUrl };
})();
