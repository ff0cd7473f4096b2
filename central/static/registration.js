/* The registration page: while the delegates' e-mails leave, follow their progress (text and bar) and update each
   badge. */
(function () {
  "use strict";
  var box = document.getElementById("mail-progress");
  var data = document.getElementById("mail-status-labels");
  if (!box || !data || box.getAttribute("data-pending") === "0") return;
  var states = JSON.parse(data.textContent);
  function tick() {
    fetch(box.getAttribute("data-url"), {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) return;
        if (p.total) {  // the page's own language: the templates come translated in #mail-status-labels
          box.textContent = states.sent.replace("%(sent)d", p.sent).replace("%(total)d", p.total) +
            (p.failed ? " · " + states.failed.replace("%(failed)d", p.failed) : "");
        }
        var bar = document.getElementById("mail-progress-bar");
        if (bar && p.total) {
          bar.max = p.total;
          bar.value = p.sent + p.failed;
          bar.textContent = p.sent + "/" + p.total;
        }
        Object.keys(p.delegates || {}).forEach(function (id) {
          var badge = document.querySelector("#delegate-" + id + " .mail-status");
          var status = p.delegates[id];
          if (badge && badge.getAttribute("data-status") !== status) {
            badge.setAttribute("data-status", status);
            badge.className = "badge badge-" + (status === states.pending ? states.queued : status) + " mail-status";
            badge.textContent = states.labels[status] || status;
          }
        });
        if (!p.done) window.setTimeout(tick, 1000);
      })
      .catch(function () { window.setTimeout(tick, 3000); });
  }
  window.setTimeout(tick, 500);
})();
