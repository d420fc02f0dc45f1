/* Small progressive enhancements for the ops pages; everything works without them.
   - <time datetime data-time="relative|local">: shown in the reader's time zone, relative
     ("5 minutes ago") or absolute, with the full local time as a tooltip; refreshed every 30 s
     and on content loaded by htmx.
   - <form data-confirm="…">: asks before submitting (100 %, complete).
   - A submitted form disables its button so a double click cannot post twice.
   - The rollout form shows the targets input of the chosen strategy only.
   - [data-poll-while-visible]: htmx live refresh that asks nothing while the tab is hidden
     (the check lives here, not in an hx-trigger filter: the Content-Security-Policy forbids
     the eval such filters need). */
(function () {
  "use strict";

  var absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  var relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  var UNITS = [
    ["year", 31536000], ["month", 2592000], ["week", 604800],
    ["day", 86400], ["hour", 3600], ["minute", 60]
  ];

  function ago(date) {
    var seconds = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(seconds) < 45) return "just now";
    for (var i = 0; i < UNITS.length; i++) {
      if (Math.abs(seconds) >= UNITS[i][1] || UNITS[i][0] === "minute") {
        return relative.format(Math.round(seconds / UNITS[i][1]), UNITS[i][0]);
      }
    }
  }

  function localizeTimes(root) {
    var nodes = (root || document).querySelectorAll("time[datetime][data-time]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var date = new Date(node.getAttribute("datetime"));
      if (isNaN(date)) continue;
      node.title = full.format(date);
      node.textContent = node.dataset.time === "local" ? absolute.format(date) : ago(date);
    }
  }

  function toggleStrategyFields(form) {
    var select = form.querySelector("select[name=strategy]");
    if (!select) return;
    var fields = form.querySelectorAll("[data-show-for]");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      // A field with an error stays visible so the message can be read and fixed.
      var show = field.dataset.showFor === select.value || field.classList.contains("field--error");
      field.hidden = !show;
      var input = field.querySelector("input");
      if (input) input.disabled = !show;  // hidden targets are not sent
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var button = form.querySelector("button[type=submit]");
    if (button) {
      // After the submit event, so the click still submits the form.
      setTimeout(function () { button.disabled = true; button.setAttribute("aria-busy", "true"); }, 0);
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("select[name=strategy]")) {
      toggleStrategyFields(event.target.form);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    var forms = document.querySelectorAll("form[data-strategy-form]");
    for (var i = 0; i < forms.length; i++) toggleStrategyFields(forms[i]);
    setInterval(function () { localizeTimes(document); }, 30000);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (source && source.hasAttribute("data-poll-while-visible") && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  // Fragments swapped in by the live refresh.
  document.addEventListener("htmx:load", function (event) { localizeTimes(event.target); });
})();
