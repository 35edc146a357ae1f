/* Control room (coverage page): the small pieces of DOM every panel is built from,
 * and what a footage list says about one camera. Text goes in through textContent only. */
(function (cov) {
  "use strict";

  var el = window.SaferMapCommon.el;
  var format = cov.format;

  function button(text, className, onClick) {
    var b = el("button", "sm-button" + (className ? " " + className : ""), text);
    b.type = "button";
    if (onClick) b.addEventListener("click", onClick);
    return b;
  }

  function field(parent, labelText, input, className) {
    var label = el("label", "sm-cov-field" + (className ? " " + className : ""));
    label.appendChild(el("span", null, labelText));
    label.appendChild(input);
    parent.appendChild(label);
    return input;
  }

  function message(parent, className) {
    var p = el("p", "sm-cov-message" + (className ? " " + className : ""));
    p.setAttribute("role", "status");
    parent.appendChild(p);
    return p;
  }

  function section(parent, id, title) {
    var box = el("section", "sm-cov-section");
    box.id = id;
    var heading = el("h2", null, title);
    heading.id = id + "-title";
    box.setAttribute("aria-labelledby", heading.id);
    box.appendChild(heading);
    parent.appendChild(box);
    return { box: box, heading: heading };
  }

  // A numbered or lettered mark on the map (the text goes in as a text node).
  function markIcon(text, className) {
    return L.divIcon({ className: "sm-cov-mark " + className, html: el("span", null, text),
      iconSize: [26, 26], iconAnchor: [13, 13] });
  }

  // What a footage list says about one camera: who, how to reach them, how good the view, by when.
  // `extra(fact)` adds a tool's own facts before the deadline.
  function cameraEntry(entry, index, config, extra) {
    var item = el("li", "sm-cov-camera");
    var head = el("div", "sm-cov-camera-head");
    head.appendChild(el("span", "sm-cov-num", index));
    var who = el("span", "sm-cov-camera-who");
    who.appendChild(el("strong", null, entry.reference));
    if (entry.name) who.appendChild(el("span", "sm-cov-camera-name", entry.name));
    head.appendChild(who);
    item.appendChild(head);
    var facts = el("dl", "sm-cov-facts");
    function fact(label, value, className) {
      facts.appendChild(el("dt", null, label));
      return facts.appendChild(el("dd", className || null, value));
    }
    fact("Owner", entry.owner_agency || "not recorded");
    fact("Contact", entry.contact || "not recorded");
    fact("Monitored", entry.monitored ? "Yes" : "No");
    fact("View", (entry.band ? entry.band : "no quality band") +
      (entry.distance_m !== undefined && entry.distance_m !== null ? ", " + Math.round(entry.distance_m) + " m away" : "") +
      (entry.coverage_assumed ? " (coverage assumed)" : ""));
    if (extra) extra(fact);
    var state = format.deadlineState(entry, config.due_soon_days);
    var deadline = fact("Request by", format.ukTime(entry.request_by) +
      (state === "expired" ? " — expired" : state === "due-soon" ? " — due soon" : "") +
      (entry.retention_assumed ? " (31 days assumed)" : ""), "sm-cov-deadline sm-cov-" + state);
    deadline.setAttribute("data-state", state);
    if (!entry.status_known) fact("Status then", "not known (registered later): " + entry.status_at_time);
    item.appendChild(facts);
    return item;
  }

  // A tool's results: a line saying where, the cameras, those not working then, and a print link.
  function cameraLists(box, listId, printText, printId) {
    var where = el("p", "sm-cov-where");
    box.appendChild(where);
    var list = el("ol", "sm-cov-cameras");
    list.id = listId;
    box.appendChild(list);
    var faultyTitle = el("h3", "sm-cov-subtitle");
    box.appendChild(faultyTitle);
    var faultyList = el("ol", "sm-cov-cameras sm-cov-not-operational");
    box.appendChild(faultyList);
    var print = el("a", "sm-button sm-cov-print", printText);
    print.id = printId;
    print.target = "_blank";
    print.rel = "noopener";
    print.hidden = true;
    box.appendChild(print);
    return { where: where, list: list, faultyTitle: faultyTitle, faultyList: faultyList, print: print };
  }

  // Those not working at the time asked about, under the list of those that were.
  function showNotOperational(out, cameras, config) {
    out.faultyTitle.textContent = cameras.length
      ? "Faulty at that time (" + cameras.length + "): ask the owner whether it recorded" : "";
    cameras.forEach(function (c) { out.faultyList.appendChild(cameraEntry(c, "!", config)); });
  }

  cov.widgets = {
    button: button, field: field, message: message, section: section, markIcon: markIcon,
    cameraEntry: cameraEntry, cameraLists: cameraLists, showNotOperational: showNotOperational,
  };
})(window.SaferMapCoverage = window.SaferMapCoverage || {});
