// Live updates: when the server says something changed, fetch this page again and swap its live regions.
// Without JavaScript the pages read the same; they only stop updating by themselves.
(function () {
  "use strict";
  var regions = function () { return document.querySelectorAll("[data-live]:not([data-live=''])"); };
  if (!window.EventSource || regions().length === 0) { return; }

  var pending = null;
  var refreshing = false;

  function refresh() {
    pending = null;
    if (refreshing) { schedule(); return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("page answered " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions().forEach(function (region) {
          var replacement = region.id && fresh.getElementById(region.id);
          if (replacement) { region.replaceWith(document.importNode(replacement, true)); }
        });
        document.body.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () { refreshing = false; });
  }

  function schedule() {
    if (pending === null) { pending = window.setTimeout(refresh, 250); }
  }

  var status = document.getElementById("live-status");
  var source = new EventSource("/ui/live");
  source.addEventListener("open", function () { if (status) { status.hidden = false; } });
  source.addEventListener("error", function () { if (status) { status.hidden = true; } });
  source.addEventListener("change", schedule);
})();
