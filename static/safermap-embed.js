/* SaferMap embedded maps: a read-only map of the embed's layers, driven by the JSON config the
 * server puts in the page. No controls that change anything, no links out.
 *
 * The layers are drawn by safermap-layers.js, as on every other map page; tile requests carry no
 * cookie and no referrer (the embed key in each tile URL is the only credential). Incident layers
 * arrive as cells carrying a count (never single incidents): aggregate layers, drawn as circles
 * sized by and labelled with their count. Data reaches the page through textContent only.
 */
(function () {
  "use strict";

  var common = window.SaferMapCommon;
  var layers = window.SaferMapLayers;
  var el = common.el;
  var TILE_FETCH = { credentials: "omit", referrerPolicy: "no-referrer" };

  function titleControl(config) {
    var control = L.control({ position: "topright" });
    control.onAdd = function () {
      var box = el("div", "sm-brand leaflet-bar");
      box.appendChild(el("strong", null, config.title));
      box.appendChild(el("span", "sm-brand-partnership", config.partnership));
      return box;
    };
    return control;
  }

  function start(map, configId) {
    var config = JSON.parse(document.getElementById(configId).textContent);
    if (map.attributionControl) map.attributionControl.setPrefix(false);
    if (config.bounds) map.fitBounds(config.bounds, { padding: [16, 16], maxZoom: 17, animate: false });
    titleControl(config).addTo(map);
    var grids = {};
    var overlays = {};
    config.layers.forEach(function (layer) {
      grids[layer.id] = layers.makeLayer(map, layer, { fetchOptions: TILE_FETCH }).addTo(map);
      overlays[layers.layerName(layer)] = grids[layer.id];
    });
    L.control.layers(null, overlays, { collapsed: true, position: "topright" }).addTo(map);
    layers.updateZoomHints(map, config.layers);
    map.on("zoomend", function () { layers.updateZoomHints(map, config.layers); });
    window.saferMap = { map: map, layers: grids, config: config };
    return window.saferMap;
  }

  window.SaferMapEmbed = { start: start };
})();
