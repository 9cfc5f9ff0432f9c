/* Newsflash /ops: polls /api/v1/ops/queues and redraws; text only via textContent (no HTML). */
(function () {
  "use strict";
  var body = document.body;
  var source = body.getAttribute("data-source");
  var refreshMs = parseInt(body.getAttribute("data-refresh-ms"), 10) || 2000;
  var failures = 0;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function td(text, cls) { return el("td", cls ? { text: String(text), "class": cls } : { text: String(text) }); }

  function fill(id, rows, empty, cols) {
    var tbody = $(id);
    tbody.textContent = "";
    if (!rows || rows.length === 0) {
      tbody.appendChild(el("tr", {}, [el("td", { text: empty, colspan: String(cols), "class": "empty" })]));
      return;
    }
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function num(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("en"); }

  function age(s) {
    if (s === null || s === undefined) { return "—"; }
    if (s < 60) { return s.toFixed(s < 10 ? 1 : 0) + " s"; }
    // Rounded first, so 119.7 s reads "2 min", not "1 min 60 s"; a zero part is left out.
    if (s < 3600) {
      var whole = Math.round(s), sec = whole % 60;
      return Math.floor(whole / 60) + " min" + (sec ? " " + sec + " s" : "");
    }
    var mins = Math.round(s / 60), min = mins % 60;
    return Math.floor(mins / 60) + " h" + (min ? " " + min + " min" : "");
  }

  // The newsroom's words for the states an alert in flight can be in (service/wording.py).
  var STATE_WORDS = { queued: "Starting", sending: "Sending" };

  function clock(iso) {
    if (!iso) { return "—"; }
    var d = new Date(iso);
    // The newsroom's zone, as every newsroom page shows times (the footer names it).
    var zone = document.body.getAttribute("data-zone") || undefined;
    try { return d.toLocaleTimeString("en-GB", { timeZone: zone }); }
    catch (e) { return d.toLocaleTimeString("en-GB"); }
  }

  function unreachable(snap, part) {
    var e = snap.errors && snap.errors[part];
    return e ? part + " " + e : part + " unreachable";
  }

  function drawAlarms(snap) {
    var box = $("alarms");
    box.textContent = "";
    var alarms = snap.alarms || [];
    box.hidden = alarms.length === 0;
    alarms.forEach(function (a) {
      box.appendChild(el("div", { "class": "alarm", "data-kind": a.kind }, [
        el("strong", { text: a.kind.replace(/_/g, " ") }),
        el("span", { text: " " + a.summary }),
        el("small", { text: " since " + clock(a.since) })
      ]));
    });
    var health = $("health");
    var down = ["broker", "database", "redis"].filter(function (k) { return snap[k] && !snap[k].ok; });
    var t = snap.thresholds || {};
    var idle = snap.alarms_evaluated_s_ago;
    if (idle === null || idle === undefined || idle > 3 * (t.interval_s || 5) + 5) {
      box.hidden = false;
      box.appendChild(el("div", { "class": "alarm", "data-kind": "alarms_not_evaluated" }, [
        el("strong", { text: "alarms not evaluated" }),
        el("span", { text: idle === null || idle === undefined ? " No alarm round has run yet: is beat running?" :
          " The last alarm round ran " + age(idle) + " ago: is beat running?" })
      ]));
    }
    // Seen by any process within the last five minutes (core/ops.py REFUSED_WINDOW_S), shown
    // without waiting for beat's alarm round.
    var refusing = snap.database && snap.database.refuses_writes && snap.database.refuses_writes.reason;
    if (down.length) {
      health.className = "pill pill-bad";
      health.textContent = down.join(", ") + " unreachable";
    } else if (refusing) {
      health.className = "pill pill-bad";
      health.textContent = "database refuses writes: " + (refusing === "disk" ? "disk full" : "read-only");
    } else if (alarms.length) {
      health.className = "pill pill-bad";
      health.textContent = alarms.length + (alarms.length === 1 ? " alarm" : " alarms");
    } else {
      health.className = "pill pill-ok";
      health.textContent = "all clear";
    }
  }

  function drawQueues(snap) {
    if (snap.queues === null) {
      fill("queues", [], unreachable(snap, "broker"), 5);
    } else {
      fill("queues", snap.queues.map(function (q) {
        var stalled = q.waiting_for_s !== null && q.waiting_for_s > (snap.thresholds || {}).stall_s;
        return el("tr", stalled ? { "class": "warn" } : {}, [
          td(q.name), td(num(q.depth), "n"), td(age(q.oldest_age_s), "n"),
          td(q.last_consumed_s_ago === null ? "never" : age(q.last_consumed_s_ago) + " ago", "n"),
          td(q.consumers === null ? "—" : q.consumers, "n")
        ]);
      }), "no queues", 5);
    }
    $("pending").textContent = "Oldest pending delivery: " + age(snap.oldest_pending_s) +
      pendingLimit(snap.thresholds);
  }

  // The pending alarm (core/alarms.py): past pending_s while at most min_rate_per_s are
  // delivered a second, or past pending_max_s whatever the pace.
  function pendingLimit(t) {
    if (!t) return "";
    return " (alarm at " + age(t.pending_s) + " if " + num(t.min_rate_per_s) +
      "/s or fewer are delivered, at " + age(t.pending_max_s) + " in any case)";
  }

  function drawRate(snap) {
    var r = snap.delivery_rate;
    var spark = $("spark");
    spark.textContent = "";
    if (!r) { $("rate").textContent = "—"; $("rate-detail").textContent = unreachable(snap, "redis"); return; }
    $("rate").textContent = r.per_second.toLocaleString("en");
    var parts = Object.keys(r.by_outcome).sort().map(function (k) { return k + " " + num(r.by_outcome[k]); });
    $("rate-detail").textContent = num(r.attempts) + " push attempts in " + r.window_s + " s" + (parts.length ? ": " + parts.join(", ") : "");
    var series = r.series || [];
    var max = Math.max.apply(null, series.concat([1]));
    var w = 300 / Math.max(1, series.length);
    series.forEach(function (v, i) {
      var h = Math.max(v > 0 ? 1 : 0, (v / max) * 46);
      var bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      bar.setAttribute("x", String(i * w)); bar.setAttribute("width", String(Math.max(1, w - 1)));
      bar.setAttribute("y", String(48 - h)); bar.setAttribute("height", String(h));
      spark.appendChild(bar);
    });
  }

  function drawFlight(snap) {
    var box = $("flight");
    box.textContent = "";
    if (snap.alerts_in_flight === null) { box.appendChild(el("p", { "class": "empty", text: unreachable(snap, "database") })); return; }
    if (snap.alerts_in_flight.length === 0) { box.appendChild(el("p", { "class": "empty", text: "Nothing sending right now." })); return; }
    snap.alerts_in_flight.forEach(function (a) {
      var pct = Math.round(a.progress * 1000) / 10;
      var bar = el("div", { "class": "bar", role: "progressbar", "aria-label": "Alert #" + a.id + " delivered", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct) }, [
        el("span", { style: "width:" + Math.min(100, pct) + "%" })
      ]);
      box.appendChild(el("div", { "class": "flight", "data-alert": a.id }, [
        el("div", { "class": "flight-head" }, [
          el("strong", { text: "#" + a.id + " " + a.title }),
          el("span", { "class": "tag", text: STATE_WORDS[a.status] || a.status }),
          el("span", { "class": "tag", text: a.lane.replace("newsflash.", "") })
        ]),
        bar,
        el("div", { "class": "flight-nums", text:
          pct + "% · " + num(a.done) + " of " + num(a.audience) + " · delivered " + num(a.delivered) +
          ", gone " + num(a.gone) + ", failed " + num(a.failed) + ", pending " + num(a.pending) +
          " · " + a.pace.text })
      ]));
    });
  }

  function drawWorkers(snap) {
    if (snap.workers === null) { fill("workers", [], unreachable(snap, snap.queues === null ? "broker" : "workers"), 4); return; }
    fill("workers", snap.workers.map(function (w) {
      var running = w.active.map(function (t) {
        return t.name.replace("newsflash.", "") + (t.args ? " " + t.args : "") + (t.running_s !== null ? " (" + age(t.running_s) + ")" : "");
      }).join("; ");
      return el("tr", {}, [
        td(w.name), td(w.queues.map(function (q) { return q.replace("newsflash.", ""); }).join(", ")),
        td(w.processes, "n"), td(running || "idle")
      ]);
    }), "No worker answered: nothing is being delivered.", 4);
  }

  function drawHosts(snap) {
    if (snap.push_hosts === null) { fill("hosts", [], unreachable(snap, "redis"), 9); return; }
    fill("hosts", snap.push_hosts.map(function (h) {
      var a = h.answers;
      var breaker = h.breaker ? "OPEN (" + h.breaker.reason + ", " + age(h.breaker.remaining_s) + " left)" :
        (h.hold ? "held (" + h.hold.reason + ", " + age(h.hold.remaining_s) + ")" : "closed");
      return el("tr", h.breaker ? { "class": "warn" } : {}, [
        td(h.host), td(num(a["2xx"]), "n"), td(num(a["404/410"]), "n"), td(num(a["429"]), "n"),
        td(num(a["4xx"]), "n"), td(num(a["5xx"]), "n"), td(num(a.timeout), "n"), td(num(a.other), "n"), td(breaker)
      ]);
    }), "No push service contacted yet.", 9);
  }

  function drawErrors(snap) {
    if (snap.recent_errors === null) { fill("errors", [], unreachable(snap, "redis"), 5); return; }
    fill("errors", snap.recent_errors.map(function (e) {
      return el("tr", {}, [
        td(clock(e.at)), td(e.alert_id === null ? "—" : "#" + e.alert_id), td(e.endpoint),
        td(e.status !== null ? "HTTP " + e.status : (e.error || e.answer)), td(e.outcome)
      ]);
    }), "No errors recorded.", 5);
  }

  // As the audience-health table words it: renewals, and how many came back after a 404/410.
  function renewedCell(d) {
    var cell = td(num(d.renewed_total), "n");
    if (d.renewed && d.renewed.restored) {
      cell.appendChild(document.createTextNode(" "));
      cell.appendChild(el("small", { text: "(" + num(d.renewed.restored) + " after 410)" }));
    }
    return cell;
  }

  function drawSubscribers(snap) {
    var s = snap.subscribers;
    if (!s) { $("subs-total").textContent = "—"; fill("topics", [], unreachable(snap, "database"), 2); fill("days", [], unreachable(snap, "database"), 4); return; }
    $("subs-total").textContent = num(s.total);
    $("tz").textContent = "(" + s.timezone + ")";
    fill("topics", Object.keys(s.per_topic).map(function (t) {
      return el("tr", {}, [td(t), td(num(s.per_topic[t]), "n")]);
    }), "No topics.", 2);
    fill("days", s.days.slice().reverse().map(function (d) {
      return el("tr", {}, [td(d.day), td(num(d["new"]), "n"), td(num(d.lost), "n"), renewedCell(d)]);
    }), "No data.", 4);
  }

  function draw(snap) {
    drawAlarms(snap); drawQueues(snap); drawRate(snap); drawFlight(snap);
    drawWorkers(snap); drawHosts(snap); drawErrors(snap); drawSubscribers(snap);
    $("updated").textContent = clock(snap.generated_at);
    $("updated").setAttribute("datetime", snap.generated_at || "");
  }

  function poll() {
    fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { window.location.reload(); throw new Error("session"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (snap) { failures = 0; draw(snap); })
      .catch(function () {
        failures += 1;
        var health = $("health");
        health.className = "pill pill-bad";
        health.textContent = "no answer from the web app (" + failures + ")";
      })
      .then(function () { window.setTimeout(poll, refreshMs); });
  }

  try { draw(JSON.parse($("initial").textContent)); } catch (e) { /* the first poll fills it */ }
  window.setTimeout(poll, refreshMs);
}());
