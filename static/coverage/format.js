/* Control room (coverage page): how times, numbers and query strings are written.
 * The control room reads UK local time whatever the browser's zone. No DOM here. */
(function (cov) {
  "use strict";

  var UK = "Europe/London";
  var DAY_MS = 24 * 3600 * 1000;

  function ukParts(date) {
    var out = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: UK, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23",
    }).formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }

  // The value of a datetime-local input for now in the UK ("2026-03-01T22:15"); the API reads a
  // time without an offset as Europe/London.
  function ukNowInput() {
    var p = ukParts(new Date());
    return p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute;
  }

  function ukClock(date) {
    var p = ukParts(date);
    return p.hour + ":" + p.minute + ":" + p.second;
  }

  function ukTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return new Intl.DateTimeFormat("en-GB", {
      timeZone: UK, weekday: "short", day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(d);
  }

  function ukHourMinute(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : ukParts(d).hour + ":" + ukParts(d).minute;
  }

  // Expired (red), due within `days` (amber), or in time.
  function deadlineState(entry, days) {
    if (entry.expired) return "expired";
    var left = new Date(entry.request_by).getTime() - Date.now();
    return left < days * DAY_MS ? "due-soon" : "ok";
  }

  function number(n) { return Number(n).toLocaleString("en-GB"); }
  function percent(share) { return share === null || share === undefined ? null : (share * 100).toFixed(1) + "%"; }
  function metres(m) { return m < 1000 ? Math.round(m) + " m" : (m / 1000).toFixed(2) + " km"; }

  // url?k=v&k=v2 for every value given (arrays repeat the key; empty values are left out).
  function withQuery(url, params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      (Array.isArray(v) ? v : [v]).forEach(function (one) {
        if (one !== undefined && one !== null && one !== "") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(one));
      });
    });
    return parts.length ? url + "?" + parts.join("&") : url;
  }

  // A coordinate to 7 decimals (about a centimetre), so URLs stay short.
  function fixed(x) { return Math.round(x * 1e7) / 1e7; }

  cov.format = {
    ukParts: ukParts, ukNowInput: ukNowInput, ukClock: ukClock, ukTime: ukTime, ukHourMinute: ukHourMinute,
    deadlineState: deadlineState, number: number, percent: percent, metres: metres, withQuery: withQuery,
    fixed: fixed,
  };
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
