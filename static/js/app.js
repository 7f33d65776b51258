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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-keypad]").forEach(setupKeypad);
    document.querySelectorAll("form").forEach(setupOnce);
  });
})();
