/* Helpers shared by SaferMap's map pages (overview and embed). Data reaches the page through
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

  window.SaferMapCommon = {
    el: el,
    colour: colour,
    escapeHtml: escapeHtml,
    PANE_Z: { polygon: 410, line: 420, point: 430 } // coverage under incidents under cameras
  };
})();
