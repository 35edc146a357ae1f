/* The safe walking routes page /maps/routes: set a start and an end, get the shortest walk and the
 * safest ones beside it with their figures and an explanation, print an A4 sheet, share a link that
 * reopens the same routes; analysts publish routes for the partnership.
 *
 * Parts, each a plain script registered on SaferMapRoutes and loaded before this one
 * (app/pages/routes.py lists them): format.js (numbers, query strings), search.js (the form, street
 * names, my position), results.js (walks, cards, directions, links), published.js (the published
 * routes). Data reaches the page through textContent only (SaferMapCommon.el). */
(function (R) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el;

  function background(map, config) {
    map.createPane("sm-background").style.zIndex = 250;
    [[config.links.buildingTiles, "buildings", { fill: true, fillColor: "#e5e7eb", fillOpacity: 1, stroke: true, color: "#d1d5db", weight: 1 }],
     [config.links.streetTiles, "streets", { color: "#9ca3af", weight: 1.5, opacity: 0.9 }]].forEach(function (b) {
      var styles = {};
      styles[b[1]] = b[2];
      L.vectorGrid.protobuf(b[0], { pane: "sm-background", interactive: false, maxZoom: 20,
        vectorTileLayerStyles: styles, fetchOptions: { credentials: "same-origin" },
        attribution: "© OpenStreetMap contributors (ODbL)" }).addTo(map);
    });
  }

  R.start = function (map, configId) {
    var config = JSON.parse(document.getElementById(configId).textContent);
    var ui = common.pageFrame(map, "sm-rt", "Safe walking routes", "Route", config.partnership.name, config.links.overview);
    background(map, config);
    if (config.bounds) map.fitBounds(config.bounds);
    var error = el("p", "sm-rt-error");
    error.setAttribute("role", "alert");
    error.hidden = true;

    var ctx = { map: map, config: config, ui: ui, ends: {}, markers: {}, active: "from" };
    ctx.showError = function (message) { error.textContent = message; error.hidden = false; };
    ctx.setActive = function (key) {
      ctx.active = key;
      map.getContainer().classList.add("sm-rt-picking");
    };
    ctx.setEnd = function (key, end) {
      ctx.ends[key] = end;
      form.fields[key].input.value = end.label || R.fmt.point(end);
      if (ctx.markers[key]) ctx.markers[key].remove();
      ctx.markers[key] = L.circleMarker([end.lat, end.lon], { radius: 9, color: "#111827", weight: 3,
        fillColor: key === "from" ? "#ffffff" : "#111827", fillOpacity: 1 }).addTo(map)
        .bindTooltip(key === "from" ? "Start" : "End");
      if (key === "from" && !ctx.ends.to) ctx.active = "to";
      if (ctx.ends.from && ctx.ends.to) ctx.run();
    };
    ctx.request = function () {
      if (!ctx.ends.from || !ctx.ends.to) return null;
      var p = form.params();
      return { from: R.fmt.point(ctx.ends.from), to: R.fmt.point(ctx.ends.to), profile: p.profile,
               max_detour: p.max_detour, time: p.time };
    };
    ctx.run = function () {
      var q = ctx.request();
      if (!q) { ctx.showError("Set a start and an end: type a street, use your position, or click the map."); return; }
      error.hidden = true;
      var qs = R.fmt.query(q);
      history.replaceState(null, "", config.links.page + "?" + qs);
      common.fetchJson(config.links.routes + "?" + qs).then(function (body) { results.show(body, qs); })
        .catch(function (err) { results.clear(); ctx.showError(err.message); });
    };

    var form = R.search(ctx);
    ui.side.appendChild(error);
    var results = R.results(ctx);
    R.published(ctx);
    map.on("click", function (e) {
      ctx.setEnd(ctx.active, { lon: e.latlng.lng, lat: e.latlng.lat, label: null });
    });

    // A link carries the request: reopen the same routes.
    var params = new URLSearchParams(window.location.search);
    var a = R.fmt.parsePoint(params.get("from")), b = R.fmt.parsePoint(params.get("to"));
    form.restore({ profile: params.get("profile"), max_detour: params.get("max_detour"), time: params.get("time") });
    if (a) ctx.setEnd("from", { lon: a.lon, lat: a.lat, label: null });
    if (b) ctx.setEnd("to", { lon: b.lon, lat: b.lat, label: null });
    window.saferRoutes = ctx;  // for the page tests
  };
})(window.SaferMapRoutes = window.SaferMapRoutes || {});
