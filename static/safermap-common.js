/* Helpers shared by SaferMap's map pages (overview, control room, hotspots, embed). Data reaches the page through
 * textContent only; the one HTML-escaping helper is for Leaflet controls that insert HTML. */
(function () {
  "use strict";

  var COLOUR = /^#[0-9a-fA-F]{3,8}$/;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Only a colour the catalog spelled as #hex reaches a style; anything else falls back.
  function colour(value, fallback) {
    return typeof value === "string" && COLOUR.test(value) ? value : fallback;
  }

  // Leaflet's layers control and attribution insert text as HTML, so it is escaped on the way in.
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  // JSON from our API with the session cookie. A refusal rejects with an Error carrying the
  // problem+json `detail` (a sentence meant for people) and the whole problem as `.problem`.
  // Writes carry the CSRF token (the safermap_csrf cookie's value) that cookie sessions need.
  function fetchJson(url, options) {
    options = options || {};
    var method = (options.method || "GET").toUpperCase();
    var headers = { Accept: "application/json, application/problem+json" };
    var init = { method: method, credentials: "same-origin", headers: headers };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = cookie("safermap_csrf");
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.ok) return body;
        var error = new Error(body.detail || body.title || ("The server answered " + r.status + "."));
        error.status = r.status;
        error.problem = body;
        throw error;
      });
    });
  }

  // The frame of a full-screen map page: a bar on top, the map and a side panel beside it, and the
  // bar's brand (page title, partnership, a link back to the overview). Class names carry the page's
  // prefix (sm-cov, sm-hs), so each page styles its own frame.
  function pageFrame(map, prefix, title, sideLabel, partnershipName, overviewHref) {
    document.body.classList.add(prefix + "-body");
    var bar = el("header", prefix + "-bar");
    var main = el("div", prefix + "-main");
    var side = el("aside", prefix + "-side");
    side.setAttribute("aria-label", sideLabel);
    document.body.insertBefore(main, document.body.firstChild);
    document.body.insertBefore(bar, main);
    main.appendChild(map.getContainer());
    main.appendChild(side);
    var brand = el("div", prefix + "-brand");
    brand.appendChild(el("strong", null, title));
    brand.appendChild(el("span", prefix + "-partnership", partnershipName));
    var nav = el("a", prefix + "-link", "Overview map");
    nav.href = overviewHref;
    brand.appendChild(nav);
    bar.appendChild(brand);
    return { bar: bar, main: main, side: side };
  }

  window.SaferMapCommon = {
    pageFrame: pageFrame,
    el: el,
    colour: colour,
    escapeHtml: escapeHtml,
    cookie: cookie,
    fetchJson: fetchJson,
    PANE_Z: { polygon: 410, line: 420, point: 430 } // coverage under incidents under cameras
  };
})();
