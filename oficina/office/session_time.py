"""What base.html's office warning needs to tell the truth about when the session ends (WCAG 2.2.1).

The idle limit (MEMBER_IDLE_SECONDS) is renewed by any page or «Seguir conectado»; the absolute one
(MEMBER_ABSOLUTE_SECONDS, counted from the sign-in) is a security control and cannot be. When the
absolute end comes first, the warning says so, with the time, and offers nothing to extend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from oficina.lib.dates import Moment, colombian_moment
from oficina.signin.stages import time_left_words

# How long before the end the warning shows: static/js/app.js shows it a minute before (its 60000).
WARNING_LEAD_SECONDS = 60


@dataclass(frozen=True)
class SessionTime:
    idle_left: int  # seconds until the idle end when the page was made
    absolute_left: int  # seconds until the absolute end when the page was made
    absolute_end: float  # the absolute end, as time.time()

    @classmethod
    def of(cls, *, now: float, seen_at: float, signed_in_at: float, idle: int, absolute: int) -> SessionTime:
        return cls(
            idle_left=max(0, int(idle - (now - seen_at))),
            absolute_left=max(0, int(absolute - (now - signed_in_at))),
            absolute_end=signed_in_at + absolute,
        )

    @property
    def last(self) -> bool:
        """The absolute end comes first: nothing the member does can keep the session past it, so the
        warning offers no «Seguir conectado». Once true, it stays true (the idle end only moves later)."""
        return self.absolute_left <= self.idle_left

    @property
    def shown(self) -> bool:
        """A page made within the warning's lead time of the absolute end carries the warning shown, so
        that it is read without JavaScript too."""
        return self.last and self.absolute_left <= WARNING_LEAD_SECONDS

    @property
    def when(self) -> str:
        return time_left_words(self.absolute_left)

    @property
    def ends(self) -> Moment:
        """The absolute end as a clock time in Colombia («a las 3:42 p. m.»): right whenever it is read."""
        return colombian_moment(datetime.fromtimestamp(self.absolute_end, UTC))


@dataclass(frozen=True)
class StepUpTime:
    """What the warning on a change's page needs (office/_stepup_warning.html): the step-up's
    STEPUP_SECONDS end without a word, and the member's change was refused. One warning at a time:
    when the session's absolute end comes first, the session's warning is the one that tells the truth
    (the step-up ends with the session); otherwise this one, whose «Necesito más tiempo» is a request
    and so renews the idle limit too."""

    left: int  # seconds until the step-up ends, when the page was made
    period: int  # what «Necesito más tiempo» gives (STEPUP_SECONDS)
    extensions_left: int
    extensions: int  # how many a step-up has (services.STEPUP_EXTENSIONS)
    session: SessionTime
    keeps: bool = False  # the page's typed fields are kept when its change comes after the end

    @property
    def comes_first(self) -> bool:
        return self.left < self.session.absolute_left

    @property
    def extendable(self) -> bool:
        return self.extensions_left > 0

    @property
    def shown(self) -> bool:
        """A page made within the last minute of the step-up carries the warning shown (no JavaScript)."""
        return self.comes_first and self.left <= WARNING_LEAD_SECONDS

    @property
    def when(self) -> str:
        return time_left_words(self.left)
