"""The sign-in journey as an ordered sequence of stages held in the server-side session.

Every view asks for the one stage it serves; a request for any other stage (a bookmark, a direct POST,
the back button) finds no flow in that stage and is sent to the start. Stages only move forward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

SESSION_KEY = "signin"
# WCAG 2.2.1: a member who needs more than SIGNIN_FLOW_SECONDS (the policy read out by a screen reader,
# say) is warned a minute before the end and may ask for the time again, this many times per flow.
FLOW_EXTENSIONS = 10


class Stage(StrEnum):
    PASSWORD = "clave"  # cédula given; image, phrase and keypad shown
    NEW_PIN = "nueva_clave"  # temporary code accepted; define the new PIN
    CONFIRM_PIN = "confirmar_clave"
    SECURITY_IMAGE = "imagen"
    POLICY = "politica"  # also reached by a returning member who must accept a newer policy
    DONE = "listo"


# The only moves a flow may make.
NEXT: dict[Stage, set[Stage]] = {
    Stage.PASSWORD: {Stage.NEW_PIN, Stage.POLICY},
    Stage.NEW_PIN: {Stage.CONFIRM_PIN},
    Stage.CONFIRM_PIN: {Stage.SECURITY_IMAGE, Stage.NEW_PIN},
    Stage.SECURITY_IMAGE: {Stage.POLICY},
    Stage.POLICY: {Stage.DONE},
    Stage.DONE: set(),
}


def time_left_words(seconds: float) -> str:
    """How the warning says when the flow ends: «en 1 minuto» only when a minute is left (it is shown a
    minute before); a page made, or a phone woken, with less left says so. static/js/app.js says the
    same when it shows the warning, from its own clock."""
    return "en 1 minuto" if seconds >= 60 else "en menos de un minuto"


@dataclass(frozen=True)
class TimeWarning:
    left: int  # seconds left when the page was made
    period: int  # what «Necesito más tiempo» gives
    extendable: bool  # whether it may still be asked for (FLOW_EXTENSIONS times per flow)
    extensions: int = FLOW_EXTENSIONS

    @property
    def when(self) -> str:
        return time_left_words(self.left)


class Flow:
    """A view of session[SESSION_KEY]; changes are written back through the session."""

    def __init__(self, session: SessionBase, data: dict[str, Any]) -> None:
        self._session = session
        self.data = data

    @property
    def document(self) -> str:
        return str(self.data["document"])

    @property
    def stage(self) -> Stage:
        return Stage(self.data["stage"])

    @property
    def member_id(self) -> int | None:
        value = self.data.get("member_id")
        return int(value) if value is not None else None

    def require_member_id(self) -> int:
        """The member proven by a code or PIN; stages after PASSWORD always have one."""
        member_id = self.member_id
        if member_id is None:
            raise ValueError("this stage needs a proven member")
        return member_id

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, **values: Any) -> None:
        self.data.update(values)
        self._session.modified = True

    def extend(self) -> bool:
        """«Necesito más tiempo»: the flow's clock starts again, FLOW_EXTENSIONS times at most."""
        if not self.extensions_left():
            return False
        self.set(started_at=time.time(), extensions=self._extensions_used() + 1)
        return True

    def extensions_left(self) -> int:
        return max(0, FLOW_EXTENSIONS - self._extensions_used())

    def _extensions_used(self) -> int:
        return int(self.data.get("extensions", 0))

    def time_warning(self) -> TimeWarning:
        """What base.html's warning needs. Also once the extensions are used up: the member is then told,
        a minute before the end, that no more time can be given (it ended without a word)."""
        elapsed = time.time() - float(self.data.get("started_at", 0))
        return TimeWarning(
            left=max(1, int(settings.SIGNIN_FLOW_SECONDS - elapsed)),
            period=settings.SIGNIN_FLOW_SECONDS,
            extendable=self.extensions_left() > 0,
        )

    def advance(self, to: Stage, **values: Any) -> None:
        if to not in NEXT[self.stage]:
            raise ValueError(f"a flow cannot move from {self.stage} to {to}")
        self.data["stage"] = to.value
        self.set(**values)


def flow_start(session: SessionBase, *, document: str) -> Flow:
    data = {"document": document, "stage": Stage.PASSWORD.value, "started_at": time.time()}
    session[SESSION_KEY] = data
    return Flow(session, data)


def flow_get(session: SessionBase, *, stage: Stage | None = None) -> Flow | None:
    """The session's flow when it exists, has not timed out and (if asked) is in `stage`."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or "stage" not in data:
        return None
    if time.time() - float(data.get("started_at", 0)) > settings.SIGNIN_FLOW_SECONDS:
        flow_end(session)
        return None
    flow = Flow(session, data)
    if stage is not None and flow.stage != stage:
        return None
    return flow


def flow_resume(session: SessionBase, flow: Flow) -> None:
    """Puts back a flow that flow_end took out of the session, as it was."""
    session[SESSION_KEY] = flow.data
    flow._session = session


def flow_end(session: SessionBase) -> None:
    session.pop(SESSION_KEY, None)
