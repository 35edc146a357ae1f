/* Control room (coverage page): camera siting, for operators. Suggests the sites where a new
 * camera would cover the most incidents no working or planned camera covers (across the area or
 * only in the map view), draws each with its coverage, and lets a PCSO or above add one as a
 * planned camera, which the gap figures then count "with planned". */
(function (cov) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el, fetchJson = common.fetchJson;
  var w = cov.widgets, format = cov.format, number = format.number;
  var MAX_SITES = 10;
  var SITE_STYLE = { color: "#7c3aed", weight: 2, dashArray: "5 4", fillColor: "#a78bfa", fillOpacity: 0.25 };

  // Built into `parent` (the gaps panel); `onAdded()` runs once a site became a planned camera.
  function sitingTool(room, parent, onAdded) {
    var map = room.map, config = room.config, marks = room.marks.sites;
    var box = el("div", "sm-cov-siting");
    box.id = "sm-cov-siting";
    parent.appendChild(box);
    box.appendChild(el("h3", "sm-cov-subtitle", "Where new cameras would help most"));
    var row = el("div", "sm-cov-row");
    box.appendChild(row);
    var k = w.field(row, "Sites", el("select"), "sm-cov-k");
    for (var i = 1; i <= MAX_SITES; i++) k.appendChild(el("option", null, String(i))).value = String(i);
    k.value = String(config.siting_k);
    var inView = el("input");
    inView.type = "checkbox";
    var inViewLabel = el("label", "sm-cov-check");
    inViewLabel.appendChild(inView);
    inViewLabel.appendChild(el("span", null, "Only in the map view"));
    row.appendChild(inViewLabel);
    var suggest = w.button("Suggest sites", "sm-cov-primary", run);
    suggest.id = "sm-cov-suggest";
    box.appendChild(suggest);
    var status = w.message(box);
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
      marks.clearLayers();
      fetchJson(format.withQuery(config.links.siting, params)).then(function (body) {
        status.textContent = body.picks.length ? "" : "No site would cover any more incidents.";
        body.picks.forEach(function (pick) { showPick(pick, body); });
      }).catch(function (err) { status.textContent = err.message; })
        .finally(function () { suggest.disabled = false; });
    }

    function showPick(pick, body) {
      var latlng = [pick.lat, pick.lon];
      L.geoJSON(pick.coverage, { pane: "sm-cov-marks", interactive: false, style: SITE_STYLE }).addTo(marks);
      L.marker(latlng, { icon: w.markIcon("S" + pick.rank, "sm-cov-mark-site"), keyboard: false, interactive: false }).addTo(marks);
      var item = el("li", "sm-cov-site");
      var head = el("div", "sm-cov-camera-head");
      head.appendChild(el("span", "sm-cov-num sm-cov-num-site", "S" + pick.rank));
      head.appendChild(el("strong", null, pick.gain === null ? "a few more incidents" : "+" + number(pick.gain) +
        (pick.gain === 1 ? " incident" : " incidents")));
      item.appendChild(head);
      item.appendChild(el("p", "sm-cov-site-after", pick.share_after === null ? "" : "Share covered after it: " + format.percent(pick.share_after)));
      var show = w.button("Show on map", null, function () { map.setView(latlng, Math.max(map.getZoom(), 17)); });
      show.setAttribute("aria-label", "Show site S" + pick.rank + " on the map");
      item.appendChild(show);
      if (config.can.add_camera) {
        var add = w.button("Add as planned", "sm-cov-add", function () { addPlanned(pick, body, add, item); });
        add.setAttribute("aria-label", "Add site S" + pick.rank + " as a planned camera");
        item.appendChild(add);
      }
      list.appendChild(item);
    }

    function addPlanned(pick, body, add, item) {
      var p = format.ukParts(new Date());
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
        onAdded();
      }).catch(function (err) {
        add.disabled = false;
        status.textContent = err.message;
      });
    }

    return { run: run, list: list };
  }

  cov.sitingTool = sitingTool;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
