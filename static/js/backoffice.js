// The back office's own forms (data-once) send once: a double click on «Verificar cadena» sent the
// walk twice, and the browser showed the second answer, «Ya hay una verificación de la cadena en
// curso» (the first still held the one-at-a-time slot), never the first one's result. As the members'
// pages do (app.js, setupOnce). Django's own admin forms are left as Django made them: an action's
// answer can be a download (the audit log's «Exportar seleccionados»), after which the page stays and
// its form must still send. Progressive enhancement only: every form works without this file, and
// the CSP allows no inline script.
(function () {
  "use strict";

  function setupOnce(form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-submitted") === "1") { event.preventDefault(); return; }
      form.setAttribute("data-submitted", "1");
    });
  }

  // A page the browser brings back whole with «Atrás» (back/forward cache) keeps its attributes: its
  // form, sent before, would never send again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-submitted]").forEach(function (form) {
      form.removeAttribute("data-submitted");
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-once]").forEach(setupOnce);
  });
})();
