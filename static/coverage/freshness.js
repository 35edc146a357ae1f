/* Control room (coverage page): never stale. Every drawn layer's TileJSON ETag is
 * checked every `refresh_seconds` (and when the tab comes back, and when a layer is switched on);
 * a layer whose data changed is drawn again, and the bar says when the map was last checked, or
 * that it could not be. */
(function (cov) {
  "use strict";

  var ukClock = cov.format.ukClock;

  // `onChanged(ids)` hears which layers changed at a check (after they were redrawn).
  function freshness(room, onChanged) {
    var map = room.map, grids = room.grids, live = room.ui.live;
    var etags = {};

    // Draws these layers again now (after a change made from this page) and forgets their ETags,
    // so the next check takes the new ones without reporting them as changed.
    function refresh(ids) {
      ids.forEach(function (id) {
        if (grids[id] && map.hasLayer(grids[id])) grids[id].redraw();
        delete etags[id];
      });
    }

    function tilejson(id) {
      return fetch(room.config.links.tilejson.replace("{layer}", encodeURIComponent(id)),
        { credentials: "same-origin", cache: "no-cache" }).then(function (r) {
        if (!r.ok) throw new Error(r.status === 401 ? "signed out" : "the server answered " + r.status);
        var tag = r.headers.get("ETag");
        var changed = etags[id] !== undefined && tag !== etags[id];
        etags[id] = tag;
        return changed ? id : null;
      });
    }

    function check() {
      var ids = Object.keys(grids).filter(function (id) { return map.hasLayer(grids[id]); });
      return Promise.all(ids.map(tilejson)).then(function (changed) {
        changed = changed.filter(Boolean);
        if (changed.length) {
          changed.forEach(function (id) { grids[id].redraw(); });
          onChanged(changed);
        }
        live.classList.remove("sm-cov-error");
        live.textContent = (changed.length ? "Updated " : "Live · checked ") + ukClock(new Date());
      }).catch(function (err) {
        live.classList.add("sm-cov-error");
        live.textContent = "Not live: " + err.message + " (" + ukClock(new Date()) + ")";
      });
    }

    function start() {
      setInterval(check, room.config.refresh_seconds * 1000);
      document.addEventListener("visibilitychange", function () { if (!document.hidden) check(); });
      map.on("overlayadd", function () { check(); });
      check();
    }

    return { check: check, refresh: refresh, start: start };
  }

  cov.freshness = freshness;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
