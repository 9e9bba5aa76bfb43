// Palisade console: the only script. Pages work without it; it adds the live alert feed.
// No inline handlers (the Content-Security-Policy forbids them), no HTML built from strings.
"use strict";

(function () {
  function cell(row, child) {
    var td = document.createElement("td");
    td.appendChild(child);
    row.appendChild(td);
  }
  function text(s) {
    return document.createTextNode(s == null ? "" : String(s));
  }
  function link(href, label, code) {
    var a = document.createElement("a");
    a.href = href;
    if (code) {
      var c = document.createElement("code");
      c.textContent = label;
      a.appendChild(c);
    } else {
      a.textContent = label;
    }
    return a;
  }
  function badge(sev) {
    var s = document.createElement("span");
    s.className = "sev sev-" + String(sev).replace(/[^a-z]/g, "");
    s.textContent = sev;
    return s;
  }
  // A time as the pages print it: milliseconds since the epoch (the stream) or RFC 3339.
  function when(t) {
    var d = new Date(t);
    if (isNaN(d.getTime())) return t == null ? "" : String(t);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // A tbody with data-stream: rows keyed by data-alert-id, newest first, updated in place.
  // data-status, when set, lists the statuses the table shows (an alert leaving them leaves).
  function liveAlerts(tbody) {
    var status = document.getElementById("live-status");
    var empty = document.getElementById("live-empty");
    var max = parseInt(tbody.getAttribute("data-max") || "50", 10);
    // Which alert fields make a row, in order (data-columns); the overview's five by default.
    var columns = (tbody.getAttribute("data-columns") || "severity,title,device,status,last_seen").split(",");
    var source = new EventSource(tbody.getAttribute("data-stream"));
    source.addEventListener("open", function () {
      if (status) status.textContent = "live";
      tbody.setAttribute("data-live", "open");
    });
    source.addEventListener("error", function () {
      if (status) status.textContent = "reconnecting…";
      tbody.setAttribute("data-live", "reconnecting");
    });
    source.addEventListener("alert", function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      var a = msg && msg.alert;
      if (!a || typeof a.id !== "string") return;
      var row = document.createElement("tr");
      row.setAttribute("data-alert-id", a.id);
      row.className = "fresh";
      for (var i = 0; i < columns.length; i++) {
        var c = columns[i];
        if (c === "severity") cell(row, badge(a.severity));
        else if (c === "title") cell(row, link("/ui/alerts/" + encodeURIComponent(a.id), a.title, false));
        else if (c === "device") cell(row, link("/ui/devices/" + encodeURIComponent(a.device_id), a.device_id, true));
        else if (c === "last_seen") cell(row, text(when(a.last_ms)));
        else {
          cell(row, text(a[c]));
          if (c === "count" || c === "escalation_step") row.lastChild.className = "num";
        }
      }
      var old = tbody.querySelector('tr[data-alert-id="' + CSS.escape(a.id) + '"]');
      if (old) old.remove();
      var only = tbody.getAttribute("data-status");
      if (only && only.split(",").indexOf(a.status) < 0) return;
      tbody.insertBefore(row, tbody.firstChild);
      while (tbody.rows.length > max) tbody.deleteRow(tbody.rows.length - 1);
      if (empty) empty.hidden = true;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var feeds = document.querySelectorAll("tbody[data-stream]");
    for (var i = 0; i < feeds.length; i++) liveAlerts(feeds[i]);
  });
})();
