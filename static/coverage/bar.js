/* Control room (coverage page): the page's frame. A bar on top (brand, camera counts,
 * the filters' form, whether the map is live, who is signed in) and the map with the side panel
 * beside it. */
(function (cov) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el;
  var number = cov.format.number;
  var STATUS_WORDS = [["operational", "working"], ["faulty", "faulty"], ["planned", "planned"],
    ["decommissioned", "decommissioned"]];

  // The frame's parts: bar, side (the panel), counts, filters (a form), live (the freshness line).
  function frame(map, config) {
    var f = common.pageFrame(map, "sm-cov", "CCTV control room", "Control room", config.partnership.name,
                             config.links.overview);
    var bar = f.bar;

    var counts = el("div", "sm-cov-counts");
    counts.id = "sm-cov-counts";
    counts.setAttribute("aria-live", "polite");
    bar.appendChild(counts);

    var filters = el("form", "sm-cov-filters");
    filters.setAttribute("aria-label", "Filter cameras and coverage");
    bar.appendChild(filters);

    var right = el("div", "sm-cov-bar-right");
    var live = el("p", "sm-cov-live");
    live.id = "sm-cov-live";
    live.setAttribute("role", "status");
    right.appendChild(live);
    var who = el("div", "sm-cov-user");
    who.appendChild(el("span", null, config.user.name + " (" + config.user.role + ")"));
    who.appendChild(cov.widgets.button("Sign out", "sm-cov-sign-out", function () {
      fetch(config.links.session, { method: "DELETE", credentials: "same-origin" })
        .finally(function () { window.location.assign(config.links.signIn); });
    }));
    right.appendChild(who);
    bar.appendChild(right);
    map.invalidateSize();
    return { bar: bar, side: f.side, counts: counts, filters: filters, live: live };
  }

  // "5 cameras", then how many of each status there are.
  function showCounts(counts, cameras) {
    var by = {};
    cameras.forEach(function (f) { by[f.properties.status] = (by[f.properties.status] || 0) + 1; });
    counts.textContent = "";
    counts.appendChild(el("strong", null, number(cameras.length) + " cameras"));
    STATUS_WORDS.forEach(function (s) {
      if (!by[s[0]]) return;
      counts.appendChild(el("span", "sm-cov-count sm-cov-count-" + s[0], number(by[s[0]]) + " " + s[1]));
    });
  }

  cov.bar = { frame: frame, showCounts: showCounts };
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
