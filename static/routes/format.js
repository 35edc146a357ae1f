/* Safe walking routes page: numbers as people read them, and the request as a query string.
 * Registered on SaferMapRoutes; loaded first of the page's parts (app/pages/routes.py). */
(function (R) {
  "use strict";

  function metres(m) {
    if (m >= 1000) return (m / 1000).toFixed(m >= 10000 ? 0 : 1) + " km";
    return Math.round(m) + " m";
  }

  function minutes(seconds) {
    return Math.max(1, Math.round(seconds / 60)) + " min";
  }

  function pct(share) {
    return Math.round(share * 100) + " %";
  }

  function point(p) {
    return p.lon.toFixed(7) + "," + p.lat.toFixed(7);  // 1 cm, as OpenStreetMap keeps them
  }

  // The request's parameters in the order the API documents them; empty values left out.
  function query(params) {
    var parts = [];
    ["from", "to", "profile", "max_detour", "time"].forEach(function (key) {
      var value = params[key];
      if (value !== undefined && value !== null && value !== "") {
        parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(String(value)));
      }
    });
    return parts.join("&");
  }

  function parsePoint(text) {
    if (!text) return null;
    var parts = String(text).split(",");
    if (parts.length !== 2) return null;
    var lon = Number(parts[0]), lat = Number(parts[1]);
    if (!isFinite(lon) || !isFinite(lat) || Math.abs(lon) > 180 || Math.abs(lat) > 90) return null;
    return { lon: lon, lat: lat };
  }

  R.fmt = { metres: metres, minutes: minutes, pct: pct, point: point, query: query, parsePoint: parsePoint };
})(window.SaferMapRoutes = window.SaferMapRoutes || {});
