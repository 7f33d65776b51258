"""Step 3: the PIN check of a returning member, and opening or closing their session."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from importlib import import_module
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.middleware.csrf import rotate_token
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from oficina.audit.services import document_hmac, event_record, event_record_with
from oficina.lib.sessions import cycle_key_found_gone
from oficina.members.models import Member, session_digest
from oficina.notify.outbox import notice_queue, outbox_dispatch
from oficina.signin.flows.identify import member_for_signin
from oficina.signin.models import UnknownAttempt
from oficina.signin.pin import hash_slot, secret_check_in_slot

logger = logging.getLogger(__name__)

MEMBER_SESSION_KEY = "member"


NOBODY = -1  # a primary key no row has: the lock UPDATE of an unknown cédula matches nothing


def _rows_written(sql: str, params: Sequence[Any]) -> int:
    """One plain statement. The writes of every PIN attempt (and the sign-in UPDATE) are plain SQL:
    they run on every attempt, and the ORM's UPDATE compiler alone costs more CPU than the statement.
    Table names come from the models' metadata, values always as parameters."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _attempt_claim(member_pk: int) -> bool:
    """Counts this attempt before the hash is checked, in one conditional UPDATE, so parallel guesses
    can never get more than PIN_MAX_FAILED_ATTEMPTS checks of the real hash. Its twin
    _unknown_attempt_record costs the same, so timing tells nothing."""
    table = Member._meta.db_table
    sql = (
        f"UPDATE {table} SET failed_pin_attempts = failed_pin_attempts + 1 "  # noqa: S608
        "WHERE id = %s AND locked_at IS NULL AND failed_pin_attempts < %s"
    )
    return _rows_written(sql, [member_pk, settings.PIN_MAX_FAILED_ATTEMPTS]) == 1


def _unknown_attempt_record(document: str) -> None:
    """The write an unknown cédula's attempt costs: one upsert, like the member's one UPDATE."""
    table = UnknownAttempt._meta.db_table
    sql = (
        f"INSERT INTO {table} (document_hmac, failed, updated_at) VALUES (%s, 1, %s) "  # noqa: S608
        f"ON CONFLICT (document_hmac) DO UPDATE SET failed = {table}.failed + 1, updated_at = %s"
    )
    _rows_written(sql, [document_hmac(document), timezone.now(), timezone.now()])


def _lock_if_due(member_pk: int) -> bool:
    table = Member._meta.db_table
    sql = (
        f"UPDATE {table} SET locked_at = %s "  # noqa: S608
        "WHERE id = %s AND locked_at IS NULL AND failed_pin_attempts >= %s"
    )
    return _rows_written(sql, [timezone.now(), member_pk, settings.PIN_MAX_FAILED_ATTEMPTS]) == 1


def _lock_check_twin(document: str) -> None:
    """What _lock_if_due costs, for an attempt counted in UnknownAttempt: reads the row, changes nothing."""
    table = UnknownAttempt._meta.db_table
    sql = f"UPDATE {table} SET updated_at = %s WHERE document_hmac = %s AND failed < 0"  # noqa: S608
    _rows_written(sql, [timezone.now(), document_hmac(document)])


def pin_verify(
    *, request: HttpRequest, document: str, pin: str, reset_attempts: bool = True
) -> Member | None:
    """The member when `pin` is right and their access is open; None for every failure alike.

    On success the attempt counter goes back to zero here, or, with reset_attempts=False, in the
    caller's own UPDATE (member_sign_in does it: one statement less on every sign-in).

    Every failure costs the same work, whoever the cédula belongs to: one SELECT, one counting write
    (the member's attempt UPDATE, or an UnknownAttempt upsert), one Argon2 verify, the lock UPDATE
    and one audit event. Only a success does more."""
    member = member_for_signin(document=document, with_consent=True)
    target = member.pk if member is not None and member.pin_hash else NOBODY
    # The slot is taken first: a busy hasher (503) must not cost the member an attempt.
    with hash_slot():
        claimed = target != NOBODY and _attempt_claim(target)
        if target == NOBODY:
            # Unknown, disabled or no PIN yet: the same one write, elsewhere. (A locked member's claim,
            # refused, was already this attempt's one write: a second one would tell them apart.)
            _unknown_attempt_record(document)
        matched = secret_check_in_slot(pin, member.pin_hash if member is not None and claimed else None)
    if matched:
        assert member is not None
        # member.failed_pin_attempts stays as loaded, before this attempt was counted: whoever clears
        # the counter (here, member_attempts_reset or member_sign_in) tells the member of those failures.
        if reset_attempts:
            member_attempts_reset(member)
        return member
    reason = "unknown" if target == NOBODY else ("wrong_pin" if claimed else "locked")
    pin_attempt_failed(
        request=request, document=document, member=member, counted=target != NOBODY, reason=reason
    )
    return None


def pin_attempt_failed(
    *,
    request: HttpRequest,
    document: str,
    member: Member | None,
    counted: bool,
    reason: str,
) -> None:
    """A PIN attempt that opened nothing: its `signin_failed` event and, when it was counted on the
    member's row (`counted`; otherwise in UnknownAttempt: unknown, disabled, no PIN yet), the lock if the
    attempts reached the maximum, with its `member_locked` event and notice.

    Also for a right PIN whose sign-in was refused because the PIN changed while it was checked
    (member_sign_in's "pin_changed", the password view): its claim counted the attempt, and it left
    no event at all and never wrote the lock it may have been due (review, 2026-12-06)."""
    notices = []
    # A lock, its events and its notice together or not at all; an unknown cédula's twin goes through
    # the same transaction, so both failures still cost the same statements.
    with transaction.atomic():
        if counted and member is not None:
            # Also when the claim was refused: a process that died between a fifth attempt's claim
            # and its lock (killed mid-hash, say) left the attempts at the maximum and no lock, which
            # the back office would show as "Activo". This attempt writes the lock it missed.
            locked = _lock_if_due(member.pk)
        else:
            _lock_check_twin(document)
            locked = False
        event_record("signin_failed", request=request, member=member, document=document, reason=reason)
        if locked and member is not None:
            event_record("member_locked", request=request, member=member)
            notices = notice_queue(
                member=member,
                template="access_locked",
                context={"attempts": settings.PIN_MAX_FAILED_ATTEMPTS},
            )
    if notices:
        outbox_dispatch(notices)


def member_attempts_reset(member: Member) -> None:
    """After a right PIN: the claim added one, and earlier failures no longer count."""
    Member.objects.filter(pk=member.pk).update(failed_pin_attempts=0)
    _failures_cleared_notice(member)


def _failures_cleared_notice(member: Member) -> None:
    """The counter of `member` (as loaded, before the right PIN's claim) was just set back to zero:
    someone typed wrong PINs before this success, and the member should know (maybe it was not them).

    Sent where the counter is cleared, not where the PIN matched: a right PIN whose sign-in was then
    refused (member_sign_in: the PIN changed while it was checked) clears nothing, and its notice
    «ingresaste a la Oficina Virtual» told the member of a sign-in that never happened, maybe of
    someone holding their old PIN (review, 2026-12-06)."""
    earlier_failures, member.failed_pin_attempts = member.failed_pin_attempts, 0
    if earlier_failures:
        context = {"failures": earlier_failures}
        outbox_dispatch(notice_queue(member=member, template="signin_after_failures", context=context))


def session_auth_hash(member: Member, *, secret: str | None = None) -> str:
    """Changes whenever the PIN changes, which ends every session opened with the old one.
    Made with SECRET_KEY unless another `secret` is given."""
    return salted_hmac(
        "oficina.member.session", member.pin_hash, secret=secret, algorithm="sha256"
    ).hexdigest()


def session_auth_match(member: Member, stored: object) -> Literal["current", "fallback"] | None:
    """Which key made `stored`, the hash a session or sign-in flow keeps: "current" (SECRET_KEY),
    "fallback" (a key of SECRET_KEY_FALLBACKS: opened before a key rotation; an office session then
    stores session_auth_hash(member) in its place, so it outlives the old key's removal), or None:
    the PIN changed since, and the session ends. As django.contrib.auth.get_user: the current key
    first (one HMAC per office request), the fallbacks only after a mismatch."""
    given = str(stored or "")
    if not given:
        return None
    if constant_time_compare(given, session_auth_hash(member)):
        return "current"
    for secret in settings.SECRET_KEY_FALLBACKS:
        if constant_time_compare(given, session_auth_hash(member, secret=secret)):
            return "fallback"
    return None


SignInRefused = Literal["revocation_granted", "pin_changed"]


def member_sign_in(*, request: HttpRequest, member: Member) -> SignInRefused | None:
    """Opens the member's office session: a new session id (a planted one is useless), and the
    member's previous session, in any browser, is ended (one active session per member).

    None when it opened; no session, and why, when `member` as read with its PIN and consent checks is
    no longer what the row holds:
    - "revocation_granted": the data officer granted a revocation of the member's authorisation since
      (Member.revocations_granted changed): the member is asked for «Permitir» again, as if the grant
      had come first (docs/security.md §2.12);
    - "pin_changed": the PIN changed while it was checked (a reset completed, or the office change of
      the member's session): the PIN typed is no longer the member's, and a session opened with it
      would hold the old PIN's check value (docs/security.md §2.8).
    The conditions are on the member's own row, so they hold under READ COMMITTED even when this
    UPDATE waited for the other change's lock (PostgreSQL re-reads the updated row then, not other
    tables)."""
    now = timezone.now()
    signed_in = request.session.get(MEMBER_SESSION_KEY)
    if isinstance(signed_in, dict) and signed_in.get("id") != member.pk:
        # Another member's session in this browser (signed in again without "Cerrar sesión"): nothing of
        # theirs carries over, a pending PIN or contact change, a step-up's next page (as
        # django.contrib.auth.login does). A fresh browser, the usual case, costs nothing here.
        request.session.flush()
    request.session[MEMBER_SESSION_KEY] = {
        "id": member.pk,
        "auth": session_auth_hash(member),
        "signed_in_at": time.time(),
        "seen_at": time.time(),
    }
    # A twin of a sign-in that already opened (a double tap on «Continuar», or «Permitir»): the id this
    # request came with was deleted by its sibling's cycle_key. It still opens (its answer may be the
    # one the browser shows), but it leaves «Tu último ingreso» alone: shifted again, it showed the
    # sibling's sign-in of a second ago instead of the previous one, the date a member checks to spot
    # someone else's sign-in (review, 2026-12-06).
    # After the data, so that cycle_key's write under the new key is the only one (the store skips
    # the request's own save of the same data; oficina/lib/sessions.py).
    twin = cycle_key_found_gone(request.session)
    # The member's earlier session, if any, no longer matches member.session_digest: on its next request
    # the office middleware ends it and tells that browser why.
    table = Member._meta.db_table
    # A twin touches neither date: its sibling, a moment apart, records this sign-in. Leaving only the
    # shift out was not enough: the two UPDATEs may land in either order, and a twin's last_login_at
    # written before its sibling's shift became the «previous» sign-in again. (Review of a4499e0.)
    dates = "" if twin else "previous_login_at = last_login_at, last_login_at = %s, "
    sql = (
        f"UPDATE {table} SET {dates}"  # noqa: S608
        "session_digest = %s, failed_pin_attempts = 0 "  # 0: a sign-in follows a right PIN
        "WHERE id = %s AND revocations_granted = %s AND pin_hash = %s"
    )
    # The sign-in and its audit event are written together or not at all (one statement on PostgreSQL).
    signed = event_record_with(
        sql,
        [
            *([] if twin else [now]),
            session_digest(request.session.session_key),
            member.pk,
            member.revocations_granted,
            member.pin_hash,
        ],
        "signin_ok",
        request=request,
        member=member,
    )
    if signed is not None:
        # And a new CSRF secret, as django.contrib.auth.login gives: one planted before the sign-in (a
        # shared phone, a cookie from a sibling host) is worthless after it. Only once it opened: a
        # refused sign-in answers as a wrong PIN, which sends no new CSRF cookie.
        rotate_token(request)
        if not twin:  # the UPDATE set them to 0; a twin's sibling tells the member, once
            _failures_cleared_notice(member)
        return None
    del request.session[MEMBER_SESSION_KEY]  # the new id and CSRF secret stay: nothing is lost
    now_pin = Member.objects.filter(pk=member.pk).values_list("pin_hash", flat=True).first()
    return "pin_changed" if now_pin != member.pin_hash else "revocation_granted"


def member_sign_out(*, request: HttpRequest, member: Member | None, reason: str = "logout") -> None:
    """Ends the office session, the database first: once Member.session_digest names no session, this
    one is refused on its next request (office middleware, "closed") whatever becomes of its
    server-side copy, which is then deleted. Redis failing (a session it could not load, or not
    delete) must not leave a session the member was told was closed, to come back live with Redis
    in a shared browser."""
    # For MemberSessionMiddleware's Clear-Site-Data: also when the session could not be read.
    request.member_signed_out = True  # type: ignore[attr-defined]
    unread = getattr(request.session, "unreadable_key", None)
    if member is None and unread:
        # The store did not answer: only the database can tell whose session this cookie holds. (Only
        # then: a lookup by digest has no index, and any anonymous POST could ask for one.)
        member = Member.objects.filter(session_digest=session_digest(unread)).first()
    if member is not None:
        with transaction.atomic():  # the change and its event together
            Member.objects.filter(pk=member.pk).update(session_digest="")
            event_record(reason, request=request, member=member)
    # No member's session came with the request (a second tap on «Cerrar sesión» after the first
    # ended it, a page left open after the idle limit, or anyone's POST with a CSRF token): nothing
    # ended, nothing to record. Each such POST wrote a member-less event for the sealer to chain, for
    # as long as anyone cared to send them (review, 2026-12-06).
    try:
        request.session.flush()  # deletes the server-side session: the old cookie is worthless
    except Exception as exc:
        logger.warning(
            "could not delete a signed-out session (%s); it is ended all the same", type(exc).__name__
        )
        # An empty session in its place: the response deletes the browser's cookie, writes nothing.
        request.session = import_module(settings.SESSION_ENGINE).SessionStore()


def member_self_block(*, request: HttpRequest, member: Member) -> None:
    """ "Bloquear mi acceso": the PIN stops working at once; only "Olvidé mi clave" opens it again."""
    now = timezone.now()
    # The block, the sign-out and their events: all or none. Two transactions left the access blocked
    # while the member, the sign-out's event refused, read «no se hizo ningún cambio». (Review, 2026-12-06)
    with transaction.atomic():
        Member.objects.filter(pk=member.pk).update(locked_at=now, self_blocked_at=now)
        event_record("self_blocked", request=request, member=member)
        # On every channel, as a lock after wrong PINs and every change in the office: a block made from
        # a session that is not the member's (a relay's) left the member finding the access closed, with
        # no word of why or that it was made in the office; the notice says how to open it again.
        # (Review, 2026-12-07)
        notices = notice_queue(member=member, template="access_self_blocked", context={})
        member_sign_out(request=request, member=member, reason="logout")
    outbox_dispatch(notices)
