"""The pump's history as a change's checks read it and its before/after table shows it.

read_history() reads the pump's log back to the checks' horizon (history.py works it out
without I/O); patient_origin() says baclofen's spasticity origin, which picks the 24-hour
budget the history is measured against: the pump's patient record holds it (protocol version
5); for a pump that records none, record_origin() keeps the one given for later changes. history_view()
and history_rows() show what the history told the checks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocol.bodies import Event, Status

    from .app import PumpSession
    from .client import PumpClient
    from .history import History
    from .operations import PumpState

DAY = 86_400


def read_history(client: PumpClient, raw: Status) -> History:
    """The pump's log read back from its newest event to the checks' horizon (8 days), as a
    History. Only what the status read counted (event_count) is used, so the history and
    the status describe the same moment."""
    from protocol.messages import MAX_LOG_PAGE

    from .history import HORIZON_S, History, clock_step

    horizon = raw.pump_time - HORIZON_S
    end = raw.event_count
    events: list[Event] = []
    oldest = end
    index = end
    step = 0  # the clock sets read so far: how far they move anything logged before them
    while index > 0:
        first = max(0, index - MAX_LOG_PAGE)
        page = client.read_log(first, index - first)
        oldest = page.oldest_index
        batch = [e for e in page.events if first <= e.index < index]
        events[:0] = batch
        if not batch or first <= oldest:
            break
        # the oldest event read, on the pump's clock as it is now (history.on_current_clock): a
        # clock set back or forward moved what was logged before it
        step += clock_step(batch[1:])
        if batch[0].time + step < horizon:
            break
        step += clock_step(batch[:1])
        index = first
    complete = oldest == 0 and (not events or events[0].index == 0)
    return History.from_log(events, now=raw.pump_time, dose_now=raw.daily_dose_ng_per_day, complete=complete)


def patient_origin(session: PumpSession, state: PumpState, given: str | None) -> str | None:
    """Baclofen's spasticity origin: the pump's patient record's when it holds one (an origin given now
    that contradicts it is refused: SafetyError); else as given now, else as kept for this pump."""
    from .patient import recorded_origin

    on_pump = recorded_origin(state.raw)
    if on_pump:
        if given and given != on_pump:
            from .errors import SafetyError

            raise SafetyError(f"--spasticity-origin {given}, but {state.raw.serial_number} records the patient's "
                              f"spasticity as {on_pump}: correct the pump's record with `ithcli patient set "
                              f"--correct --spasticity-origin {given}` if it is wrong. Nothing was sent",
                              details={"refused": [{"level": "refuse", "rule": "origin-contradicts-pump",
                                                    "message": f"the pump records {on_pump}", "flag": None}]})
        return on_pump
    if given:
        return given
    if state.entry is None or not state.entry.rise_24h_percent_by_origin:
        return None
    return session.records.notes.origin(state.raw.serial_number)


def record_origin(session: PumpSession, state: PumpState, given: str | None) -> None:
    """Keep a newly given spasticity origin for this pump's later changes (audited); a pump that
    records the origin itself keeps it (nothing is kept here then)."""
    from .patient import recorded_origin

    if not given or recorded_origin(state.raw):
        return
    notes = session.records.notes
    serial = state.raw.serial_number
    if notes.origin(serial) != given:
        notes.set_origin(serial, given)
        session.record("spasticity-origin", origin=given)


def history_view(past, entry, origin: str | None = None) -> dict:
    """What the history showed the checks: for --json."""
    if past is None:
        return {}
    out: dict = {"history": {"log_complete": past.complete, "oldest_event_time": past.oldest_time,
                             "interruptions": [i.as_dict(past.now) for i in past.interruptions]}}
    if entry is not None and entry.rise_24h_percent_by_origin:
        out["spasticity_origin"] = origin
    return out


def history_rows(past, entry, skew_s: int = 0) -> list[tuple[str, str, str]]:
    """An interruption in the last 8 days, shown in the before/after table: from when, how long, why
    (its times from the pump's log, shown on this computer's calendar)."""
    from .calendar import iso, to_calendar
    from .limits import duration
    from .output import fmt_date

    def when(ts):
        return fmt_date(iso(to_calendar(ts, skew_s)))

    if past is None:
        return []
    gap = past.last_interruption_since(past.now - 7 * DAY)
    if gap is None:
        return []
    begun = f"before {when(gap.began_before)}" if gap.start is None and gap.began_before else \
        "unknown" if gap.start is None else when(gap.start)
    length = gap.at_least(past.now)
    how_long = f"{'at least ' if gap.start is None else ''}{duration(length)}"
    until = "still interrupted" if gap.ongoing else f"resumed {when(gap.end)}"
    return [("Interruption", f"from {begun}, {how_long} ({', '.join(gap.causes)})", until)]
