"""The request rate a deployment is paced at, and where it comes from.

Sources, strongest first: the ``rpm`` configured for the deployment (``configured``), a
per-minute limit the provider announces in its headers (``headers``), or what its 429s
teach (``429s``). The configured or announced figure is a ceiling; below it the rate moves
by AIMD on the *admitted rate*:

- a 429 cuts the rate by 10%, or down to what the provider actually took in the last
  moments when that is lower (never by more than half at once); only a 429 for a call sent
  after the rate was last cut or set counts, since one for a call sent before says nothing
  about the new rate (the calls in flight when the limit is hit all come back 429);
- while calls wait for the rate and no 429 comes, the rate grows each second, by 1% of
  itself after one quiet second, 2% after two, up to 10%: it creeps up near the limit where
  a 429 was just seen and finds a far-away limit quickly. Growth is driven by the calls
  waiting (`DeploymentGate` ticks it at least once a second), never by answers: a rate
  that lets few calls through must still be able to climb back;
- with no ceiling, the rate where the last 429 came is remembered: just under it the rate
  creeps (`PLATEAU_STEP` a second) for up to `PLATEAU_SECONDS`, so a limit found by 429s is
  not hit again every few seconds (each 429 also costs a ``Retry-After`` pause).

What the provider *took* is counted by the time calls were sent: every call sent, less
those it refused (429, or never reached). 429s come back at once while successes take
their time, so counting answers would read the first 429 as "it takes nothing".

With nothing configured or announced there is no pacing until the first 429; that 429 sets
the rate a tenth under what the provider took in the last second, and never under half of
what was sent in it: a 429 that comes back before anything else does says the provider
takes less than that, not that it takes nothing. The calls of its wave still out count as
taken until their own 429s come back, so each of those lowers the figure again (the first
429 alone, on a loaded machine, could count twice what the provider took): the rate starts
from what the whole wave taught.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

# Where the admitted rate comes from: the deployment's rpm, a provider's headers, its 429s.
RateSource = Literal["configured", "headers", "429s"]

DECREASE = 0.9
MAX_CUT = 0.5
STEP_INTERVAL = 1.0
STEP_PER_QUIET_SECOND = 0.01
MAX_STEP = 0.10
# Just under the rate where the last 429 came (no ceiling known), the rate creeps.
PLATEAU = 0.96
PLATEAU_STEP = 0.002
PLATEAU_SECONDS = 60.0
MIN_RATE = 1 / 60  # one request a minute: a rate never reaches zero


class AcceptanceMeter:
    """Calls sent, and calls refused among them, counted by the tenth of a second they
    were sent in."""

    _SLOTS_PER_SECOND = 10
    KEEP = 30.0  # seconds of history: enough for the slowest window asked for

    def __init__(self) -> None:
        self._slots: deque[list[int]] = deque()  # [slot number, sent, refused], oldest first

    def add(self, sent_at: float) -> None:
        """A call was sent at ``sent_at`` (the latest call so far)."""
        slot = int(sent_at * self._SLOTS_PER_SECOND)
        slots = self._slots
        if slots and slots[-1][0] >= slot:
            slots[-1][1] += 1
            return
        slots.append([slot, 1, 0])
        oldest = slot - int(self.KEEP * self._SLOTS_PER_SECOND)
        while slots[0][0] < oldest:
            slots.popleft()

    def refuse(self, sent_at: float) -> None:
        """The call sent at ``sent_at`` was refused (429) or never reached the provider."""
        slot = int(sent_at * self._SLOTS_PER_SECOND)
        for entry in reversed(self._slots):
            if entry[0] < slot:
                return  # its slot is gone (older than what is kept)
            if entry[0] == slot:
                entry[2] = min(entry[2] + 1, entry[1])
                return

    def _count(self, now: float, window: float) -> tuple[int, int, float]:
        first = int((now - window) * self._SLOTS_PER_SECOND)
        sent = refused = 0
        for slot, n, r in reversed(self._slots):
            if slot < first:
                break
            sent += n
            refused += r
        return sent, refused, max(now - first / self._SLOTS_PER_SECOND, 1e-9)

    def rate(self, now: float, window: float) -> float:
        """Calls taken (sent, not refused) per second over about the last ``window``
        seconds (whole slots)."""
        sent, refused, seconds = self._count(now, window)
        return (sent - refused) / seconds

    def sent_rate(self, now: float, window: float) -> float:
        """Calls sent per second over about the last ``window`` seconds."""
        sent, _, seconds = self._count(now, window)
        return sent / seconds


class AdmittedRate:
    """The admitted request rate (per second) and its source; None while there is none."""

    def __init__(self, *, configured_rpm: float | None, now: float) -> None:
        self.configured = configured_rpm / 60 if configured_rpm else None
        self.announced: float | None = None  # the per-minute limit from headers, per second
        self.rate = self.configured
        self.source: RateSource | None = "configured" if self.configured else None
        self.meter = AcceptanceMeter()
        self.peak: float | None = None  # the rate when the last cut came
        self._set_at = float("-inf")  # when the rate was last cut or set from headers
        self._first_wave = False  # the rate is the first 429's: its wave's 429s refine it
        self._last_limited = now
        self._last_step = now

    @property
    def ceiling(self) -> float | None:
        return self.configured or self.announced

    def on_sent(self, sent_at: float) -> None:
        """A call was sent (it counts as taken unless `on_refused` says otherwise)."""
        self.meter.add(sent_at)

    def on_refused(self, sent_at: float) -> None:
        """The call sent at ``sent_at`` was refused with a 429, or never reached the
        provider (or was never sent)."""
        self.meter.refuse(sent_at)

    def on_announced(self, requests_per_minute: int, now: float) -> bool:
        """The headers announced a per-minute limit; True when the rate changed."""
        limit = requests_per_minute / 60
        if limit == self.announced:
            return False
        self.announced = limit
        if self.configured is not None:
            return False  # what the user configured wins; the announcement is shown only
        self.source = "headers"
        self._first_wave = False
        if self.rate is None or self.rate > limit:
            self.rate = limit
            self._set_at = now
            return True
        return False

    def on_rate_limited(self, now: float, *, sent_at: float) -> bool:
        """A 429 came back for a call sent at ``sent_at`` (or an answer said the provider's
        bucket is empty); True when the rate changed."""
        self._last_limited = now
        if self.rate is None:
            self.source = "429s"
            self._set_at = now
            self._first_wave = True
            return self._learn(now)
        if sent_at <= self._set_at:
            # The rest of the first wave refines what the provider took; a later wave's 429s
            # say nothing about the new rate.
            return self._first_wave and self._learn(now)
        self._first_wave = False
        self.peak = self.rate
        target = self.rate * DECREASE
        # Slow rates need a longer look to count a handful of calls.
        taken = self.meter.rate(now, min(AcceptanceMeter.KEEP, max(1.0, 5 / self.rate)))
        if taken < target:
            target = max(taken, self.rate * MAX_CUT)
        self.rate = max(MIN_RATE, target)
        self._set_at = now
        return True

    def _learn(self, now: float) -> bool:
        """Set the rate a tenth under what the provider took in the last second (at exactly
        its rate its bucket would stay empty), never under half of what was sent in it;
        True if that lowered it. Calls of the first wave still out count as taken until
        their 429s come back, so each of those 429s refines the figure."""
        taken = self.meter.rate(now, 1.0)
        rate = max(MIN_RATE, taken * DECREASE, self.meter.sent_rate(now, 1.0) * MAX_CUT)
        if self.rate is not None and rate >= self.rate:
            return False
        self.rate = rate
        self.peak = taken or None  # about where the limit is, if it took anything
        return True

    def maybe_grow(self, now: float, *, waiting: bool) -> bool:
        """Step the rate up after a quiet second while calls wait for it; True if it grew.

        Without calls waiting the rate is not what holds them back, and growing it anyway
        would let the next batch start far above the limit."""
        rate = self.rate
        if rate is None or not waiting:
            return False
        ceiling = self.ceiling
        if ceiling is not None and rate >= ceiling:
            return False
        if now - max(self._last_limited, self._last_step) < STEP_INTERVAL:
            return False
        quiet = now - self._last_limited
        step = min(MAX_STEP, STEP_PER_QUIET_SECOND * quiet)
        grown = rate * (1 + step)
        plateau = self._plateau(quiet)
        if plateau is not None:
            if rate >= plateau:
                grown = rate * (1 + PLATEAU_STEP)
            else:
                grown = min(grown, plateau)
        self.rate = min(grown, ceiling) if ceiling is not None else grown
        self._last_step = now
        return True

    def _plateau(self, quiet: float) -> float | None:
        """Where growth slows to a creep: just under the last 429's rate, while it is
        recent and no ceiling says where the limit is."""
        if self.peak is None or self.ceiling is not None or quiet >= PLATEAU_SECONDS:
            return None
        return self.peak * PLATEAU

    @property
    def rpm(self) -> float | None:
        return self.rate * 60 if self.rate is not None else None
