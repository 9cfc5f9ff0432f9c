/* Newsflash newsroom: progressive enhancement only. Every page works without this file;
   it adds counters, the live preview, the audience size, prefill without a reload, the undo
   countdown and the live report. Text from editors is only ever set with textContent. */
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function csrfToken() {
    var input = $('input[name="csrf_token"]');
    return input ? input.value : "";
  }
  function formatNumber(n) { return Number(n).toLocaleString("en-US"); }

  // -- the phone menu: the navigation folds behind one button below 700 px ---------------------
  function wireMenu() {
    var toggle = $("[data-menu-toggle]");
    var top = $("#nf-top");
    if (!toggle || !top) return;
    toggle.addEventListener("click", function () {
      var open = top.classList.toggle("is-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // -- one-line fields that wrap (the headline): grow with the text, Enter adds no line, pasted line
  // breaks become spaces (a headline is one line; the server refuses line breaks in it) ---------
  function wireOneLine() {
    $$("textarea[data-one-line]").forEach(function (field) {
      function grow() {
        field.style.height = "auto";
        field.style.height = field.scrollHeight + 2 + "px";
      }
      field.addEventListener("keydown", function (event) {
        if (event.key === "Enter") event.preventDefault();
      });
      field.addEventListener("input", function () {
        if (/[\r\n]/.test(field.value)) field.value = field.value.replace(/[\r\n]+/g, " ");
        grow();
      });
      window.addEventListener("resize", grow);
      grow();
    });
  }

  // -- character counters: warn at 90 % of the limit; over it, say so (the server refuses it,
  // nothing is ever cut) ------------------------------------------------------------------------
  function wireCounters() {
    $$("[data-counter-for]").forEach(function (counter) {
      var field = document.getElementById(counter.getAttribute("data-counter-for"));
      var limit = Number(counter.getAttribute("data-limit"));
      if (!field || !limit) return;
      function update() {
        // Characters as the server counts them (code points): an emoji is one, not two.
        var n = Array.from(field.value).length;
        counter.textContent = n + " / " + limit;
        counter.classList.toggle("is-near", n >= Math.floor(limit * 0.9) && n <= limit);
        counter.classList.toggle("is-over", n > limit);
        counter.textContent = n > limit ? n + " / " + limit + " — " + (n - limit) + " too many" : n + " / " + limit;
        counter.title = n >= limit ? "At the limit" : (limit - n) + " characters left";
        if (n > limit) field.setAttribute("aria-invalid", "true");
        else if (!field.hasAttribute("data-server-invalid")) field.removeAttribute("aria-invalid");
      }
      field.addEventListener("input", update);
      update();
    });
  }

  // -- live previews: one per platform, each cutting where that platform does (the limits come
  // from the server in data-title-max / data-body-max; see service/previews.py) --------------
  function clip(text, limit) {
    var chars = Array.from(text.replace(/\s+/g, " ").trim());
    if (!limit || chars.length <= limit) return chars.join("");
    return chars.slice(0, limit - 1).join("").replace(/\s+$/, "") + "\u2026";
  }
  function wirePreview() {
    $$("[data-preview-source]").forEach(function (field) {
      var name = field.getAttribute("data-preview-source");
      var targets = $$('[data-preview="' + name + '"]');
      if (!targets.length) return;
      function update() {
        var value = field.value.trim();
        targets.forEach(function (target) {
          if (name === "image") {
            if (/^https?:\/\//i.test(value)) {
              target.src = value;
              target.hidden = false;
            } else {
              target.removeAttribute("src");
              target.hidden = true;
            }
            return;
          }
          var card = target.closest("[data-platform]");
          var limit = card ? Number(card.getAttribute("data-" + name + "-max")) : 0;
          target.textContent = clip(value || target.getAttribute("data-empty") || "", limit);
        });
      }
      field.addEventListener("input", update);
      field.addEventListener("change", update);
    });
    $$('[data-preview="image"]').forEach(function (image) {
      image.addEventListener("error", function () { image.hidden = true; });
    });
  }

  // -- audience size for the ticked topics ----------------------------------------------------
  function wireAudience(form) {
    var url = form.getAttribute("data-audience-url");
    var out = $("[data-audience]");
    var everyone = $("[data-all-topics]");
    if (!url || !out) return;
    var seq = 0;
    function update() {
      var ticked = $$('input[name="topics"]:checked', form).map(function (box) { return box.value; });
      var query = ticked.map(function (t) { return "topics=" + encodeURIComponent(t); }).join("&");
      var mine = ++seq;
      fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data || mine !== seq) return;
          out.textContent = formatNumber(data.audience);
          if (everyone) everyone.hidden = !data.all_topics;
        })
        .catch(function () {});
    }
    $$('input[name="topics"]', form).forEach(function (box) { box.addEventListener("change", update); });
  }

  // -- send_at only matters for "At" -------------------------------------------------------------
  function wireWhen(form) {
    var at = $('input[name="send_at"]', form);
    if (!at) return;
    function update() {
      var later = $('input[name="when"][value="later"]', form);
      at.disabled = !(later && later.checked);
    }
    $$('input[name="when"]', form).forEach(function (r) { r.addEventListener("change", update); });
    at.addEventListener("focus", function () {
      var later = $('input[name="when"][value="later"]', form);
      if (later) { later.checked = true; update(); }
    });
    update();
    // A disabled field is not submitted; the server reads "when" first anyway.
  }

  // -- prefill from the article without a reload ---------------------------------------------------
  function wirePrefill(form) {
    var button = $("#prefill", form);
    var url = form.getAttribute("data-prefill-url");
    var status = $("#prefill-status");
    if (!button || !url) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var articleUrl = $("#url", form).value.trim();
      if (!articleUrl) { status.textContent = "Paste the article URL first."; return; }
      button.disabled = true;
      status.textContent = "Reading the article…";
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ url: articleUrl })
      })
        .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
        .then(function (answer) {
          if (!answer.ok) {
            status.textContent = (answer.data.error && answer.data.error.message) || "Could not read the article.";
            return;
          }
          ["title", "body", "image"].forEach(function (name) {
            var field = $("#" + name, form);
            if (field && answer.data[name]) {
              field.value = answer.data[name];
              field.dispatchEvent(new Event("input"));
            }
          });
          status.textContent = "Filled in from the article: check and edit before sending.";
        })
        .catch(function () { status.textContent = "Could not read the article."; })
        .then(function () { button.disabled = false; });
    });
  }

  // -- forms: confirmations and no double submits ------------------------------------------------
  function wireForms() {
    $$("form").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) { event.preventDefault(); return; }
        if (form.getAttribute("data-submitted")) { event.preventDefault(); return; }
        form.setAttribute("data-submitted", "1");
        // Disable after the browser has read the clicked button's name and value.
        setTimeout(function () {
          $$('button[type="submit"]', form).forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });
    window.addEventListener("pageshow", function (event) {
      if (!event.persisted) return;
      $$("form[data-submitted]").forEach(function (form) {
        form.removeAttribute("data-submitted");
        $$('button[type="submit"]', form).forEach(function (b) { b.disabled = false; });
      });
    });
  }

  // -- undo countdown ---------------------------------------------------------------------------------
  function wireCountdown() {
    var el = $("[data-countdown-to]");
    if (!el) return;
    var until = Number(el.getAttribute("data-countdown-to")) * 1000;
    var skew = 0;
    function tick() {
      var left = Math.max(0, Math.ceil((until - Date.now() - skew) / 1000));
      el.textContent = String(left);
      if (left > 0) setTimeout(tick, 250);
    }
    tick();
  }

  // -- live report: counts, pace and the held banner every 1.5 s while the alert is not finished
  // (or a stopped send is still settling); the charts, drawn on the server, every few seconds ---
  function wireReport() {
    var report = $("#report[data-live]");
    if (!report) return;
    var liveUrl = report.getAttribute("data-live-url");
    var milestonesUrl = report.getAttribute("data-milestones");
    var status = report.getAttribute("data-status");
    var settling = report.hasAttribute("data-settling");
    var charts = $("[data-charts]");
    // A schedule hours away needs no 1.5 s polling; an undo window or a send in flight does.
    var pollMs = settling ? 250 : Number(report.getAttribute("data-poll-ms")) || 1500;
    var lastDelivered = null;
    var chartsAt = 0;
    var finished = { sent: 1, cancelled: 1, failed: 1 };

    // core.pace.duration_text's words, as the page and the chart's legend write them.
    function nfDuration(s) {
      if (s < 10) return s.toFixed(1) + " s";
      if (s < 60) return s.toFixed(0) + " s";
      if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
      return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    }
    function setCount(name, value) {
      $$('[data-count="' + name + '"]').forEach(function (el) {
        el.textContent = formatNumber(value);
        el.toggleAttribute("data-zero", !value);
      });
    }
    function refreshMilestones() {
      fetch(milestonesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          data.milestones.forEach(function (m) {
            var el = $('[data-milestone="' + m.percent + '"]');
            if (el) el.textContent = m.after_s === null ? "—" : nfDuration(m.after_s);
          });
          var ctr = $("[data-ctr]");
          if (ctr) ctr.textContent = data.click_through === null ? "—" : (100 * data.click_through).toFixed(1) + " %";
        })
        .catch(function () {});
    }
    function refreshCharts() {
      if (!charts || Date.now() - chartsAt < 3000) return;
      chartsAt = Date.now();
      fetch(charts.getAttribute("data-charts"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        // Our own server's template output (every value escaped there), parsed inert by
        // DOMParser (no scripts run) and moved in node by node: no markup from strings.
        .then(function (html) {
          if (html === null) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          charts.replaceChildren.apply(charts, Array.prototype.slice.call(doc.body.childNodes));
        })
        .catch(function () {});
    }
    function showHeld(lines) {
      var box = $("[data-held]");
      if (!box) return;
      while (box.firstChild) box.removeChild(box.firstChild);
      lines.forEach(function (line) {
        var p = document.createElement("p");
        p.textContent = line;
        box.appendChild(p);
      });
      box.hidden = lines.length === 0;
    }
    // The push services table, as the live answer has it (rendered once with the page before).
    function showServices(rows) {
      var box = $("[data-services-box]"), body = $("[data-services] tbody");
      if (!box || !body || !rows) return;
      while (body.firstChild) body.removeChild(body.firstChild);
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-service", r.key);
        [["Push service", r.name], ["Delivered", formatNumber(r.delivered)],
         ["Failed", formatNumber(r.failed)], ["Waiting to retry", formatNumber(r.waiting)]
        ].forEach(function (cell, i) {
          var td = document.createElement("td");
          td.setAttribute("data-label", cell[0]);
          if (i) td.className = "nf-num";
          td.textContent = cell[1];
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      box.hidden = rows.length === 0;
    }
    function poll() {
      fetch(liveUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (live) {
          if (!live) { setTimeout(poll, 2000); return; }
          var c = live.counts;
          Object.keys(c).forEach(function (name) { setCount(name, c[name]); });
          var bar = $("[data-progress]");
          if (bar && c.audience) {
            bar.style.width = Math.min(100, (100 * (c.delivered + c.gone + c.failed)) / c.audience).toFixed(1) + "%";
          }
          var pace = $("[data-pace]");
          if (pace) pace.textContent = live.pace.text.replace(/^took /, "");
          showHeld(live.held);
          showServices(live.services);
          if (c.delivered !== lastDelivered) {
            lastDelivered = c.delivered;
            refreshMilestones();
            refreshCharts();
          }
          // A new status or a stopped send that has settled brings new words and actions.
          if (live.status !== status || (settling && !live.settling)) {
            window.location.reload();
            return;
          }
          if (!finished[live.status] || live.settling) setTimeout(poll, pollMs);
        })
        .catch(function () { setTimeout(poll, 2000); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireCounters();
    wireMenu();
    wireOneLine();
    wirePreview();
    wireForms();
    var compose = $("#compose");
    if (compose) {
      wireAudience(compose);
      wireWhen(compose);
      wirePrefill(compose);
    }
    wireCountdown();
    wireReport();
  });
})();
