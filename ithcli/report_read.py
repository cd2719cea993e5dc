"""What a report reads from the audit log: only the segments of its session's days, one pump's lines.

Segments are named by the UTC day of their entries (audit_segments.py), so a report for one
day opens that day's files, checks them (every line, or past 32 MB each closed segment
against the digest sealed when it closed: audit_verify.Scan) and parses only the lines of
the pump asked for. When those days hold no reading of the pump from before its first write
(its "last settings"), earlier segments are read too, and later ones when the session's last
write has no outcome in them, in doubling steps, back to the first if need be: a report is
never short of what reading the whole log would give it.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any

from .audit import AuditLog
from .audit_segments import utc_day
from .audit_verify import Scan
from .report import WRITE_COMMANDS, _in, _ok, entry_time


def read(audit: AuditLog, *, since: int, until: int | None, serial: str | None
         ) -> tuple[list[dict], list[str], dict[str, Any]]:
    """(the entries the report needs, the pumps of what was read, the audit_log part of the report)."""
    days = (utc_day(since), utc_day(until - 1 if until is not None else time.time()))
    only = f'"{serial}"'.encode() if serial else None
    before = after = 0
    while True:
        scan = Scan(audit.path, days=days, before=before, after=after, only=only)
        records, serials = read_for_session(scan.entries(), since=since, until=until, serial=serial)
        # further back (on) in doubling steps, so that a pump read long ago costs at most twice the read
        if scan.earlier and _needs_earlier(records, serial):
            before = before * 2 or 1  # the pump's last settings before the session are further back
        elif scan.later and _undecided_write(records, serial, until):
            after = after * 2 or 1  # how the session's last write ended is further on
        else:
            break
    if serial is not None and serial not in serials:  # no entry of it anywhere: which pumps are there
        serials = sorted({r["pump_serial"] for r in Scan(audit.path).entries() if r.get("pump_serial")})
    whole = not scan.earlier and not scan.later
    info = {"path": str(audit.path), "entries": scan.count, "intact": not scan.problems,
            "problems": scan.problems, "entries_kept": len(records), "read_from": scan.read_from,
            "checked_by_seal": scan.by_seal,
            "scope": "whole log" if whole else f"segments of {days[0]}" + ("" if days[0] == days[1] else
                                                                           f" to {days[1]}")}
    return records, serials, info


def read_for_session(entries: Iterable[dict], *, since: int, until: int | None,
                     serial: str | None = None) -> tuple[list[dict], list[str]]:
    """What build() needs from the audit log, read one entry at a time: (the entries it needs,
    in log order; every pump the whole log holds). Memory follows the session, not the log.

    Kept: every entry of the session; after it, each pump's entries up to its next write (a
    session's last write's outcome); before it, each pump's last status and, since its last
    write, what _before_write reads (the newest status and program, overrides, orders, and the
    HELLOs that end them). serial: the report's pump when known already (--pump, --port): only
    its entries are kept (build reads no other)."""
    only = serial
    kept: dict[int, dict] = {}
    serials: set[str] = set()
    last_status: dict[str, tuple[int, dict]] = {}  # pump -> its last status before the session
    context: dict[str, dict[int, dict]] = {}  # pump -> its entries _before_write may need
    newest: dict[tuple[str, str], int] = {}  # (pump, command) -> the position of its newest read
    after_done: set[str] = set()  # pumps whose next write after the session has been seen
    # pumps whose newest kept note is newer than their newest kept HELLO: a HELLO matters to
    # _before_write only as where its notes stop, so only the oldest of a run without notes is kept
    note_last: set[str] = set()
    slim = _Slimmer(kept)
    for n, r in enumerate(entries):
        serial = r.get("pump_serial")
        if serial:
            serials.add(serial)
        if only is not None and serial != only:
            continue
        t = entry_time(r)
        if _in(r, since, until):
            kept[n] = r
            slim.seen(n, r, serial)
            continue
        if not serial:
            continue
        is_write = r.get("event") == "exchange" and r.get("command") in WRITE_COMMANDS
        if until is not None and t is not None and t >= until:
            if serial not in after_done:
                kept[n] = r
                if is_write:
                    after_done.add(serial)
            continue
        mine = context.setdefault(serial, {})
        if is_write:
            mine.clear()  # the state read for an earlier change is not a later one's "before"
            note_last.discard(serial)
        elif _ok(r, "INTERROGATE") or _ok(r, "READ_PROGRAM"):
            if _ok(r, "INTERROGATE"):
                last_status[serial] = (n, r)
            old = newest.get((serial, r["command"]))
            if old is not None:
                mine.pop(old, None)  # only the newest read is ever the "before"
            newest[(serial, r["command"])] = n
            mine[n] = r
        elif r.get("event") in _BEFORE_NOTES:
            mine[n] = r
            note_last.add(serial)
        elif r.get("command") == "HELLO" and serial in note_last:
            mine[n] = r
            note_last.discard(serial)
    kept.update(last_status.values())
    for mine in context.values():
        kept.update(mine)
    return [r for _, r in sorted(kept.items())], sorted(serials)


#: the events _before_write reads as a write's overrides, confirmations and order
_BEFORE_NOTES = ("soft-limit-override", "confirmation-flags", "order", "double-check")


class _Slimmer:
    """A session's readings, most of them alike (a monitor's): each is kept in full only while it is
    the pump's newest, or when a write's before or after needs it; the others keep what build()
    reads of them (time, who, the alarms, the event count), so memory follows the session's
    readings by a few hundred bytes each, not by the whole reply."""

    def __init__(self, kept: dict[int, dict]):
        self.kept = kept
        self.newest: dict[str, int] = {}  # pump -> its newest full in-session reading
        self.needed: set[int] = set()  # readings a write's before or after reads
        self.after_write: set[str] = set()  # pumps whose next reading is a write's read-back

    def seen(self, n: int, r: dict, serial: str | None) -> None:
        if serial is None:
            return
        if r.get("event") == "exchange" and r.get("command") in WRITE_COMMANDS:
            if serial in self.newest:
                self.needed.add(self.newest[serial])
            self.after_write.add(serial)
        elif r.get("command") in ("HELLO", "AUTH") and r.get("event") == "exchange":
            self.kept[n] = _slim(r)  # a handshake: build() reads only that it was one, when and who
        elif _ok(r, "INTERROGATE"):
            old = self.newest.get(serial)
            if old is not None and old not in self.needed:
                self.kept[old] = _slim(self.kept[old])
            self.newest[serial] = n
            if serial in self.after_write:
                self.needed.add(n)
                self.after_write.discard(serial)


_SLIM_KEYS = ("event", "command", "outcome", "operator", "pump_serial", "port")


def _slim(r: dict) -> dict:
    """What build() reads of a reading it does not show whole. The keys are this module's strings
    and the values repeated from entry to entry are shared: not the parser's copies of each."""
    response = r.get("response") or {}
    out = {k: sys.intern(r[k]) if isinstance(r[k], str) else r[k] for k in _SLIM_KEYS if k in r}
    out["time"] = r.get("time")
    out["response"] = {k: response[k] for k in ("alarms", "event_count") if k in response}
    return out


def described(info: dict[str, Any]) -> str:
    """Where the report read from, in words: "1,234 entries of the whole log" or of which segments."""
    files = info.get("read_from") or []
    where = info.get("scope", "whole log")
    if where != "whole log" and files:  # the files read, by name
        where = f"{where} ({', '.join(files)})"
    if where == "whole log":
        return f"{info['entries']:,} entries of the whole log"
    return f"{info['entries']:,} entries, {where}"


def _undecided_write(records: list[dict], serial: str | None, until: int | None) -> bool:
    """True when the pump's last write in the session has no outcome in what was read (its
    read-back, or the read that settled it, is in a later segment)."""
    last = None
    for i, r in enumerate(records):
        if (serial is None or r.get("pump_serial") == serial) and r.get("event") == "exchange" \
                and r.get("command") in WRITE_COMMANDS:
            last = i
    if last is None or not _in(records[last], 0, until) or records[last].get("outcome") != "ok":
        return False
    for r in records[last + 1:]:
        if r.get("event") in ("verified", "verify-failed", "reconciled") or (
                r.get("command") == "COMMIT" and r.get("event") == "exchange" and r.get("outcome") != "ok"):
            return False
    return True


def _needs_earlier(records: list[dict], serial: str | None) -> bool:
    """True when what was read holds no reading of the pump ahead of its first write: its settings,
    and a write's "before", are further back."""
    for r in records:
        if serial is not None and r.get("pump_serial") != serial:
            continue
        if r.get("command") == "INTERROGATE" and r.get("outcome") == "ok":
            return False
        if r.get("event") == "exchange" and r.get("command") in WRITE_COMMANDS:
            return True
    return True


