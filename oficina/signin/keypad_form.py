"""The keypad's request handling, shared by every page that asks for six digits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from oficina.signin.keypad import PIN_LENGTH, KeypadEntry, KeypadError, parse_tokens

SESSION_KEY = "keypad"

MSG_INCOMPLETE = "Ingresa los 6 dígitos con el teclado virtual."
MSG_STALE = "El teclado cambió o la página expiró. Por tu seguridad, ingresa los 6 dígitos de nuevo."


@dataclass
class KeypadResult:
    """What a keypad POST asked for: `digits` only when "Continuar" came with six valid presses."""

    tokens: list[str] = field(default_factory=list)
    digits: str | None = None
    error: str | None = None


def keypad_post(request: HttpRequest, *, purpose: str) -> KeypadResult:
    entry = KeypadEntry(request.session.get(SESSION_KEY), purpose=purpose)
    try:
        tokens = parse_tokens(request.POST.get("keys", ""))
        press = request.POST.get("press")
        if press is not None:
            tokens = tokens + parse_tokens(press, limit=1)
        entry.decode(tokens)  # every token must come from this entry's renders
    except KeypadError:
        from oficina.audit.services import event_record
        from oficina.lib.ratelimit import first_in_window

        # Replayed, forged, from another session, or simply a stale page: worth a trail either way,
        # once per client and minute: a refusal costs no rate limit (it is answered before the PIN's),
        # so one per request let a script grow the audit table at the rate the server answers.
        if first_in_window("keypad_refused", request):
            event_record("keypad_refused", request=request, purpose=purpose)
        request.session.pop(SESSION_KEY, None)
        return KeypadResult(error=MSG_STALE)
    action = request.POST.get("action")
    if press is not None and len(tokens) > PIN_LENGTH:
        tokens = tokens[:PIN_LENGTH]
    if action == "borrar":
        return KeypadResult(tokens=tokens[:-1])
    if action == "limpiar":
        return KeypadResult(tokens=[])
    if action == "continuar":
        if len(tokens) != PIN_LENGTH:
            return KeypadResult(tokens=tokens, error=MSG_INCOMPLETE)
        digits = entry.decode(tokens)
        request.session.pop(SESSION_KEY, None)  # the entry is spent: a replay finds no tokens
        return KeypadResult(digits=digits)
    return KeypadResult(tokens=tokens)


def keypad_context(request: HttpRequest, *, purpose: str, tokens: list[str] | None = None) -> dict[str, Any]:
    """A fresh shuffle for the page being rendered. A GET starts a new entry; a re-render keeps it; a
    HEAD draws one for its headers and keeps none."""
    tokens = tokens or []
    state = request.session.get(SESSION_KEY) if tokens else None
    entry = KeypadEntry(state, purpose=purpose)
    restarted = False
    try:
        keys = entry.render()
    except KeypadError:
        entry, tokens, restarted = KeypadEntry(None, purpose=purpose), [], True
        keys = entry.render()
    if request.method != "HEAD":
        # A HEAD is answered with this page's headers (its length too: every layout has the same), but
        # nobody sees the keypad it drew: stored, it replaced the entry of the page the member has on
        # screen, whose keys then answered «El teclado cambió». The session keeps the GET's.
        request.session[SESSION_KEY] = entry.state
    # A press, «Borrar» or «Limpiar» without JavaScript reloads the page: the focus goes back to the
    # keypad (read out with its count), not to the top of the page.
    resumed = request.method == "POST" and (
        "press" in request.POST or request.POST.get("action") in ("borrar", "limpiar")
    )
    return {
        "keypad_rows": [keys[0:3], keys[3:6], keys[6:9]],
        "keypad_last": keys[9],
        "keypad_entered": " ".join(tokens),
        "keypad_count": len(tokens),
        "keypad_dots": [i < len(tokens) for i in range(PIN_LENGTH)],
        "keypad_restarted": MSG_STALE if restarted else None,
        "keypad_resumed": resumed and not restarted,
    }
