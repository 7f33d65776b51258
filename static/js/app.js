// Progressive enhancement only: every page works without this file (CSP allows no inline script).
(function () {
  "use strict";

  function setupKeypad(root) {
    var form = root.closest("form");
    var keys = root.querySelector("[data-keypad-keys]");
    var dots = root.querySelectorAll("[data-keypad-dots] .dot");
    var status = root.querySelector("[data-keypad-status]");
    if (!form || !keys) { return; }

    function tokens() { return keys.value.split(" ").filter(Boolean); }
    function update(list) {
      keys.value = list.join(" ");
      dots.forEach(function (dot, i) { dot.classList.toggle("dot--filled", i < list.length); });
      if (status) { status.textContent = list.length + " de 6 dígitos"; }
    }

    root.querySelectorAll("[data-keypad-digit]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var list = tokens();
        if (list.length < 6) { list.push(button.value); }
        update(list);
      });
    });
    root.querySelectorAll("[data-keypad-action]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var list = tokens();
        if (button.getAttribute("data-keypad-action") === "borrar") { list.pop(); } else { list = []; }
        update(list);
      });
    });
  }

  // A double click on "Continuar" sends one request (and so one message).
  function setupOnce(form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-submitted") === "1") { event.preventDefault(); return; }
      form.setAttribute("data-submitted", "1");
    });
  }

  // One minute before the idle timeout, offer "Seguir conectado"; at the timeout, reload (the server
  // has ended the session and shows why).
  function setupSessionWarning(box) {
    var idle = parseInt(box.getAttribute("data-idle-seconds"), 10) * 1000;
    var form = box.querySelector("[data-keep-alive]");
    var warnTimer, endTimer, focusBefore = null;
    if (!form || !(idle > 0)) { return; }  // no timeout known: no timers (NaN would fire them at once)
    function arm() {
      clearTimeout(warnTimer); clearTimeout(endTimer);
      warnTimer = setTimeout(function () {
        focusBefore = document.activeElement;
        box.hidden = false;
        var button = box.querySelector("button"); if (button) { button.focus(); }
      }, Math.max(idle - 60000, 1000));
      endTimer = setTimeout(function () { window.location.reload(); }, idle + 1000);
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
      // Only the view's own 204 means the session lives: an ended session answers with a redirect to
      // the sign-in page, which fetch would follow to a 200. The reload then shows why it ended.
      fetch(form.action, {
        method: "POST", credentials: "same-origin", redirect: "manual",
        headers: { "X-CSRFToken": token, "X-Requested-With": "fetch" }
      }).then(function (response) {
        if (response.status !== 204) { window.location.reload(); return; }
        box.hidden = true;
        // Back where the member was (the button that had the focus is hidden now).
        if (focusBefore && focusBefore !== document.body && document.contains(focusBefore)) { focusBefore.focus(); }
        focusBefore = null;
        arm();
      });  // no answer at all (offline): the warning stays, to try again
    });
    arm();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-session-warning]").forEach(setupSessionWarning);
    document.querySelectorAll("[data-keypad]").forEach(setupKeypad);
    document.querySelectorAll("form:not([data-keep-alive])").forEach(setupOnce);
  });
})();
