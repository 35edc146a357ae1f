/* Control room (coverage page): the faults panel. Every camera marked faulty that the
 * filters let through is listed (a click leads to it and opens its details) and ringed on the map
 * at every zoom; the heading counts them all, and a note says how many the filters hide. */
(function (cov) {
  "use strict";

  var el = window.SaferMapCommon.el;
  var MISSING = "—";

  // `passes(layerId, props)` is the filters' test (SaferMapCoverage.filters).
  function faultsPanel(room, passes) {
    var map = room.map, rings = room.marks.faults;
    var s = cov.widgets.section(room.ui.side, "sm-cov-faults", "Faults");
    var list = el("ul", "sm-cov-fault-list");
    list.id = "sm-cov-fault-list";
    s.box.appendChild(list);
    var note = el("p", "sm-cov-hint");
    s.box.appendChild(note);

    // From the camera list in room.state (call again after it or the filters change).
    function show() {
      var all = room.state.cameras.filter(function (f) { return f.properties.status === "faulty"; });
      var shown = all.filter(function (f) { return passes("cameras", f.properties); });
      s.heading.textContent = "Faults (" + all.length + ")";
      list.textContent = "";
      rings.clearLayers();
      note.textContent = all.length === shown.length ? (all.length ? "" : "No camera is marked faulty.")
        : (all.length - shown.length) + " more hidden by the filters.";
      shown.forEach(function (f) {
        var latlng = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
        var item = el("li");
        item.appendChild(faultButton(f, latlng));
        list.appendChild(item);
        L.circleMarker(latlng, { radius: 14, color: "#dc2626", weight: 3, fill: false, interactive: false,
          pane: "sm-cov-marks", className: "sm-cov-fault-ring" }).addTo(rings);
      });
    }

    function faultButton(f, latlng) {
      var p = f.properties;
      var b = el("button", "sm-cov-fault");
      b.type = "button";
      var head = b.appendChild(el("span", "sm-cov-fault-head"));
      head.appendChild(el("strong", null, p.reference));
      if (p.name) head.appendChild(el("span", null, p.name));
      b.appendChild(el("span", "sm-cov-fault-owner", (p.owner_agency || "Owner not recorded") +
        (p.monitored ? " · monitored" : "")));
      b.addEventListener("click", function () {
        map.setView(latlng, Math.max(map.getZoom(), 18));
        L.popup({ maxWidth: 320 }).setLatLng(latlng).setContent(faultPopup(p)).openOn(map);
      });
      return b;
    }

    function faultPopup(p) {
      var box = el("div", "sm-popup");
      box.appendChild(el("h3", "sm-popup-title", p.reference));
      box.appendChild(el("p", "sm-popup-layer", "Faulty camera"));
      var dl = el("dl");
      [["Name", p.name], ["Owner", p.owner_agency], ["Contact", p.contact], ["Monitored", p.monitored ? "Yes" : "No"],
        ["Type", p.camera_type], ["Notes", p.notes]].forEach(function (r) {
        dl.appendChild(el("dt", null, r[0]));
        dl.appendChild(el("dd", null, r[1] === undefined || r[1] === null || r[1] === "" ? MISSING : r[1]));
      });
      box.appendChild(dl);
      return box;
    }

    return { show: show, list: list };
  }

  cov.faultsPanel = faultsPanel;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
