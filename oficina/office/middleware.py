from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from oficina.lib.prepared import PreparedQuery
from oficina.members.models import Member, PinHistory, session_is_current
from oficina.office.session_time import SessionTime
from oficina.signin.flows.login import MEMBER_SESSION_KEY, session_auth_hash, session_auth_match

SEEN_AT_RESOLUTION = 10  # seconds

# Sent with every response that signs a member out (ASVS 5.0 V14.3.1, 4.0 V8.2.3): the browser drops what it
# kept of the office (its HTTP cache, and the back-forward cache Chromium counts in it) and any
# storage of this origin. Not "cookies": that clears the whole registrable domain (the cooperative's
# other sites too) and the message saying the session was closed; the session itself ends on the server.
CLEAR_SITE_DATA = '"cache", "storage"'
# Read on every office page: compiled once per connection (oficina/lib/prepared.py).
_ACTIVE_BY_ID = PreparedQuery(
    "member_active_by_id", lambda pk, status: Member.objects.filter(pk=pk, status=status)[:1], int, str
)


class MemberSessionMiddleware:
    """Sets request.member for a live member session, enforcing idle and absolute timeouts and
    ending the session when the member's PIN changed (or they were disabled) since sign-in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.member = None  # type: ignore[attr-defined]
        request.member_session_ended = None  # type: ignore[attr-defined]
        request.member_time = None  # type: ignore[attr-defined]
        # Set by a change's page (security_views.py); None elsewhere, so that the templates' lookups of
        # it succeed: a missing attribute is an exception inside the template engine, ~0.16 M
        # instructions a page (bench/instructions.py).
        request.stepup_time = None  # type: ignore[attr-defined]
        data = request.session.get(MEMBER_SESSION_KEY) if hasattr(request, "session") else None
        if isinstance(data, dict):
            member = self._load(request, data)
            request.member = member  # type: ignore[attr-defined]
        response = self.get_response(request)
        if getattr(request, "member_signed_out", False) or (
            isinstance(data, dict) and not _same_member(data, request.session.get(MEMBER_SESSION_KEY))
        ):
            # The request came with a member's session and leaves without it: ended here (idle,
            # revoked, replaced...), by «Cerrar sesión» or a lock, or by the step-up finding it no
            # longer the member's. Whatever page answers (the office, «Ingresa tu usuario», an error
            # page), it is a sign-out: the browser drops what it kept of the office. Also when it
            # leaves with another member's session (a sign-in on a shared browser without «Cerrar
            # sesión» ended the first member's), and whenever member_sign_out ran, even on a session
            # the store could not read (Redis down: the request came with no member's data, and the
            # sign-out ended it by its digest in the database). (Review, 2026-12-06.)
            response["Clear-Site-Data"] = CLEAR_SITE_DATA
        return response

    def _load(self, request: HttpRequest, data: dict[str, object]) -> Member | None:
        now = time.time()
        reason = None
        if now - float(data.get("seen_at", 0)) > settings.MEMBER_IDLE_SECONDS:  # type: ignore[arg-type]
            reason = "idle"
        elif now - float(data.get("signed_in_at", 0)) > settings.MEMBER_ABSOLUTE_SECONDS:  # type: ignore[arg-type]
            reason = "absolute"
        member_id = data.get("id")
        member = _ACTIVE_BY_ID.first(member_id, Member.Status.ACTIVE) if isinstance(member_id, int) else None
        auth = session_auth_match(member, data.get("auth")) if reason is None and member is not None else None
        if (
            reason is None
            and member is not None
            and auth is None
            and _twin_of_the_change(request, member, data)
        ):
            data["auth"] = session_auth_hash(member)
            request.session.modified = True
            auth = "current"
        if reason is None and auth is None:
            reason = "revoked"
        elif reason is None and member is not None and member.locked_at is not None:
            # Before "closed": a lock also ends the session («Bloquear mi acceso», or the step-up's
            # lock), and the twin of that very request (a double tap) met it ended and told the member
            # «Tu sesión se cerró. Ingresa de nuevo», not that the access is blocked. (Review, 2026-12-06)
            reason = "locked"
        elif (
            reason is None
            and member is not None
            and not session_is_current(member, request.session.session_key)
        ):
            # Another session is the member's now, or none is (an operator ended it, or a sign-out in
            # another tab of the same session cleared it).
            reason = "replaced" if member.session_digest else "closed"
        if reason is not None:
            from oficina.audit.services import event_record

            request.session.flush()
            request.member_session_ended = reason  # type: ignore[attr-defined]
            event_record("session_expired", request=request, member=member, reason=reason)
            return None
        if auth == "fallback" and member is not None:
            # Opened before a SECRET_KEY rotation: from now on the current key's hash, so the session
            # outlives the old key's removal from SECRET_KEY_FALLBACKS, as in django.contrib.auth.get_user
            # but without its cycle_key: Member.session_digest names this id (one session per member), and a
            # new id here would race the same browser's concurrent requests into "replaced".
            data["auth"] = session_auth_hash(member)
            request.session.modified = True
        # The idle clock needs no finer grain: skipping the session write saves a query per page. A HEAD
        # is checked against it but does not renew it: browsers send none of their own and nobody sees
        # its body (a link checker, a script holding the cookie), and it kept an office left open on a
        # shared computer open.
        seen_at = float(data.get("seen_at", 0))  # type: ignore[arg-type]
        if request.method != "HEAD" and now - seen_at >= SEEN_AT_RESOLUTION:
            data["seen_at"] = now
            request.session.modified = True
        # For base.html's warning and «Seguir conectado»'s answer: when each limit ends, from this clock.
        request.member_time = SessionTime.of(  # type: ignore[attr-defined]
            now=now,
            seen_at=float(data.get("seen_at", now)),  # type: ignore[arg-type]
            signed_in_at=float(data.get("signed_in_at", 0)),  # type: ignore[arg-type]
            idle=settings.MEMBER_IDLE_SECONDS,
            absolute=settings.MEMBER_ABSOLUTE_SECONDS,
        )
        return member


def _same_member(before: dict[str, object], after: object) -> bool:
    return isinstance(after, dict) and after.get("id") == before.get("id")


def _twin_of_the_change(request: HttpRequest, member: Member, data: dict[str, object]) -> bool:
    """Whether a session holding the check value of the member's previous PIN is the very session that
    changed it, read by a parallel request before the change (a double tap on «Continuar» when
    confirming a new PIN: each request reads the session as it was, and the twin's copy was saved
    after, or read after the change was written). Ending it signed the member out right after
    «Cambiaste tu clave». It is that session when it is still the member's one session, its value is
    the PIN just before the current one's, and the change is younger than the idle timeout (no twin
    is in flight after it). Any other mismatch still ends the session. Read only on a mismatch: one
    query, never on a normal page.

    Sound because Member.session_digest can name a session holding an older PIN's value only when
    that session made the change: a sign-in writes the digest only while the PIN it checked is still
    the row's (signin/flows/login.py::member_sign_in: one that straddled a reset or a change opens
    nothing); a reset, an operator or a revocation empties it; and only the session it names can spend
    the step-up an office change needs (oficina/office/services.py::stepup_spend)."""
    changed_at = member.pin_changed_at
    if changed_at is None or not session_is_current(member, request.session.session_key):
        return False
    if (timezone.now() - changed_at).total_seconds() > settings.MEMBER_IDLE_SECONDS:
        return False
    hashes = list(PinHistory.objects.filter(member=member).values_list("pin_hash", flat=True)[:2])
    if len(hashes) < 2 or hashes[0] != member.pin_hash:
        return False
    return session_auth_match(Member(pin_hash=hashes[1]), data.get("auth")) is not None
