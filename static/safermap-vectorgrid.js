/* The one place SaferMap reaches into Leaflet.VectorGrid's private members (leaflet.vectorgrid
 * 1.3.0, pinned in package.json). Pages draw vector tiles with `SaferMapVectorGrid.Grid` and touch
 * drawn features only through `restyle` and `drawnFeatures`, so an upgrade of VectorGrid means
 * reading this file and running tests/test_vectorgrid_adapter.py, which checks each override below
 * in Chromium.
 *
 * What the grid adds to L.VectorGrid.Protobuf, all optional:
 *   onTileDecoded(tile, coords)        a decoded tile, before it is drawn (e.g. mark stacked points)
 *   onTileDrawn(svg, tile, coords)     the drawn tile's <svg> and its data (e.g. draw counts on top)
 * and two fixes: a click on a point feature has a position, and a tile whose fetch fails finishes
 * with a `tileerror` instead of an unhandled rejection and a tile that never loads.
 */
(function () {
  "use strict";

  var Protobuf = L.VectorGrid.Protobuf;
  var base = Protobuf.prototype;

  var Grid = Protobuf.extend({
    options: { onTileDecoded: null, onTileDrawn: null },

    // Override of the public GridLayer hook, because VectorGrid's own createTile ends by calling
    // `done()` with neither an error nor the tile, and has no event between decoding and drawing.
    // VectorGrid calls _getVectorTilePromise synchronously from here, so a per-call slot (not a
    // key shared by a tile and its redraw) carries the decoded tile and any fetch error across.
    createTile: function (coords, done) {
      var self = this;
      var slot = { tile: null, error: null };
      this._smSlot = slot;
      var svg = base.createTile.call(this, coords, function () {
        if (slot.tile && self.options.onTileDrawn) self.options.onTileDrawn(svg, slot.tile, coords);
        done(slot.error, svg);  // an error makes Leaflet fire `tileerror`
      });
      this._smSlot = null;
      return svg;
    },

    // Private (_getVectorTilePromise fetches and decodes one tile). Wrapped to hand the decoded tile
    // to `onTileDecoded` and to createTile above, and because VectorGrid lets a failed fetch
    // (offline, aborted, refused by CSP) reject unhandled: its tile then never finishes, so the
    // layer never fires `load`. A failure becomes an empty tile plus the error for `done`.
    _getVectorTilePromise: function (coords) {
      var self = this;
      var slot = this._smSlot || { tile: null, error: null };
      return base._getVectorTilePromise.call(this, coords).catch(function (error) {
        slot.error = error instanceof Error ? error : new Error(String(error));
        return { layers: {} };
      }).then(function (tile) {
        if (self.options.onTileDecoded) self.options.onTileDecoded(tile, coords);
        slot.tile = tile;
        return tile;
      });
    },

    // Private (_createLayer makes one feature's symbol). Leaflet takes any clicked layer with a
    // getLatLng for a marker and asks it where the click was; VectorGrid's point symbols inherit
    // CircleMarker's getLatLng without ever having a _latlng, so a click on a small point threw
    // and opened nothing. Each point symbol gets its real position (which is also where popups open).
    _createLayer: function (feat, pxPerExtent, layerStyle) {
      var symbol = base._createLayer.call(this, feat, pxPerExtent, layerStyle);
      if (feat.type === 1) {
        var grid = this;
        var inTile = L.point(feat.geometry[0][0]).scaleBy(pxPerExtent);  // as VectorGrid places it
        symbol.getLatLng = function () { return pointLatLng(grid, symbol, inTile); };
      }
      return symbol;
    },
  });

  // Where a drawn point is on the map: its tile's corner plus its place in the tile. The tile is the
  // symbol's renderer (Leaflet's private _renderer, set by VectorGrid when it draws the symbol).
  function pointLatLng(grid, symbol, inTile) {
    var map = grid._map, renderer = symbol._renderer;
    if (!map || !renderer) return null;
    var coords = renderer.getCoord();
    var corner = coords.scaleBy(grid.getTileSize());
    return map.unproject(corner.add(inTile), coords.z);
  }

  // Every feature drawn now, as {properties, element (its SVG node), tile (its renderer)}. Reads
  // VectorGrid's private per-tile index (_vectorTiles, each renderer's _features), kept only when
  // the grid has a getFeatureId; a feature without an id shares the key "undefined" with others,
  // so features that matter here must have ids.
  function drawnFeatures(grid) {
    var out = [];
    var tiles = grid._vectorTiles || {};
    Object.keys(tiles).forEach(function (key) {
      var tile = tiles[key];
      var features = tile._features || {};
      Object.keys(features).forEach(function (id) {
        var symbol = features[id].feature;
        out.push({ id: id, properties: symbol.properties, element: symbol._path, symbol: symbol, tile: tile,
          layerName: features[id].layerName });
      });
    });
    return out;
  }

  // Draws every feature already on the map again with its layer's current style function, without
  // fetching a tile (tiles drawn later take the style function as they come). VectorGrid's public
  // setFeatureStyle restyles by id but also pins that style for every later tile, so a filter that
  // changes would stick; this calls the private _updateStyles that setFeatureStyle uses instead.
  function restyle(grid) {
    var styles = grid.options.vectorTileLayerStyles;
    drawnFeatures(grid).forEach(function (f) {
      var style = styles[f.layerName] || L.Path.prototype.options;
      grid._updateStyles(f.symbol, f.tile, style);
    });
  }

  window.SaferMapVectorGrid = {
    Grid: Grid,
    grid: function (url, options) { return new Grid(url, options); },
    drawnFeatures: drawnFeatures,
    restyle: restyle,
  };
})();
