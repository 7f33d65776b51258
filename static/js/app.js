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

  // Asks for this page again, and the server, which has ended the session, shows why. A GET, not
  // reload(): a page that answered a form would send the form again, after the browser's own «Confirm
  // Form Resubmission» prompt (declined, the page stayed as if the session were alive).
  // The origin first: a path that starts with "//" (an address anyone can link to) would otherwise be
  // read as another site's.
  function pageAgain() {
    window.location.replace(window.location.origin + window.location.pathname + window.location.search);
  }

  // One minute before the idle timeout, offer "Seguir conectado" (in a sign-in flow, one minute before
  // the flow ends, "Necesito más tiempo", or once it was used up, say that no more time can be given;
  // in the office, when the session's absolute end comes first, say that it cannot be extended);
  // at the timeout, ask for the page again.
  // data-seconds-left: what is left of the period when the page was made; data-absolute-seconds-left:
  // what was left of the office session's absolute limit (office/session_time.py). Both the server's
  // numbers, counted from when the page arrived: the browser's clock may be set to any time.
  //
  // On a change's page (office/_stepup_warning.html), a second box for the step-up's end
  // (STEPUP_SECONDS after «Confirma tu clave»; data-idle-seconds is its period). One warning at a
  // time: the session's gives way to it while it is still to come before the session's idle end (its
  // «Necesito más tiempo» is a request, so it renews the idle limit too), and it gives way to the
  // session's when the absolute end comes first. At its end the page stays as it is (a reload would
  // lose what the member typed) and says that «Continuar» will ask for the PIN again; the session's
  // warning, when due by then, takes its place.
  var stepup = null;

  function setupSessionWarning(box) {
    var isStepup = box.hasAttribute("data-stepup-warning");
    var over = false;  // the step-up ended, or gave way to the session's absolute end
    var idle = parseInt(box.getAttribute("data-idle-seconds"), 10) * 1000;
    var left = parseInt(box.getAttribute("data-seconds-left"), 10) * 1000;
    var absoluteLeft = parseInt(box.getAttribute("data-absolute-seconds-left"), 10) * 1000;
    var absoluteEnd = absoluteLeft >= 0 ? Date.now() + absoluteLeft : Infinity;
    var form = box.querySelector("[data-keep-alive]");
    var when = box.querySelectorAll("[data-time-left]");
    var warnTimer, endTimer, deadline, focusBefore = null;
    if (!(idle > 0)) { return; }  // no timeout known: no timers (NaN would fire them at once)
    // A page made in the last minute carries the warning shown (for a browser without JavaScript):
    // shown again here, with the focus, as the timer would have.
    var shownByServer = !box.hidden;
    box.hidden = true;
    function warn() {
      if (!box.hidden) { return; }
      if (isStepup) {
        if (over) { return; }
      } else if (stepup && stepup.covers(deadline)) {
        return;  // the step-up's warning comes first, and its button keeps the session too
      } else if (stepup) {
        stepup.hide();
      }
      // «en 1 minuto» only when a minute is left (give or take the timer's second): a page made, or a
      // phone woken, with less left says so (signin/stages.py::time_left_words, the same words).
      var words = deadline - Date.now() >= 59000 ? "en 1 minuto" : "en menos de un minuto";
      when.forEach(function (span) { span.textContent = words; });
      focusBefore = document.activeElement;
      box.hidden = false;
      var button = form && !form.hidden ? form.querySelector("button") : null;
      if (button) { button.focus(); } else { box.focus(); }  // no more time to give: the warning itself
    }
    // After the last «Necesito más tiempo» (the server's 204 says none is left): the next warning says
    // so, without the button, instead of the flow ending without a word. In the office: the absolute
    // end comes first, which «Seguir conectado» could not move.
    function noMoreTime() {
      var more = box.querySelector("[data-more-time]"), noMore = box.querySelector("[data-no-more-time]");
      if (!noMore) { return; }
      if (form) { form.hidden = true; }
      if (more) { more.hidden = true; }
      noMore.hidden = false;
    }
    // The timers count from the deadline on the clock: a phone asleep or a frozen background tab holds
    // them back (they count no time while the page is frozen), and the warning came after the end.
    function schedule(soonest) {
      if (over) { return; }
      var rest = deadline - Date.now();
      clearTimeout(warnTimer); clearTimeout(endTimer);
      warnTimer = setTimeout(warn, Math.max(rest - 60000, soonest));
      endTimer = setTimeout(isStepup ? timeOver : pageAgain, Math.max(rest + 1000, 0));
    }
    function arm(period) {
      deadline = Date.now() + period;
      if (deadline >= absoluteEnd && isStepup) { handOver(); return; }
      if (deadline >= absoluteEnd) { deadline = absoluteEnd; noMoreTime(); }
      schedule(1000);
    }
    // The session's absolute end comes first: the session's warning tells the truth, not this one.
    function handOver() {
      over = true;
      clearTimeout(warnTimer); clearTimeout(endTimer);
      box.hidden = true;
    }
    // The step-up ended: the page and what was typed in it stay; «Continuar» asks for the PIN again
    // (and the server keeps what was typed, security_views.py::stepup_required).
    function timeOver() {
      over = true;
      clearTimeout(warnTimer); clearTimeout(endTimer);
      var before = box.querySelector("[data-before-end]"), after = box.querySelector("[data-time-over]");
      if (before) { before.hidden = true; }
      if (after) { after.hidden = false; }
      if (form) { form.hidden = true; }
      var other = document.querySelector("[data-session-warning]:not([hidden]):not([data-stepup-warning])");
      if (box.hidden && !other) {
        focusBefore = document.activeElement;
        box.hidden = false;
      }
      if (!box.hidden) { box.focus(); }
      // The session's warning may have given way to this one: due now, it shows (and this one goes).
      document.dispatchEvent(new CustomEvent("oficina:stepup-over"));
    }
    if (isStepup) {
      stepup = {
        covers: function (end) { return !over && deadline - 60000 <= end; },
        hide: function () { box.hidden = true; }
      };
    } else {
      // «Necesito más tiempo» on the step-up's warning renewed the idle limit too.
      document.addEventListener("oficina:renewed", function (event) {
        if (event.detail >= 0) { absoluteEnd = Date.now() + event.detail; }
        box.hidden = true;
        arm(idle);
      });
      document.addEventListener("oficina:stepup-over", function () { schedule(0); });
    }
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") { schedule(0); }  // back in view: what is left, now
    });
    if (form) { form.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
      // Only the view's own 204 means the session lives: an ended session answers with a redirect to
      // the sign-in page, which fetch would follow to a 200. The page asked again shows why it ended.
      fetch(form.action, {
        method: "POST", credentials: "same-origin", redirect: "manual",
        headers: { "X-CSRFToken": token, "X-Requested-With": "fetch" }
      }).then(function (response) {
        var absolute = parseInt(response.headers.get("X-Absolute-Seconds-Left"), 10) * 1000;
        // The step-up's 409: it ended, or has no time left to give; the session lives (and was renewed).
        if (isStepup && response.status === 409) {
          document.dispatchEvent(new CustomEvent("oficina:renewed", { detail: absolute }));
          timeOver();
          return;
        }
        if (response.status !== 204) { pageAgain(); return; }
        if (response.headers.get("X-Extensions-Left") === "0") { noMoreTime(); }
        if (absolute >= 0) { absoluteEnd = Date.now() + absolute; }  // the server's count, again
        box.hidden = true;
        // Back where the member was (the button that had the focus is hidden now).
        if (focusBefore && focusBefore !== document.body && document.contains(focusBefore)) { focusBefore.focus(); }
        focusBefore = null;
        if (isStepup) {
          document.dispatchEvent(new CustomEvent("oficina:renewed", { detail: absolute }));
          var stepupLeft = parseInt(response.headers.get("X-Stepup-Seconds-Left"), 10) * 1000;
          arm(stepupLeft > 0 ? stepupLeft : idle);
        } else {
          arm(idle);
        }
      });  // no answer at all (offline): the warning stays, to try again
    }); }
    arm(left > 0 && left < idle ? left : idle);
    if (shownByServer) { warn(); }
  }

  // A page that answers a form (a step's error shown where the form was, such as «La clave no es
  // correcta») is a POST in the browser's history, and no cache keeps it (no-store): «Atrás» to it
  // showed the browser's own «Confirm Form Resubmission» page (ERR_CACHE_MISS) instead of ours, and a
  // reload sent the form again (a keypad's spent entry: «El teclado cambió o la página expiró»; after
  // the sign-in, a stale CSRF token: «La página expiró»). Its entry becomes a GET of the same address,
  // which the server answers with the step as it stands now (signin/views.py::_restart).
  if (document.body && document.body.hasAttribute("data-answers-form") && window.history.replaceState) {
    window.history.replaceState(window.history.state, "", window.location.href);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-session-warning]").forEach(setupSessionWarning);
    document.querySelectorAll("[data-keypad]").forEach(setupKeypad);
    document.querySelectorAll("form:not([data-keep-alive])").forEach(setupOnce);
  });
})();
