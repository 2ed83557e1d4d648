// Ferry console: light progressive enhancement. Every page works without it.
"use strict";
// Pages that follow something (a bulk operation, a release, sync health) reload
// themselves every few seconds — unless the person is typing in a form.
document.addEventListener("DOMContentLoaded", function () {
  var follow = document.querySelector("[data-refresh]");
  if (follow) {
    var seconds = parseInt(follow.getAttribute("data-refresh"), 10) || 5;
    setTimeout(function reload() {
      var active = document.activeElement;
      if (active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) {
        setTimeout(reload, seconds * 1000);
        return;
      }
      window.location.reload();
    }, seconds * 1000);
  }
  // Bulk actions ask once before acting on everything a filter shows.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
});
