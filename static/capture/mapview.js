/* The capture page's map: the partnership's own streets and buildings as vector tiles (no base map
 * from the internet, and kept by the service worker for use with no signal), the device's position
 * with its accuracy circle, the cameras kept on the device, and the camera being placed or edited:
 * a marker to drag, a round handle to drag round it for the direction, and its coverage wedge
 * redrawn on every movement from the server's rule (geo.js). */
(function () {
  "use strict";

  const C = window.SaferCapture, geo = C.geo, util = C.util;
  const HANDLE_PX = 84;   // the direction handle sits this far from the camera on screen
  const STATUS_COLOUR = { operational: "#166534", faulty: "#b91c1c", decommissioned: "#4b5563", planned: "#6d28d9" };

  // A 44 px target round a smaller visible dot (styled by class in capture.css).
  function icon(className) {
    return L.divIcon({ className: "cap-mark " + className, html: util.el("span", "cap-mark-dot"),
      iconSize: [44, 44], iconAnchor: [22, 22] });
  }

  class MapView {
    constructor(config, hooks) {
      this.config = config;
      this.hooks = hooks;
      this.rule = null;
      const map = this.map = L.map("cap-map", { zoomControl: true, maxZoom: 20, minZoom: 3 });
      map.attributionControl.setPrefix(false);
      const b = config.bounds;
      if (b) map.fitBounds(b, { maxZoom: 17 }); else map.setView([54, -2.5], 6);
      map.createPane("cap-wedges").style.zIndex = 390;
      map.createPane("cap-draft").style.zIndex = 395;
      config.background.forEach((layer) => this.addBackground(layer));
      L.control.scale({ imperial: false }).addTo(map);
      this.cameraLayer = L.layerGroup().addTo(map);
      this.wedgeLayer = L.layerGroup().addTo(map);
      this.fixLayer = L.layerGroup().addTo(map);
      this.editor = null;
      map.on("click", (e) => this.hooks.onTap(e.latlng));
      map.on("zoomend", () => { if (this.editor) this.editor.placeHandle(); });
    }

    addBackground(layer) {
      const s = layer.style || {};
      const style = layer.geometry === "polygon"
        ? { stroke: true, color: s.color || "#9ca3af", weight: s.weight || 0.5, fill: true,
            fillColor: s.fill_color || s.color || "#e5e7eb", fillOpacity: s.fill_opacity || 0.6 }
        : { stroke: true, color: "#6b7280", weight: Math.max(2, s.weight || 1.5), opacity: 0.9, fill: false };
      const styles = {};
      styles[layer.id] = style;
      L.vectorGrid.protobuf(layer.tiles, {
        vectorTileLayerStyles: styles, interactive: false, minZoom: layer.minzoom, maxZoom: 20,
        maxNativeZoom: Math.min(18, layer.maxzoom), fetchOptions: { credentials: "same-origin" },
        attribution: layer.attribution ? util.el("span", null, layer.attribution).outerHTML : undefined,
      }).addTo(this.map);
    }

    // -- the device's position -----------------------------------------------------------------
    showFix(fix, centre) {
      this.fixLayer.clearLayers();
      if (!fix) return;
      const at = [fix.lat, fix.lon];
      L.circle(at, { radius: fix.accuracy, color: "#1d4ed8", weight: 2, fillOpacity: 0.12, interactive: false })
        .addTo(this.fixLayer);
      L.circleMarker(at, { radius: 7, color: "#fff", weight: 3, fillColor: "#1d4ed8", fillOpacity: 1, interactive: false })
        .addTo(this.fixLayer);
      if (centre) this.map.setView(at, Math.max(this.map.getZoom(), fix.accuracy > 60 ? 17 : 18));
    }

    // -- cameras kept on the device ---------------------------------------------------------------
    showCameras(cameras, selectedId) {
      this.cameraLayer.clearLayers();
      this.wedgeLayer.clearLayers();
      cameras.forEach((cam) => {
        const p = cam.properties || {};
        const at = [cam.geometry.coordinates[1], cam.geometry.coordinates[0]];
        const status = cam.pending ? "pending" : p.status;
        if (this.rule && p.status !== "decommissioned" && !(this.editor && this.editor.cameraId === cam.id)) {
          const v = geo.plain(this.rule, p);
          L.polygon(geo.shape(this.config.grid, at[0], at[1], p.bearing, v.fov, v.range_m), {
            pane: "cap-wedges", color: STATUS_COLOUR[p.status] || "#6b7280", weight: 1, opacity: 0.7,
            fillOpacity: 0.12, interactive: false, dashArray: v.assumed ? "4 4" : null,
          }).addTo(this.wedgeLayer);
        }
        const m = L.marker(at, { icon: icon("cap-mark-" + (status || "operational") +
          (cam.id === selectedId ? " cap-mark-selected" : "")),
          title: util.cameraLabel(p, cam.id), keyboard: true });
        m.on("click", (e) => { L.DomEvent.stopPropagation(e); this.hooks.onSelect(cam); });
        m.addTo(this.cameraLayer);
      });
    }

    // -- the camera being placed or edited ----------------------------------------------------------
    edit(values, options) {
      this.stopEditing();
      this.editor = new Editor(this, values, options || {});
      return this.editor;
    }

    stopEditing() {
      if (this.editor) this.editor.remove();
      this.editor = null;
    }

    metresPerPixel() {
      const c = this.map.getCenter();
      const q = this.map.containerPointToLatLng(this.map.latLngToContainerPoint(c).add([100, 0]));
      return geo.distance({ lat: c.lat, lon: c.lng }, { lat: q.lat, lon: q.lng }) / 100;
    }
  }

  // A camera on the map with its wedge and direction handle. `values` is changed in place
  // (lat, lon, bearing as a grid bearing) and options.onChange(values, what) is told.
  class Editor {
    constructor(view, values, options) {
      this.view = view;
      this.map = view.map;
      this.values = values;
      this.options = options;
      this.cameraId = options.cameraId;
      const at = [values.lat, values.lon];
      this.wedge = L.polygon([at], { pane: "cap-draft", color: "#0b3d91", weight: 3, fillColor: "#f59e0b",
        fillOpacity: 0.35, interactive: false }).addTo(this.map);
      this.marker = L.marker(at, { icon: icon("cap-mark-draft"), draggable: options.movable !== false,
        zIndexOffset: 1000, title: "Camera: drag to move", keyboard: false }).addTo(this.map);
      this.handle = L.marker(at, { icon: icon("cap-mark-handle"), draggable: true,
        zIndexOffset: 1100, title: "Direction: drag round the camera", keyboard: false }).addTo(this.map);
      this.marker.on("drag", () => {
        const p = this.marker.getLatLng();
        this.values.lat = p.lat;
        this.values.lon = p.lng;
        this.redraw();
        this.placeHandle();
      });
      this.marker.on("dragend", () => this.options.onChange(this.values, "moved"));
      this.handle.on("drag", () => {
        const c = this.map.latLngToContainerPoint(this.marker.getLatLng());
        const h = this.map.latLngToContainerPoint(this.handle.getLatLng());
        if (Math.abs(h.x - c.x) + Math.abs(h.y - c.y) < 4) return;
        const azimuth = geo.norm(Math.atan2(h.x - c.x, c.y - h.y) * 180 / Math.PI);
        this.values.bearing = util.round(geo.gridBearing(view.config.grid, this.values.lat, this.values.lon, azimuth), 1);
        this.redraw();
        this.options.onChange(this.values, "turning");
      });
      this.handle.on("dragend", () => { this.placeHandle(); this.options.onChange(this.values, "turned"); });
      this.redraw();
      this.placeHandle();
    }

    coverage() { return this.view.rule ? geo.plain(this.view.rule, this.values) : null; }

    // The wedge exactly as the server will store it for these values.
    preview() {
      const v = this.coverage();
      if (!v) return [];
      return geo.shape(this.view.config.grid, this.values.lat, this.values.lon, this.values.bearing, v.fov, v.range_m);
    }

    redraw() {
      this.wedge.setLatLngs(this.preview());
      const v = this.values;
      const turnable = this.view.rule && geo.plain(this.view.rule, Object.assign({}, v, { bearing: 0 })).fov < 360;
      const el = this.handle.getElement();
      if (el) {
        el.style.display = turnable ? "" : "none";
        el.classList.toggle("cap-mark-unset", v.bearing === null || v.bearing === undefined);
      }
    }

    placeHandle() {
      const v = this.values;
      const t = geo.trueAzimuth(this.view.config.grid, v.lat, v.lon, v.bearing || 0) * Math.PI / 180;
      const c = this.map.latLngToContainerPoint([v.lat, v.lon]);
      this.handle.setLatLng(this.map.containerPointToLatLng(c.add([HANDLE_PX * Math.sin(t), -HANDLE_PX * Math.cos(t)])));
      this.marker.setLatLng([v.lat, v.lon]);
    }

    remove() {
      [this.wedge, this.marker, this.handle].forEach((l) => this.map.removeLayer(l));
    }
  }

  C.MapView = MapView;
})();
