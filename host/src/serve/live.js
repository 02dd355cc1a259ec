// sluice serve: keeps a run's page up to date while the run goes on. Served from the page's own
// origin (the page's CSP allows no other script). It fetches the page again when the run's
// record changes and puts the new body in place (no reload), and appends to each running
// stage's log what was written since. Everything it adds is text (createTextNode) or the
// server's own escaped page.
(function () {
  "use strict";
  var me = document.querySelector("script[data-base]");
  if (!me || !window.EventSource || !window.fetch) {
    return;
  }
  var base = me.getAttribute("data-base");
  var found = /[?&]token=([^&#]*)/.exec(location.search);
  var token = found ? "token=" + found[1] : "";
  function url(path, query) {
    var parts = [query, token].filter(Boolean).join("&");
    return base + path + (parts ? "?" + parts : "");
  }

  var generation = 0;
  function streamLogs() {
    var mine = ++generation;
    var pres = document.querySelectorAll('section.stage[data-status="running"] pre[data-log]');
    Array.prototype.forEach.call(pres, function (pre) {
      var stage = pre.getAttribute("data-log");
      var offset = Number(pre.getAttribute("data-offset")) || 0;
      function tick() {
        if (mine !== generation) {
          return;
        }
        fetch(url("/logs/" + encodeURIComponent(stage), "offset=" + offset))
          .then(function (answer) {
            var end = Number(answer.headers.get("x-log-end"));
            return answer.text().then(function (text) {
              if (mine !== generation) {
                return;
              }
              if (text && answer.ok) {
                pre.appendChild(document.createTextNode(text));
                pre.scrollTop = pre.scrollHeight;
              }
              if (end >= offset) {
                offset = end;
                pre.setAttribute("data-offset", String(offset));
              }
            });
          })
          .catch(function () {})
          .then(function () {
            setTimeout(tick, 500);
          });
      }
      tick();
    });
  }

  var busy = false;
  var again = false;
  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(location.href, { headers: { Accept: "text/html" } })
      .then(function (answer) {
        return answer.ok ? answer.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var open = {};
        Array.prototype.forEach.call(document.querySelectorAll("section.stage"), function (s) {
          var details = s.querySelector("details.log");
          if (details) {
            open[s.id] = details.open;
          }
        });
        document.title = fresh.title;
        document.body.replaceWith(document.importNode(fresh.body, true));
        Object.keys(open).forEach(function (id) {
          var details = document.querySelector("#" + CSS.escape(id) + " details.log");
          if (details && open[id]) {
            details.open = true;
          }
        });
        streamLogs();
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = new EventSource(url("/events"));
  events.addEventListener("report", refresh);
  events.addEventListener("end", function () {
    events.close();
  });
  streamLogs();
})();
