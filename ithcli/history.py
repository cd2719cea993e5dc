"""The pump's therapy history, worked out from its own event log (pure, no I/O).

The checks of a change compare it with more than the program in force now: with the
dose at the start of each escalation window, the boluses of the last 24 hours, and
any interruption of delivery. The pump's log is the one record every programmer
writes to (changes made by anybody count), so that is where this reads them from.

The log is a ring: what it no longer holds is unknown, and `covers()` says so. The
caller reads it back from the newest event to a horizon (`HORIZON_S`), and passes
whether it reached the pump's first event ever (then nothing is missing).

    h = History.from_log(events, now=..., dose_now=..., complete=...)
    h.dose_at(now - DAY)             # the daily dose in force then
    h.interruptions                  # [Interruption(start, end, causes, restart_dose)]
    h.boluses_since(now - DAY, conc) # ng given as boluses since then
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from protocol import Alarm, EventType
from protocol.bodies import Event

HOUR = 3600
DAY = 86_400
#: how far back the checks read: the longest window (7 days) and a day before it, so the
#: dose at the window's start and an interruption that began before it are both seen
HORIZON_S = 8 * DAY

_STOP_CAUSES = {
    int(Alarm.EMPTY_RESERVOIR): "the reservoir ran empty",
    int(Alarm.MOTOR_STALL): "motor stall",
    int(Alarm.EOS): "battery end of service",
}


def on_current_clock(events: list[Event]) -> list[Event]:
    """The events with every time on the pump's clock as it is now.

    An event logged before a CLOCK_SET carries the old clock's time; the step (new - old,
    in the event's 32-bit arithmetic) is added to it, for each CLOCK_SET from the newest
    back, so a window such as "the last 24 hours" is measured across a clock change in
    real time (docs/protocol.md#setting-the-clock). Events oldest first."""
    out: list[Event] = []
    step = 0
    for e in reversed(events):
        out.append(dataclasses.replace(e, time=e.time + step) if step else e)
        step += clock_step([e])
    out.reverse()
    return out


def set_step(old_low32: int, new_low32: int) -> int:
    """A CLOCK_SET's step from its arguments (the times' low 32 bits), in 32-bit arithmetic."""
    step = (new_low32 - old_low32) & 0xFFFF_FFFF
    return step - (1 << 32) if step >= 1 << 31 else step


def clock_step(events: list[Event]) -> int:
    """The steps of every CLOCK_SET among `events`, added: what moves a time logged before them all."""
    return sum(set_step(e.arg1, e.arg2) for e in events if e.type == EventType.CLOCK_SET)


_BOLUS_EVENTS = frozenset({EventType.BOLUS_STARTED, EventType.PTM_GRANTED, EventType.BRIDGE_STARTED,
                           EventType.BOLUS_FINISHED, EventType.UNCONTROLLED_BOLUS})


@dataclass(frozen=True)
class Interruption:
    """Delivery not running from `start` to `end` (pump time).

    start None: it began before the oldest event read (`began_before`), so it lasted
    at least from then. end None: it still goes on."""

    start: int | None
    end: int | None
    causes: tuple[str, ...]
    began_before: int | None = None  # when start is None: the oldest time the log was read to
    restart_dose: int | None = None  # ng/day in force when delivery resumed

    def at_least(self, now: int) -> int:
        """Its length in seconds, or the least it can be when it began before the log."""
        start = self.start if self.start is not None else self.began_before
        return (self.end if self.end is not None else now) - (start if start is not None else now)

    @property
    def ongoing(self) -> bool:
        return self.end is None

    def as_dict(self, now: int) -> dict:
        return {"start": self.start, "began_before": self.began_before, "end": self.end,
                "ongoing": self.ongoing, "at_least_s": self.at_least(now), "causes": list(self.causes),
                "restart_dose_ng_per_day": self.restart_dose}


@dataclass(frozen=True)
class Bolus:
    """A clinician, priming, patient or bridge bolus as the log shows it."""

    time: int
    dose_ng: int  # given (the dose less what a stopped bolus left undelivered)
    duration_s: int
    whole: bool = False  # counted whole even when it was cut short (a bridge bolus)


def _at_oldest_event(events: list[Event], dose_now: int) -> tuple[int, int | None, bool]:
    """Where the log read begins: the dose then (the first change's "before"; with no change,
    today's), since when delivery was suspended (None: it was not, as far as the log shows),
    and whether an interruption was already under way (its start not read)."""
    first_change = next((e for e in events if e.type == EventType.PROGRAM_CHANGED), None)
    dose = first_change.arg1 if first_change else dose_now
    first_suspension = next((e for e in events if e.type in (EventType.DELIVERY_STOPPED,
                                                                EventType.DELIVERY_RESUMED)), None)
    # suspended since before the oldest event read: resumed with no stop read before it
    unknown_start = first_suspension is not None and first_suspension.type == EventType.DELIVERY_RESUMED
    suspended_at = events[0].time if unknown_start else None
    return dose, suspended_at, unknown_start or (dose == 0 and bool(events))


@dataclass
class History:
    now: int
    dose_now: int
    complete: bool  # the log reached the pump's first event: nothing before it is missing
    oldest_time: int | None  # time of the oldest event read (None: no events at all)
    changes: list[tuple[int, int, int]] = field(default_factory=list)  # (time, before, after) ng/day
    boluses: list[Bolus] = field(default_factory=list)
    dumped_ul: list[tuple[int, int]] = field(default_factory=list)  # uncontrolled boluses: (time, uL)
    interruptions: list[Interruption] = field(default_factory=list)
    drug_changed_at: int | None = None  # a refill put another drug in: the history starts there

    # --- reading the log -------------------------------------------------------

    @classmethod
    def from_log(cls, events: list[Event], *, now: int, dose_now: int, complete: bool) -> History:
        """events: the log read back to the horizon, oldest first; their times are moved onto
        the pump's clock as it is now (on_current_clock)."""
        events = on_current_clock(events)
        h = cls(now=now, dose_now=dose_now, complete=complete,
                oldest_time=events[0].time if events else None)
        dose, suspended_at, open_unknown = _at_oldest_event(events, dose_now)
        mri_at: int | None = None
        suspend_cause = "delivery suspended"
        open_start: int | None = None  # when the current interruption began
        open_causes = ["delivery was already stopped when the oldest event read was logged"] if open_unknown else []
        for e in events:
            t, kind = e.time, e.type
            was_running = not open_unknown and open_start is None
            if kind == EventType.DRUG_CHANGED:
                h.start_of_drug(t)
            elif kind == EventType.PROGRAM_CHANGED:
                # the refill that changed the drug starts the new drug's history at its new dose
                h.changes.append((t, e.arg2 if h.drug_changed_at == t else e.arg1, e.arg2))
                dose = e.arg2
            elif kind == EventType.DELIVERY_STOPPED:
                suspended_at = t
                suspend_cause = _STOP_CAUSES.get(e.arg1, "")
                if not suspend_cause:
                    suspend_cause = "MRI-safe mode" if mri_at == t else "delivery suspended"
            elif kind == EventType.DELIVERY_RESUMED:
                suspended_at = None
            elif kind == EventType.MRI_SAFE_ENTERED:
                mri_at = t
            elif kind in _BOLUS_EVENTS:
                h.note_bolus(e)
            running = suspended_at is None and dose > 0
            if was_running and not running:
                open_start = t
                open_causes = [suspend_cause if suspended_at is not None else "delivery stopped by programming"]
            elif not was_running and running:
                h.interruptions.append(Interruption(
                    None if open_unknown else open_start, t, tuple(open_causes),
                    began_before=h.oldest_time if open_unknown else None, restart_dose=dose))
                open_start, open_causes, open_unknown = None, [], False
            elif not running:
                cause = suspend_cause if suspended_at is not None else "delivery stopped by programming"
                if cause not in open_causes and (kind in (EventType.DELIVERY_STOPPED, EventType.PROGRAM_CHANGED)):
                    open_causes.append(cause)
        if open_unknown or open_start is not None:
            h.interruptions.append(Interruption(None if open_unknown else open_start, None, tuple(open_causes),
                                                began_before=h.oldest_time if open_unknown else None))
        return h

    def start_of_drug(self, t: int) -> None:
        """DRUG_CHANGED: what the log holds before it is another drug's, in its units: its
        boluses and changes do not count against this drug's limits."""
        self.boluses.clear()
        self.dumped_ul.clear()
        self.changes.clear()
        self.drug_changed_at = t

    def note_bolus(self, e: Event) -> None:
        """A bolus started or ended, or the valves dumped the reservoir."""
        t, kind = e.time, e.type
        if kind in (EventType.BOLUS_STARTED, EventType.PTM_GRANTED):
            self.boluses.append(Bolus(t, e.arg1, e.arg2))
        elif kind == EventType.BRIDGE_STARTED and self.drug_changed_at != t:
            # the same drug's old contents at the old rate: counted whole (what a cut-short
            # bridge left is in the new concentration's terms). After a drug change it is the
            # old drug's, not this one's
            self.boluses.append(Bolus(t, e.arg1, e.arg2, whole=True))
        elif kind == EventType.BRIDGE_STARTED:
            self.boluses.append(Bolus(t, 0, e.arg2, whole=True))  # ends with a BOLUS_FINISHED of its own
        elif kind == EventType.BOLUS_FINISHED and self.boluses and not self.boluses[-1].whole:
            last = self.boluses[-1]
            self.boluses[-1] = Bolus(last.time, max(0, last.dose_ng - e.arg1), last.duration_s)
        elif kind == EventType.UNCONTROLLED_BOLUS:
            self.dumped_ul.append((t, e.arg1))

    # --- what the checks ask ---------------------------------------------------

    def covers(self, since: int) -> bool:
        """Whether the log read holds everything from `since` to now."""
        return self.complete or (self.oldest_time is not None and self.oldest_time <= since)

    def dose_at(self, when: int) -> int:
        """The programmed daily dose in force at `when` (ng/day)."""
        for t, before, _after in self.changes:
            if t > when:
                return before
        return self.dose_now

    def baseline(self, since: int) -> int:
        """The dose a rise over the window from `since` is measured against: the dose in force
        at the window's start, or the restart dose after a restart inside the window."""
        restarts = [i for i in self.interruptions if i.end is not None and i.end > since]
        if restarts:
            return restarts[-1].restart_dose or 0
        return self.dose_at(since)

    def increases_since(self, since: int) -> int:
        return sum(1 for t, before, after in self.changes if after > before and t > since)

    def boluses_since(self, since: int, concentration_ng_per_ml: int) -> int:
        """ng given as boluses (running ones whole, uncontrolled ones at this concentration) since then."""
        total = sum(b.dose_ng for b in self.boluses if b.time + b.duration_s > since)
        total += sum(ul * concentration_ng_per_ml // 1000 for t, ul in self.dumped_ul if t > since)
        return total

    def ongoing(self) -> Interruption | None:
        return next((i for i in self.interruptions if i.ongoing), None)

    def last_interruption_since(self, since: int) -> Interruption | None:
        """The latest interruption still going on or ended after `since`."""
        recent = [i for i in self.interruptions if i.end is None or i.end > since]
        return recent[-1] if recent else None
