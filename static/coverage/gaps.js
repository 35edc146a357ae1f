/* Control room (coverage page): coverage and gaps. The share of incidents and of street length in
 * working cameras' view, now and with the planned cameras, overall and for the commonest
 * categories; held-back figures say so. Operators also get camera siting (coverage/siting.js)
 * under the figures. */
(function (cov) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el, fetchJson = common.fetchJson;
  var w = cov.widgets, format = cov.format, number = format.number, percent = format.percent;
  var CATEGORIES_SHOWN = 5;

  // `null` is a figure held back (too few incidents to show); `undefined` one with nothing to count.
  function figure(parent, label, now, planned, id) {
    var row = el("div", "sm-cov-figure");
    if (id) row.id = id;
    row.appendChild(el("span", "sm-cov-figure-label", label));
    [["sm-cov-figure-now", now], ["sm-cov-figure-planned", planned]].forEach(function (cell) {
      row.appendChild(el("span", cell[0], cell[1] === null ? "held back" : cell[1] === undefined ? "—" : cell[1]));
    });
    parent.appendChild(row);
  }

  // A share, or why there is none: no incidents placed (undefined), or held back (null).
  function shareOf(group) {
    if (!group || group.placed === 0) return undefined;
    return percent(group.share_covered);
  }

  function coveredOf(group) {
    if (!group || group.placed === 0) return undefined;
    return group.covered === null ? null : number(group.covered) + " of " + number(group.placed);
  }

  function gapsPanel(room) {
    var config = room.config;
    var box = w.section(room.ui.side, "sm-cov-gaps", "Coverage and gaps").box;
    var figures = el("div", "sm-cov-figures");
    figures.id = "sm-cov-gap-figures";
    box.appendChild(figures);
    var status = w.message(box);
    var notes = el("p", "sm-cov-hint");
    box.appendChild(notes);
    var generation = 0;  // only the latest answer is shown

    function load() {
      var gen = ++generation;
      status.textContent = "Counting…";
      fetchJson(format.withQuery(config.links.gaps, { planned: "true", clusters: 0, areas: 0 })).then(function (body) {
        if (gen !== generation) return;
        status.textContent = "";
        show(body);
      }).catch(function (err) { if (gen === generation) status.textContent = err.message; });
    }

    function show(body) {
      figures.textContent = "";
      var now = body.current, planned = body.with_planned || body.current;
      var head = el("div", "sm-cov-figure sm-cov-figure-head");
      head.appendChild(el("span", "sm-cov-figure-label", ""));
      head.appendChild(el("span", "sm-cov-figure-now", "Now"));
      head.appendChild(el("span", "sm-cov-figure-planned", "With planned"));
      figures.appendChild(head);
      var t = now.totals, tp = planned.totals;
      figure(figures, "Incidents in working cameras' view", shareOf(t), shareOf(tp), "sm-cov-share");
      figure(figures, "Covered incidents", coveredOf(t), coveredOf(tp));
      figure(figures, "Street length in view", percent(now.streets.share_covered) || undefined,
        percent(planned.streets.share_covered) || undefined);
      (now.by_category || []).slice(0, CATEGORIES_SHOWN).forEach(function (c) {
        var p = (planned.by_category || []).filter(function (x) { return x.category === c.category; })[0];
        figure(figures, c.category, shareOf(c), shareOf(p));
      });
      notes.textContent = noteWords(body, t).join(" ");
    }

    function noteWords(body, t) {
      var c = body.coverage;
      var words = [number(c.operational_cameras) + " working, " + number(c.planned_cameras) + " planned and " +
        number(c.faulty_cameras) + " faulty cameras (faulty ones cover nothing here)."];
      if (t && (t.unknown_position || t.no_location)) {
        words.push(number((t.unknown_position || 0) + (t.no_location || 0)) + " incidents cannot be placed (counts only, or no location).");
      }
      if (t && t.suppressed) words.push("Counts under " + body.suppress_below + " are held back, as you do not see every incident exactly.");
      if (config.synthetic.length) words.push("Demonstration data: " + config.synthetic.join(", ") + " is synthetic, not real crime.");
      words.push("Incidents sit where your sharing level places them (anonymous points below exact).");
      return words;
    }

    return { box: box, load: load };
  }

  cov.gapsPanel = gapsPanel;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
