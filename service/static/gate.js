// The report's "Waiting for the article" box: follow the gate, reload when it opens.
(function () {
  "use strict";
  var box = document.getElementById("article-gate");
  if (!box) return;
  var answer = box.querySelector("[data-gate-answer]");
  function tick() {
    fetch(box.getAttribute("data-gate-url"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (g) {
        if (!g) return;
        if (!g.waiting) { window.location.reload(); return; }
        if (g.last_answer) {
          answer.textContent = "Last check: " + g.last_answer +
            (g.seconds_left !== null ? ", " + g.seconds_left + " s left." : ".");
        }
        window.setTimeout(tick, 1500);
      })
      .catch(function () { window.setTimeout(tick, 3000); });
  }
  window.setTimeout(tick, 1500);
})();
