/* Control room (coverage page): the owner and monitored filters in the bar, and how
 * cameras are drawn (faults ringed, filtered-out features hidden).
 *
 * The filters restyle features already drawn (no new tile requests): hidden features get no stroke
 * and no fill, so they neither show nor take clicks. They apply to the cameras, their coverage and
 * their bands; the union and the gaps are of all cameras.
 */
(function (cov) {
  "use strict";

  var el = window.SaferMapCommon.el;
  var vectorGrid = window.SaferMapVectorGrid;
  var field = cov.widgets.field, number = cov.format.number;
  var FAULT_RING = "#7f1d1d";
  var HIDDEN = { stroke: false, fill: false };  // drawn as nothing, takes no clicks
  var FILTERED = { cameras: true, coverage: true, coverage_bands: true };
  var HINT = "Filters the cameras, their coverage and bands (the union and the gaps are of all cameras).";

  // `room.state` holds the choice (owner: null for every owner, else a name or "" for none
  // recorded; monitored: "" | "yes" | "no") and the camera list the choice is made from.
  // `onChange()` runs after the drawn features were restyled.
  function filters(room, onChange) {
    var state = room.state;

    function passes(layerId, props) {
      if (!FILTERED[layerId]) return true;
      var cam = props.camera_id !== undefined ? state.byId[props.camera_id] : null;
      var owner = props.owner_agency !== undefined ? props.owner_agency : cam ? cam.properties.owner_agency : null;
      if (state.owner !== null && (owner || "") !== state.owner) return false;
      if (state.monitored) {
        var monitored = props.monitored !== undefined ? props.monitored : cam ? cam.properties.monitored : undefined;
        if (monitored === undefined) return true;  // not known: shown rather than hidden
        if ((monitored === true) !== (state.monitored === "yes")) return false;
      }
      return true;
    }

    // Wraps a layer's catalog style (SaferMapLayers.makeLayer's `style` option).
    function styleWith(layer) {
      return function (base) {
        return function (props, zoom) {
          var style = base(props, zoom);
          if (layer.id === "cameras" && props.status === "faulty") {
            // Faults stand out: bigger, with a dark red ring round the red dot.
            style = L.extend({}, style, { radius: style.radius + 4, color: FAULT_RING, weight: 3 });
          }
          // A hidden feature keeps its size (a restyle does not redraw a circle's outline).
          return passes(layer.id, props) ? style : L.extend({}, style, HIDDEN);
        };
      };
    }

    // Restyles what is drawn; tiles drawn later take the current filter from the style itself.
    function restyle() {
      Object.keys(FILTERED).forEach(function (id) { if (room.grids[id]) vectorGrid.restyle(room.grids[id]); });
    }

    var form = room.ui.filters;
    var ownerSelect = field(form, "Owner", el("select"));
    ownerSelect.id = "sm-cov-owner";
    var monitoredSelect = field(form, "Monitored", el("select"));
    monitoredSelect.id = "sm-cov-monitored";
    [["", "Monitored or not"], ["yes", "Monitored only"], ["no", "Not monitored"]].forEach(function (o) {
      monitoredSelect.appendChild(el("option", null, o[1])).value = o[0];
    });

    // The owners of the cameras now listed, with their counts; a chosen owner stays chosen.
    var owners = [];
    function ownerOptions() {
      var counts = {};
      state.cameras.forEach(function (f) { var o = f.properties.owner_agency || ""; counts[o] = (counts[o] || 0) + 1; });
      owners = Object.keys(counts).sort(function (a, b) { return a === "" ? 1 : b === "" ? -1 : a.localeCompare(b); });
      var chosen = state.owner;
      ownerSelect.textContent = "";
      ownerSelect.appendChild(el("option", null, "All owners (" + number(state.cameras.length) + ")")).value = "all";
      owners.forEach(function (o, i) {
        var opt = ownerSelect.appendChild(el("option", null, (o || "Owner not recorded") + " (" + counts[o] + ")"));
        opt.value = String(i);
        if (chosen !== null && o === chosen) opt.selected = true;
      });
      if (chosen !== null && owners.indexOf(chosen) < 0) state.owner = null;
    }

    function apply() {
      state.owner = ownerSelect.value === "all" ? null : owners[Number(ownerSelect.value)];
      if (state.owner === undefined) state.owner = null;
      state.monitored = monitoredSelect.value;
      restyle();
      onChange();
    }
    ownerSelect.addEventListener("change", apply);
    monitoredSelect.addEventListener("change", apply);
    form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
    form.title = HINT;
    form.appendChild(el("span", "sm-cov-filter-hint", HINT));

    return { passes: passes, styleWith: styleWith, restyle: restyle, ownerOptions: ownerOptions };
  }

  cov.filters = filters;
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
