/* Compose: one click on a template puts its prefix before the headline (replacing another
   template's prefix) and sets its topics, urgency and expiry. Plain JS, no build step. */
(function () {
  "use strict";
  var box = document.getElementById("formats");
  var form = document.getElementById("compose");
  if (!box || !form) return;
  var formats = JSON.parse(box.getAttribute("data-formats") || "[]");
  var prefixes = formats.map(function (f) { return f.prefix.trim(); }).filter(Boolean)
    .sort(function (a, b) { return b.length - a.length; });

  function fire(el, type) { el.dispatchEvent(new Event(type, { bubbles: true })); }

  function withPrefix(title, prefix) {
    var text = title.replace(/^\s+/, "");
    for (var i = 0; i < prefixes.length; i++) {
      if (text.toUpperCase().indexOf(prefixes[i].toUpperCase()) === 0) {
        text = text.slice(prefixes[i].length).replace(/^\s+/, "");
        break;
      }
    }
    return prefix + text;
  }

  function choose(select, value, label) {
    if (!select) return;
    var found = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
    if (!found) select.add(new Option(label, value));
    select.value = value;
    fire(select, "change");
  }

  function apply(f) {
    var title = form.querySelector("#title");
    if (title) {
      title.value = withPrefix(title.value, f.prefix);
      fire(title, "input");
    }
    if (f.topics.length) {
      form.querySelectorAll('input[name="topics"]').forEach(function (boxEl) {
        var want = f.topics.indexOf(boxEl.value) >= 0;
        if (boxEl.checked !== want) { boxEl.checked = want; fire(boxEl, "change"); }
      });
    }
    choose(form.querySelector("#urgency"), f.urgency, f.urgency);
    var ttl = String(f.ttl);
    choose(form.querySelector("#ttl"), ttl, f.ttl % 3600 ? f.ttl / 60 + " min" : f.ttl / 3600 + " h");
    box.querySelectorAll("[data-format]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-format") === f.name ? "true" : "false");
    });
    if (title) {
      title.focus();
      title.setSelectionRange(title.value.length, title.value.length);
    }
  }

  box.addEventListener("click", function (event) {
    var button = event.target.closest("[data-format]");
    if (!button) return;
    event.preventDefault(); // filled here; without this script the button posts the form
    var name = button.getAttribute("data-format");
    var f = formats.filter(function (x) { return x.name === name; })[0];
    if (f) apply(f);
  });
})();
