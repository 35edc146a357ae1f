/* Control room (coverage page): who could have seen it. A click on the map (or the
 * map centre) with a UK date and time lists every camera whose coverage held that spot and that was
 * working then, nearest first, with owners and footage deadlines, those that were faulty, and a
 * link to the printable footage-request list. */
(function (cov) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el, fetchJson = common.fetchJson;
  var w = cov.widgets, format = cov.format;

  function whoPanel(room) {
    var map = room.map, config = room.config, links = config.links, marks = room.marks.who;
    var box = w.section(room.ui.side, "sm-cov-who", "Who could have seen it").box;
    var form = el("form", "sm-cov-form");
    box.appendChild(form);
    var at = w.field(form, "Date and time (UK)", el("input"));
    at.type = "datetime-local";
    at.name = "at";
    at.step = 60;
    at.value = format.ukNowInput();
    at.max = at.value;
    at.required = true;
    var row = el("div", "sm-cov-row");
    form.appendChild(row);
    row.appendChild(w.button("Use the map centre", "sm-cov-centre", function () { lookup(map.getCenter()); }));
    row.appendChild(w.button("Now", "sm-cov-now", function () {
      at.value = format.ukNowInput();
      at.max = at.value;
      again();
    }));
    var status = w.message(box);
    var out = w.cameraLists(box, "sm-cov-who-list", "Printable footage-request list", "sm-cov-who-print");
    box.appendChild(el("p", "sm-cov-hint", "Every camera whose coverage (buildings taken into account) held the spot " +
      "and that was working then, nearest first, whatever the map filters. Footage is usually kept 28–31 days."));
    var last = null;
    var generation = 0;  // only the latest lookup's answer is shown

    function again() { if (last) lookup(last); }
    at.addEventListener("change", again);
    form.addEventListener("submit", function (e) { e.preventDefault(); again(); });

    function lookup(latlng) {
      last = latlng;
      var gen = ++generation;
      if (!at.value) { status.textContent = "Give the date and time."; return; }
      var params = { lon: format.fixed(latlng.lng), lat: format.fixed(latlng.lat), at: at.value };
      marks.clearLayers();
      L.marker(latlng, { icon: w.markIcon("?", "sm-cov-mark-spot"), keyboard: false, interactive: false }).addTo(marks);
      status.textContent = "Looking…";
      status.classList.remove("sm-cov-error");
      fetchJson(format.withQuery(links.at, params)).then(function (body) {
        if (gen !== generation) return;
        show(body, params);
      }).catch(function (err) {
        if (gen !== generation) return;
        status.textContent = err.message;
        status.classList.add("sm-cov-error");
        out.list.textContent = "";
        out.faultyList.textContent = "";
        out.faultyTitle.textContent = "";
        out.print.hidden = true;
      });
    }

    function show(body, params) {
      out.list.textContent = "";
      out.faultyList.textContent = "";
      var n = body.cameras.length;
      status.textContent = n ? n + (n === 1 ? " camera" : " cameras") + " could have seen it." : "No working camera covered this spot then.";
      out.where.textContent = "At " + format.ukTime(body.at) + ", " + body.point.lat.toFixed(5) + ", " + body.point.lon.toFixed(5);
      body.cameras.forEach(function (c, i) {
        var item = w.cameraEntry(c, i + 1, config);
        item.addEventListener("click", function () { map.panTo([c.lat, c.lon]); });
        out.list.appendChild(item);
        L.marker([c.lat, c.lon], { icon: w.markIcon(String(i + 1), "sm-cov-mark-camera"), keyboard: false,
          title: c.reference }).addTo(marks);
      });
      w.showNotOperational(out, body.not_operational, config);
      out.print.href = format.withQuery(links.footageRequest, params);
      out.print.hidden = false;
    }

    // The time asked about, which the path tool starts its first incident at.
    function time() { return at.value; }

    return { box: box, lookup: lookup, list: out.list, time: time };
  }

  cov.whoPanel = whoPanel;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
