/* Safe walking routes page: the partnership's published routes (the `safe_routes` layer), listed
 * and drawn dashed; analysts may publish the route on screen under a name, and withdraw one. */
(function (R) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el;

  R.published = function (ctx) {
    var box = el("section", "sm-rt-published");
    box.appendChild(el("h2", "sm-rt-h", "Published routes"));
    var list = el("ul", "sm-rt-published-list");
    box.appendChild(list);
    var layer = L.layerGroup().addTo(ctx.map);
    var form = null, name = null;
    if (ctx.config.can.publish) {
      form = el("form", "sm-rt-publish");
      var label = el("label", "sm-rt-label", "Publish the route on screen as");
      name = el("input", "sm-rt-input");
      name.id = "sm-rt-publish-name";
      name.maxLength = 200;
      name.placeholder = "e.g. Night-time economy to the station";
      label.htmlFor = name.id;
      var send = el("button", "sm-button", "Publish");
      send.type = "submit";
      form.appendChild(label);
      form.appendChild(name);
      form.appendChild(send);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var q = ctx.request();
        if (!q) { ctx.showError("Set a start and an end first."); return; }
        var time = q.time === "day" ? "day" : "night";
        common.fetchJson(ctx.config.links.published, { method: "POST", body: {
          name: name.value.trim(), from: q.from, to: q.to, profile: q.profile,
          max_detour: Number(q.max_detour), time: time } })
          .then(function () { name.value = ""; load(); })
          .catch(function (err) { ctx.showError(err.message); });
      });
      box.appendChild(form);
    }
    ctx.ui.side.appendChild(box);

    function load() {
      common.fetchJson(ctx.config.links.published).then(function (body) {
        list.textContent = "";
        layer.clearLayers();
        body.features.forEach(function (f) {
          var p = f.properties;
          var line = L.polyline(f.geometry.coordinates.map(function (c) { return [c[1], c[0]]; }),
            { color: "#7c3aed", weight: 4, dashArray: "8 6", opacity: 0.8 }).addTo(layer);
          var item = el("li");
          var show = el("button", "sm-rt-link", p.name);
          show.type = "button";
          show.addEventListener("click", function () { ctx.map.fitBounds(line.getBounds(), { padding: [30, 30] }); });
          item.appendChild(show);
          item.appendChild(el("span", "sm-rt-published-figures", " " + R.fmt.metres(p.length_m) + ", " +
            R.fmt.pct(p.camera_share) + " under cameras, " + R.fmt.pct(p.lit_share) + " lit (" + p.time + ")"));
          if (ctx.config.can.publish) {
            var drop = el("button", "sm-rt-link sm-rt-drop", "Withdraw");
            drop.type = "button";
            drop.addEventListener("click", function () {
              common.fetchJson(ctx.config.links.published + "/" + p.id, { method: "DELETE" })
                .then(load, function (err) { ctx.showError(err.message); });
            });
            item.appendChild(drop);
          }
          list.appendChild(item);
        });
        if (!body.features.length) list.appendChild(el("li", "sm-rt-none", "None yet."));
      }).catch(function (err) { ctx.showError(err.message); });
    }
    load();
    return { load: load };
  };
})(window.SaferMapRoutes = window.SaferMapRoutes || {});
