/* Safe walking routes page: the request form. The start and the end are set by clicking the map
 * (the field being edited takes the click), by "My position" (the browser's location), or by typing
 * a street name, matched against the partnership's own streets (GET /api/routes/streets): no
 * geocoder, nothing leaves the server. */
(function (R) {
  "use strict";

  var common = window.SaferMapCommon;
  var el = common.el;
  var LABELS = { from: "Start", to: "End" };

  function endField(ctx, key) {
    var box = el("div", "sm-rt-end");
    var label = el("label", "sm-rt-label", LABELS[key]);
    var input = el("input", "sm-rt-input");
    input.type = "search";
    input.id = "sm-rt-" + key;
    input.placeholder = "Street name, or click the map";
    input.autocomplete = "off";
    label.htmlFor = input.id;
    var row = el("div", "sm-rt-row");
    row.appendChild(input);
    var here = el("button", "sm-button sm-rt-here", "My position");
    here.type = "button";
    row.appendChild(here);
    var list = el("ul", "sm-rt-matches");
    list.setAttribute("aria-label", LABELS[key] + ": matching streets");
    box.appendChild(label);
    box.appendChild(row);
    box.appendChild(list);

    var timer = null;
    input.addEventListener("focus", function () { ctx.setActive(key); });
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2) { list.textContent = ""; return; }
      timer = setTimeout(function () {
        common.fetchJson(ctx.config.links.streets + "?q=" + encodeURIComponent(q)).then(function (body) {
          list.textContent = "";
          body.streets.forEach(function (s) {
            var item = el("li");
            var pick = el("button", "sm-rt-match", s.name);
            pick.type = "button";
            pick.addEventListener("click", function () {
              list.textContent = "";
              ctx.setEnd(key, { lon: s.lon, lat: s.lat, label: s.name });
            });
            item.appendChild(pick);
            list.appendChild(item);
          });
          if (!body.streets.length) list.appendChild(el("li", "sm-rt-none", "No street of that name here."));
        }).catch(function (err) { ctx.showError(err.message); });
      }, 250);
    });
    here.addEventListener("click", function () {
      if (!navigator.geolocation) { ctx.showError("This browser cannot tell its position."); return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        ctx.setEnd(key, { lon: pos.coords.longitude, lat: pos.coords.latitude, label: "My position" });
      }, function () { ctx.showError("Your position is not available (permission refused or no signal)."); },
      { enableHighAccuracy: true, timeout: 15000 });
    });
    return { box: box, input: input };
  }

  function select(id, label, options, value) {
    var box = el("div", "sm-rt-field");
    var l = el("label", "sm-rt-label", label);
    var s = el("select", "sm-rt-input");
    s.id = id;
    l.htmlFor = id;
    options.forEach(function (o) {
      var opt = el("option", null, o[1]);
      opt.value = o[0];
      s.appendChild(opt);
    });
    s.value = value;
    box.appendChild(l);
    box.appendChild(s);
    return { box: box, input: s };
  }

  R.search = function (ctx) {
    var form = el("form", "sm-rt-form");
    form.setAttribute("aria-label", "Route");
    var fields = { from: endField(ctx, "from"), to: endField(ctx, "to") };
    form.appendChild(fields.from.box);
    form.appendChild(fields.to.box);

    var options = el("div", "sm-rt-options");
    var profile = select("sm-rt-profile", "Route", [["safest", "Safest (and shortest)"], ["shortest", "Shortest only"]],
      ctx.config.defaults.profile);
    var when = select("sm-rt-when", "When", [["", "Now"], ["day", "In daylight"], ["night", "After dark"], ["at", "At a time…"]], "");
    var at = el("input", "sm-rt-input sm-rt-at");
    at.type = "datetime-local";
    at.hidden = true;
    at.setAttribute("aria-label", "Date and time of the walk");
    when.box.appendChild(at);
    var detourBox = el("div", "sm-rt-field");
    var detourLabel = el("label", "sm-rt-label");
    var detour = el("input", "sm-rt-range");
    detour.type = "range";
    detour.id = "sm-rt-detour";
    detour.min = String(ctx.config.defaults.min_detour);
    detour.max = "2";
    detour.step = "0.05";
    detour.value = String(ctx.config.defaults.max_detour);
    detourLabel.htmlFor = detour.id;
    function detourText() { detourLabel.textContent = "Longest detour: " + Math.round((Number(detour.value) - 1) * 100) + " % longer"; }
    detourText();
    detour.addEventListener("input", detourText);
    detourBox.appendChild(detourLabel);
    detourBox.appendChild(detour);
    options.appendChild(profile.box);
    options.appendChild(when.box);
    options.appendChild(detourBox);
    form.appendChild(options);
    when.input.addEventListener("change", function () { at.hidden = when.input.value !== "at"; });

    var go = el("button", "sm-button sm-rt-go", "Find routes");
    go.type = "submit";
    form.appendChild(go);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); ctx.run(); });
    ctx.ui.side.appendChild(form);

    return {
      fields: fields,
      params: function () {
        var time = when.input.value === "at" ? at.value : when.input.value;
        return { profile: profile.input.value, max_detour: detour.value, time: time };
      },
      restore: function (params) {
        if (params.profile) profile.input.value = params.profile;
        if (params.max_detour) { detour.value = params.max_detour; detourText(); }
        if (params.time === "day" || params.time === "night") when.input.value = params.time;
        else if (params.time) { when.input.value = "at"; at.hidden = false; at.value = String(params.time).slice(0, 16); }
      },
    };
  };
})(window.SaferMapRoutes = window.SaferMapRoutes || {});
