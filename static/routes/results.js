/* Safe walking routes page: the answer. Each walk drawn in its colour (the chosen one on top and
 * thicker), its figures on a card beside the others, the chosen walk's directions by street name,
 * and the links: the A4 sheet to print and the address that reopens the same routes. */
(function (R) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el;

  function figure(list, name, value) {
    var row = el("div", "sm-rt-figure");
    row.appendChild(el("dt", null, name));
    row.appendChild(el("dd", null, value));
    list.appendChild(row);
  }

  R.results = function (ctx) {
    var box = el("section", "sm-rt-results");
    box.setAttribute("aria-live", "polite");
    var cards = el("div", "sm-rt-cards");
    var explanation = el("p", "sm-rt-explanation");
    var steps = el("ol", "sm-rt-steps");
    var links = el("p", "sm-rt-links");
    var notes = el("p", "sm-rt-notes");
    box.appendChild(cards);
    box.appendChild(explanation);
    box.appendChild(links);
    box.appendChild(el("h2", "sm-rt-h", "Directions"));
    box.appendChild(steps);
    box.appendChild(notes);
    box.hidden = true;
    ctx.ui.side.appendChild(box);
    var drawn = L.layerGroup().addTo(ctx.map);
    var current = null;

    function colourOf(i) {
      return common.colour(ctx.config.colours[i % ctx.config.colours.length], "#2563eb");
    }

    function choose(i) {
      if (!current) return;
      var f = current.features[i];
      drawn.clearLayers();
      current.features.forEach(function (g, j) {
        if (j === i) return;
        L.polyline(g.geometry.coordinates.map(function (c) { return [c[1], c[0]]; }),
          { color: colourOf(j), weight: 4, opacity: 0.55 }).addTo(drawn);
      });
      L.polyline(f.geometry.coordinates.map(function (c) { return [c[1], c[0]]; }),
        { color: colourOf(i), weight: 7, opacity: 0.95 }).addTo(drawn);
      Array.prototype.forEach.call(cards.children, function (card, j) {
        card.classList.toggle("sm-rt-chosen", j === i);
        card.setAttribute("aria-pressed", j === i ? "true" : "false");
      });
      explanation.textContent = f.properties.explanation;
      steps.textContent = "";
      f.properties.directions.forEach(function (s) { steps.appendChild(el("li", null, s.text)); });
    }

    function show(body, query) {
      current = body;
      cards.textContent = "";
      body.features.forEach(function (f, i) {
        var p = f.properties;
        var card = el("button", "sm-rt-card");
        card.type = "button";
        card.style.borderTopColor = colourOf(i);
        card.appendChild(el("strong", "sm-rt-card-title", p.name));
        var dl = el("dl");
        figure(dl, "Length", R.fmt.metres(p.length_m) + (i ? " (" + p.detour.toFixed(2) + "×)" : ""));
        figure(dl, "Walk", R.fmt.minutes(p.duration_s));
        figure(dl, "Under cameras", R.fmt.pct(p.camera_share));
        figure(dl, "Lit", R.fmt.pct(p.lit_share));
        figure(dl, "Incidents near", p.incidents_suppressed ? "a few (held back)" : String(p.incidents_near));
        card.appendChild(dl);
        card.addEventListener("click", function () { choose(i); });
        cards.appendChild(card);
      });
      links.textContent = "";
      var sheet = el("a", "sm-button", "Print A4 sheet");
      sheet.href = ctx.config.links.sheet + "?" + query;
      sheet.target = "_blank";
      sheet.rel = "noopener";
      var again = el("a", "sm-rt-reopen", "Link to these routes");
      again.href = ctx.config.links.page + "?" + query;
      links.appendChild(sheet);
      links.appendChild(again);
      var window_ = body.incident_window;
      notes.textContent = "Snapped " + Math.round(body.snapped.from.distance_m) + " m and " +
        Math.round(body.snapped.to.distance_m) + " m to the nearest walkable streets. " +
        (body.time_of_day === "night" ? "After dark: lighting weighs more. " : "In daylight. ") +
        (window_ ? "Incidents within 25 m, " + window_.from + " to " + window_.to + ", as you may see them. " : "") +
        (body.closed_now.length ? "Closed then: " + body.closed_now.join(", ") + ". " : "");
      box.hidden = false;
      choose(body.features.length > 1 ? 1 : 0);
      var all = L.featureGroup(drawn.getLayers());
      if (all.getLayers().length) ctx.map.fitBounds(all.getBounds(), { padding: [30, 30] });
    }

    function clear() {
      current = null;
      drawn.clearLayers();
      box.hidden = true;
    }

    return { show: show, clear: clear };
  };
})(window.SaferMapRoutes = window.SaferMapRoutes || {});
