/* Catalog layers as vector tiles, shared by SaferMap's map pages (overview, control room, embed): each
 * layer's style from the catalog (colour by a field, dashed where values are assumed), popups,
 * counted clusters and stacked points, the legend and the zoom hints. Plain JS, no build step.
 *
 * Every piece of data reaches the page through textContent or SVG text nodes, never innerHTML,
 * so a camera called "<img onerror=...>" is shown as those characters.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var common = window.SaferMapCommon;
  var el = common.el, colour = common.colour, escapeHtml = common.escapeHtml;
  var PANE_Z = common.PANE_Z;
  var vectorGrid = window.SaferMapVectorGrid;  // the only script that touches VectorGrid's private parts
  var coarsePointer = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;

  function shortCount(n) {
    if (n < 1000) return String(n);
    if (n < 10000) return (Math.round(n / 100) / 10) + "k";
    return Math.round(n / 1000) + "k";
  }

  function formatValue(layer, field, value) {
    if (value === undefined || value === null || value === "") return layer.empty[field] || "—";
    var type = layer.fields[field];
    if (type === "boolean") return value === true || value === "true" || value === 1 ? "Yes" : "No";
    if (type === "number") {
      var n = Number(value);
      return isFinite(n) ? String(Math.round(n * 10) / 10) : String(value);
    }
    if (/_at$/.test(field)) {
      var d = new Date(value);
      if (!isNaN(d.getTime())) return d.toISOString().slice(0, 10);
    }
    return String(value);
  }

  // A count cell: a cluster of a clustered layer (zoomed out), or any feature of an aggregate layer
  // (an embed's incidents, which are only ever counts).
  function isCluster(layer, props) {
    return !!(layer.cluster || layer.aggregate) && props.count !== undefined;
  }

  // police.uk snaps incidents to shared anonymous points, so many single incidents lie exactly on
  // top of each other. Each such stack is marked so it can be drawn bigger, carry its count and
  // list what is in it, instead of hiding all but one.
  function markStacks(data) {
    var stacks = {};
    data.features.forEach(function (f) {
      if (f.type !== 1 || f.properties.count !== undefined) return;
      var p = f.geometry[0][0];
      var key = p.x + "," + p.y;
      (stacks[key] = stacks[key] || []).push(f.properties);
    });
    Object.keys(stacks).forEach(function (key) {
      var stack = stacks[key];
      if (stack.length < 2) return;
      stack.forEach(function (props, i) {
        Object.defineProperty(props, "_stack", { value: stack, enumerable: false });
        Object.defineProperty(props, "_stackTop", { value: i === stack.length - 1, enumerable: false });
      });
    });
  }

  function featureColour(layer, props) {
    var style = layer.style;
    var fallback = colour(style.color, "#3388ff");
    if (!style.by) return fallback;
    // A cluster cell is coloured by its commonest value (top_<field>).
    var key = isCluster(layer, props) ? props["top_" + style.by] : props[style.by];
    return colour(style.colors[key], fallback);
  }

  function clusterRadius(count) {
    // Cells are 16 px apart: past ~15 px neighbours would bury each other.
    return count <= 1 ? 6 : Math.min(15, 6 + 1.8 * Math.log(count));
  }

  function styleFunction(layer) {
    var style = layer.style;
    return function (props) {
      var c = featureColour(layer, props);
      if (layer.geometry === "polygon") {
        return {
          stroke: true, color: c, weight: style.weight, opacity: 0.9,
          fill: true, fillColor: c, fillOpacity: style.fill_opacity,
          dashArray: layer.dashed_by && props[layer.dashed_by] === true ? "6 4" : null,
        };
      }
      if (layer.geometry === "line") {
        return { stroke: true, color: c, weight: style.weight, opacity: 0.9, fill: false };
      }
      var radius = style.radius + (coarsePointer ? 3 : 0); // a fingertip needs a bigger target
      var many = isCluster(layer, props) ? Number(props.count) : props._stack ? props._stack.length : 1;
      if (many > 1) radius = Math.max(radius, clusterRadius(many));
      return {
        radius: radius, stroke: true, color: "#ffffff", weight: 1.5, opacity: 1,
        fill: true, fillColor: c, fillOpacity: many > 1 ? 0.8 : 0.95,
      };
    };
  }

  // After a tile is drawn, each count cell (and each stack of incidents on one point) gets its
  // count as SVG text on top; VectorGrid only draws shapes.
  function drawCounts(layerId, tileSize, svg, tile) {
    var data = tile.layers[layerId];
    if (!data || !data.features) return;
    var scale = tileSize / data.extent;
    var group = document.createElementNS(SVG_NS, "g");
    group.setAttribute("class", "sm-counts");
    for (var i = 0; i < data.features.length; i++) {
      var f = data.features[i];
      var props = f.properties;
      var n = props._stack ? (props._stackTop ? props._stack.length : 0) : Number(props.count);
      if (f.type !== 1 || !(n > 1)) continue;
      var p = f.geometry[0][0];
      var text = document.createElementNS(SVG_NS, "text");
      text.setAttribute("x", (p.x * scale).toFixed(1));
      text.setAttribute("y", (p.y * scale).toFixed(1));
      text.textContent = shortCount(n);
      group.appendChild(text);
    }
    svg.appendChild(group);
  }

  function featurePopup(layer, props) {
    var box = el("div", "sm-popup");
    var titleField = layer.popup.title;
    box.appendChild(el("h3", "sm-popup-title",
      titleField ? formatValue(layer, titleField, props[titleField]) : layer.title));
    box.appendChild(el("p", "sm-popup-layer", layer.title));
    var list = el("dl");
    layer.popup.fields.forEach(function (field) {
      list.appendChild(el("dt", null, layer.labels[field] || field));
      list.appendChild(el("dd", null, formatValue(layer, field, props[field])));
    });
    box.appendChild(list);
    return box;
  }

  function stackPopup(layer, stack) {
    var box = el("div", "sm-popup");
    box.appendChild(el("h3", "sm-popup-title", stack.length + " " + layer.title.toLowerCase() + " at this point"));
    var location = stack[0].location_text;
    if (location) box.appendChild(el("p", "sm-popup-layer", location));
    var by = layer.style.by || layer.popup.title;
    if (by) {
      var counts = {};
      stack.forEach(function (p) { var v = p[by] === undefined ? "—" : String(p[by]); counts[v] = (counts[v] || 0) + 1; });
      var list = el("dl");
      Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; }).slice(0, 10).forEach(function (v) {
        list.appendChild(el("dt", null, v));
        list.appendChild(el("dd", null, counts[v]));
      });
      box.appendChild(list);
    }
    return box;
  }

  // An aggregate layer's cell: its count and why small ones are missing; no zooming in to single ones.
  function aggregatePopup(layer, props) {
    var n = Number(props.count) || 0;
    var box = el("div", "sm-popup");
    box.appendChild(el("h3", "sm-popup-title", n.toLocaleString("en-GB") + " " + layer.title.toLowerCase()));
    box.appendChild(el("p", null, "in this area (areas with fewer than " + layer.min_count + " are not shown)"));
    return box;
  }

  function clusterPopup(map, layer, props, latlng) {
    var n = Number(props.count);
    var box = el("div", "sm-popup");
    box.appendChild(el("h3", "sm-popup-title", n.toLocaleString("en-GB") + (n === 1 ? " incident" : " incidents")));
    var by = layer.style.by;
    if (by && props["top_" + by] !== undefined) {
      box.appendChild(el("p", null, "Most common: " + props["top_" + by]));
    }
    var zoom = el("button", "sm-button", "Zoom in");
    zoom.type = "button";
    zoom.addEventListener("click", function () {
      map.closePopup();
      map.setView(latlng, Math.min(map.getZoom() + 2, layer.cluster.max_zoom + 1));
    });
    box.appendChild(zoom);
    return box;
  }

  function tileUrl(layer, filters) {
    var params = [];
    if (layer.filters.date && filters.from) params.push("from=" + encodeURIComponent(filters.from));
    if (layer.filters.date && filters.to) params.push("to=" + encodeURIComponent(filters.to));
    if (layer.filters.category && filters.category) params.push("category=" + encodeURIComponent(filters.category));
    return layer.tiles + (params.length ? "?" + params.join("&") : "");
  }

  // A catalog layer as vector tiles with popups. `options` (all optional): `style(base)` wraps the
  // catalog's style function (a page may hide or emphasise features); `onClick(e)` sees a click
  // first and returns true when it has handled it (no popup); `interactive: false` for background;
  // `fetchOptions` for the tile requests (an embed sends no cookie: its key is in the URL).
  function makeLayer(map, layer, options) {
    options = options || {};
    var pane = "sm-" + layer.geometry;
    if (!map.getPane(pane)) map.createPane(pane).style.zIndex = PANE_Z[layer.geometry] || 420;
    var styles = {};
    styles[layer.id] = options.style ? options.style(styleFunction(layer)) : styleFunction(layer);
    var interactive = options.interactive !== false;
    var counted = !!(layer.cluster || layer.aggregate);
    var grid = vectorGrid.grid(layer.tiles, {
      layerId: layer.id,
      onTileDecoded: counted ? function (tile) {
        var data = tile.layers[layer.id];
        if (data && data.features) markStacks(data);
      } : null,
      onTileDrawn: counted ? function (svg, tile) { drawCounts(layer.id, grid.getTileSize().x, svg, tile); } : null,
      pane: pane,
      interactive: interactive,
      minZoom: layer.minzoom,
      maxZoom: layer.maxzoom,
      attribution: layer.attribution ? escapeHtml(layer.attribution) : undefined,
      vectorTileLayerStyles: styles,
      fetchOptions: options.fetchOptions || { credentials: "same-origin" },
      // The MVT feature id is the row id (a cluster cell has none), so features can be restyled.
      getFeatureId: function (f) { return f.id !== undefined ? f.id : f.properties.id; },
    });
    if (!interactive) return grid;
    grid.on("click", function (e) {
      if (options.onClick && options.onClick(e)) return;
      var props = (e.layer && e.layer.properties) || {};
      var at = e.latlng;
      var content = layer.aggregate ? aggregatePopup(layer, props)
        : isCluster(layer, props) ? clusterPopup(map, layer, props, at)
        : props._stack ? stackPopup(layer, props._stack) : featurePopup(layer, props);
      L.popup({ maxWidth: 320, autoPanPadding: L.point(16, 16) }).setLatLng(at).setContent(content).openOn(map);
    });
    return grid;
  }

  function layerName(layer) {
    return '<span class="sm-layer-name">' + escapeHtml(layer.title) + "</span>" +
      '<span class="sm-zoom-hint" data-layer="' + escapeHtml(layer.id) + '"></span>';
  }

  function updateZoomHints(map, layers) {
    var zoom = map.getZoom();
    layers.forEach(function (layer) {
      var hints = document.querySelectorAll('.sm-zoom-hint[data-layer="' + layer.id + '"]');
      var text = zoom < layer.minzoom ? " (zoom in to see)" : zoom > layer.maxzoom ? " (zoom out to see)" : "";
      for (var i = 0; i < hints.length; i++) hints[i].textContent = text;
    });
  }

  function swatch(fill, stroke, dashed, round) {
    var s = el("span", "sm-swatch" + (round ? " sm-swatch-round" : "") + (dashed ? " sm-swatch-dashed" : ""));
    s.style.backgroundColor = fill;
    s.style.borderColor = stroke || fill;
    return s;
  }

  function legendControl(config, narrow) {
    var control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      var box = el("details", "sm-legend leaflet-bar");
      box.open = !narrow;
      box.appendChild(el("summary", null, "Legend"));
      config.layers.forEach(function (layer) {
        var section = el("section");
        var round = layer.geometry === "point";
        var entries = Object.keys(layer.style.colors || {});
        if (layer.style.by && entries.length) {
          section.appendChild(el("h4", null, layer.title));
          entries.forEach(function (value) {
            var row = el("div", "sm-legend-row");
            var c = colour(layer.style.colors[value], layer.style.color);
            row.appendChild(swatch(c, round ? "#ffffff" : c, false, round));
            row.appendChild(el("span", null, value));
            section.appendChild(row);
          });
        } else {
          var row = el("div", "sm-legend-row");
          row.appendChild(swatch(colour(layer.style.fill_color || layer.style.color, "#3388ff"), layer.style.color, false, round));
          row.appendChild(el("span", null, layer.title));
          section.appendChild(row);
        }
        if (layer.dashed_by) {
          var dashed = el("div", "sm-legend-row");
          dashed.appendChild(swatch("transparent", "#374151", true, false));
          dashed.appendChild(el("span", null, "Dashed: " + (layer.labels[layer.dashed_by] || layer.dashed_by).toLowerCase()));
          section.appendChild(dashed);
        }
        if (layer.cluster) {
          var cl = el("div", "sm-legend-row");
          var bubble = el("span", "sm-swatch sm-swatch-round sm-swatch-count", "12");
          cl.appendChild(bubble);
          cl.appendChild(el("span", null, "Number of " + layer.title.toLowerCase() + " in the area (zoom in for each one)"));
          section.appendChild(cl);
        }
        box.appendChild(section);
      });
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    return control;
  }


  window.SaferMapLayers = {
    coarsePointer: coarsePointer,
    formatValue: formatValue,
    styleFunction: styleFunction,
    featurePopup: featurePopup,
    tileUrl: tileUrl,
    makeLayer: makeLayer,
    layerName: layerName,
    updateZoomHints: updateZoomHints,
    swatch: swatch,
    legendControl: legendControl,
  };
})();
