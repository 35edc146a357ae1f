/* Control room (coverage page): the path between related incidents. Clicks on the
 * map (or the map centre) add lettered incidents, each with a UK time and a label; "Build pack"
 * asks for the walking path between them and lists every camera along it with the window to ask
 * footage for, and links the printable pack. An incident the server refuses is marked. */
(function (cov) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el, fetchJson = common.fetchJson;
  var w = cov.widgets, format = cov.format;
  var LETTERS = "ABCDEFGHIJ";

  // `startTime()` is where a first incident's time starts (the who-could-have-seen-it time).
  function pathPanel(room, startTime) {
    var map = room.map, config = room.config, links = config.links;
    var box = w.section(room.ui.side, "sm-cov-path", "Path between incidents").box;
    box.appendChild(el("p", "sm-cov-hint", "Each incident must be within " + config.path.snap_max_m +
      " m of a street. Give each its time; the walk between them is timed evenly."));
    var points = [];
    var rows = el("ol", "sm-cov-points");
    rows.id = "sm-cov-points";
    box.appendChild(rows);
    var form = el("div", "sm-cov-row");
    box.appendChild(form);
    var margin = w.field(form, "Minutes either side", el("input"), "sm-cov-margin");
    margin.type = "number";
    margin.min = 0;
    margin.max = 240;
    margin.value = config.path.margin_minutes;
    var buttons = el("div", "sm-cov-row");
    box.appendChild(buttons);
    var build = w.button("Build pack", "sm-cov-primary", buildPack);
    build.id = "sm-cov-build";
    buttons.appendChild(build);
    buttons.appendChild(w.button("Add the map centre", null, function () { add(map.getCenter()); }));
    buttons.appendChild(w.button("Clear", null, clear));
    var status = w.message(box);
    status.id = "sm-cov-path-message";
    var out = w.cameraLists(box, "sm-cov-path-list", "Print pack", "sm-cov-print-pack");
    var drawn = L.layerGroup().addTo(room.marks.path);
    var pointMarks = L.layerGroup().addTo(room.marks.path);

    function renumber() {
      pointMarks.clearLayers();
      points.forEach(function (p, i) {
        p.letter.textContent = LETTERS[i];
        p.row.setAttribute("aria-label", "Incident " + LETTERS[i]);
        p.remove.setAttribute("aria-label", "Remove incident " + LETTERS[i]);
        L.marker(p.latlng, { icon: w.markIcon(LETTERS[i], "sm-cov-mark-incident" + (p.error ? " sm-cov-mark-error" : "")),
          keyboard: false, interactive: false }).addTo(pointMarks);
      });
      build.disabled = points.length < config.path.min;
    }

    // The incidents changed: the last pack no longer answers them.
    function stale() {
      drawn.clearLayers();
      out.list.textContent = "";
      out.faultyList.textContent = "";
      out.faultyTitle.textContent = "";
      out.where.textContent = "";
      out.print.hidden = true;
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
      var at = w.field(inputs, "Time (UK)", el("input"));
      at.type = "datetime-local";
      at.step = 60;
      at.required = true;
      at.max = format.ukNowInput();
      at.value = points.length ? points[points.length - 1].at.value : startTime() || format.ukNowInput();
      var label = w.field(inputs, "Label (optional)", el("input"));
      label.type = "text";
      label.maxLength = 100;
      label.placeholder = points.length ? "e.g. phone found" : "e.g. robbery";
      var remove = w.button("Remove", "sm-cov-remove", function () {
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
        return { lon: format.fixed(p.latlng.lng), lat: format.fixed(p.latlng.lat), at: p.at.value, label: p.label.value.trim() };
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
        // The problem names the incident it could not place (e.g. too far from a street).
        var i = err.problem && err.problem.incident;
        if (typeof i === "number" && points[i]) { points[i].error = true; points[i].row.classList.add("sm-cov-error"); }
      }).finally(function () { renumber(); });
    }

    function show(pack, body) {
      var line = pack.path.coordinates.map(function (c) { return [c[1], c[0]]; });
      L.polyline(line, { pane: "sm-cov-marks", color: "#ffffff", weight: 8, opacity: 0.9, interactive: false }).addTo(drawn);
      L.polyline(line, { pane: "sm-cov-marks", color: "#111827", weight: 4, opacity: 0.95, interactive: false }).addTo(drawn);
      out.where.textContent = "Walking path " + format.metres(pack.length_m) + " · " + pack.cameras.length +
        (pack.cameras.length === 1 ? " camera" : " cameras") + " along it, windows widened by " + pack.margin_minutes + " min.";
      pack.cameras.forEach(function (c, i) {
        var item = w.cameraEntry(c, i + 1, config, function (fact) {
          fact("Window", format.ukTime(c.window_start) + " – " + format.ukHourMinute(c.window_end));
          fact("Along path", format.metres(c.distance_along_m));
        });
        item.addEventListener("click", function () { map.panTo([c.lat, c.lon]); });
        out.list.appendChild(item);
        L.marker([c.lat, c.lon], { icon: w.markIcon(String(i + 1), "sm-cov-mark-camera"), keyboard: false,
          title: c.reference }).addTo(drawn);
      });
      w.showNotOperational(out, pack.not_operational, config);
      out.print.href = format.withQuery(links.footagePack, {
        incident: body.incidents.map(function (p) { return [p.lon, p.lat, p.at, p.label].join(","); }),
        margin_minutes: body.margin_minutes,
      });
      out.print.hidden = false;
      map.fitBounds(L.latLngBounds(line).pad(0.15), { maxZoom: 18 });
    }

    renumber();
    return { box: box, add: add, clear: clear, list: out.list };
  }

  cov.pathPanel = pathPanel;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
