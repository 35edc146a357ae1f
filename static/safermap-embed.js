/* SaferMap embedded maps: a read-only map of the embed's layers, driven by the JSON config the
 * server puts in the page. No controls that change anything, no links out.
 *
 * Data reaches the page through textContent only, never innerHTML. Incident layers arrive as
 * cells carrying a count (never single incidents); they are drawn as circles sized by count.
 */
(function () {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el, colour = common.colour, escapeHtml = common.escapeHtml;
  var PANE_Z = common.PANE_Z;

  function formatValue(layer, field, value) {
    if (value === undefined || value === null || value === "") return layer.empty[field] || "—";
    var type = layer.fields[field];
    if (type === "boolean") return value === true || value === "true" || value === 1 ? "Yes" : "No";
    if (type === "number") {
      var n = Number(value);
      return isFinite(n) ? String(Math.round(n * 10) / 10) : String(value);
    }
    return String(value);
  }

  function styleFunction(layer) {
    var style = layer.style;
    return function (props) {
      var c = colour(style.by ? style.colors[props[style.by]] : null, colour(style.color, "#3388ff"));
      if (layer.aggregate) {
        var n = Number(props.count) || 0;
        c = colour(style.color, "#b45309");
        return { radius: Math.min(18, 6 + 2 * Math.log(Math.max(n, 1))), stroke: true, color: "#ffffff",
          weight: 1.5, fill: true, fillColor: c, fillOpacity: 0.75 };
      }
      if (layer.geometry === "polygon") {
        return { stroke: true, color: c, weight: style.weight, opacity: 0.9, fill: true, fillColor: c,
          fillOpacity: style.fill_opacity,
          dashArray: layer.dashed_by && props[layer.dashed_by] === true ? "6 4" : null };
      }
      if (layer.geometry === "line") return { stroke: true, color: c, weight: style.weight, opacity: 0.9, fill: false };
      return { radius: style.radius, stroke: true, color: "#ffffff", weight: 1.5, fill: true, fillColor: c, fillOpacity: 0.95 };
    };
  }

  function popup(layer, props) {
    var box = el("div", "sm-popup");
    if (layer.aggregate) {
      var n = Number(props.count) || 0;
      box.appendChild(el("h3", "sm-popup-title", n.toLocaleString("en-GB") + " " + layer.title.toLowerCase()));
      box.appendChild(el("p", null, "in this area (areas with fewer than " + layer.min_count + " are not shown)"));
      return box;
    }
    var t = layer.popup.title;
    box.appendChild(el("h3", "sm-popup-title", t ? formatValue(layer, t, props[t]) : layer.title));
    box.appendChild(el("p", "sm-popup-layer", layer.title));
    var list = el("dl");
    layer.popup.fields.forEach(function (f) {
      list.appendChild(el("dt", null, layer.labels[f] || f));
      list.appendChild(el("dd", null, formatValue(layer, f, props[f])));
    });
    box.appendChild(list);
    return box;
  }

  function makeLayer(map, layer) {
    var pane = "sm-" + layer.geometry;
    if (!map.getPane(pane)) map.createPane(pane).style.zIndex = PANE_Z[layer.geometry] || 420;
    var styles = {};
    styles[layer.id] = styleFunction(layer);
    var grid = L.vectorGrid.protobuf(layer.tiles, {
      pane: pane, interactive: true, minZoom: layer.minzoom, maxZoom: layer.maxzoom,
      attribution: layer.attribution ? escapeHtml(layer.attribution) : undefined,
      vectorTileLayerStyles: styles,
      fetchOptions: { credentials: "omit", referrerPolicy: "no-referrer" },
    });
    grid.on("click", function (e) {
      var props = (e.layer && e.layer.properties) || {};
      L.popup({ maxWidth: 300 }).setLatLng(e.latlng).setContent(popup(layer, props)).openOn(map);
    });
    return grid;
  }

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
      grids[layer.id] = makeLayer(map, layer).addTo(map);
      overlays[escapeHtml(layer.title)] = grids[layer.id];
    });
    L.control.layers(null, overlays, { collapsed: true, position: "topright" }).addTo(map);
    window.saferMap = { map: map, layers: grids, config: config };
    return window.saferMap;
  }

  window.SaferMapEmbed = { start: start };
})();
