/* Newsflash newsroom: on /manage, a logged-in editor marks this browser as a test device.
   Loaded only when the page is rendered for a newsroom session (see reader/manage.html). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("nf-test-device");
    if (!box) return;
    var status = box.querySelector("[data-test-device-status]");
    function say(text) { if (status) status.textContent = text; }
    function subscription() {
      if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
        return Promise.resolve(null);
      }
      return navigator.serviceWorker.getRegistration("/").then(function (reg) {
        return reg ? reg.pushManager.getSubscription() : null;
      });
    }
    function mark(on) {
      return subscription().then(function (sub) {
        if (!sub) { say("Turn alerts on in this browser first, then mark it."); return; }
        var json = sub.toJSON();
        return fetch(box.getAttribute("data-url"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": box.getAttribute("data-csrf") },
          body: JSON.stringify({ endpoint: json.endpoint, auth: json.keys && json.keys.auth, on: on })
        }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
          .then(function (answer) {
            if (!answer.ok) { say((answer.data.error && answer.data.error.message) || "That did not work."); return; }
            say(on ? "This browser is now one of your test devices (" + answer.data.test_devices + " in all)."
                   : "This browser is no longer a test device.");
          });
      }).catch(function () { say("That did not work."); });
    }
    box.querySelectorAll("button[data-on]").forEach(function (button) {
      button.addEventListener("click", function () { mark(button.getAttribute("data-on") === "1"); });
    });
  });
})();
