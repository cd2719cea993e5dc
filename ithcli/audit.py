"""The audit log: every command sent and every response, hash-chained, append-only, in segments.

One JSON object a line. Each entry holds the SHA-256 of the previous entry's line
(`prev`) and its own hash over its canonical JSON (`hash`), so editing, removing
or reordering any entry breaks the chain at that point and `ithcli audit verify`
names the line. A torn last line (a crash mid-write) is reported, never merged.

The log rotates (audit_segments.py): the first entry of a new UTC day, or an active file
past SEGMENT_BYTES, closes the active file into `audit.segments/NNNNNN-DAY.jsonl` and
starts a new one whose first entry (`segment-start`) carries on the chain. Every reader
streams the segments one line at a time (audit_verify.py): verify and report run in
constant memory whatever the log's size; a report for one day opens only that day's files.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import audit_segments as seg
from .audit_chain import EDITED, GENESIS, canonical, entries, entry_hash, line_of, sealed_line
from .audit_verify import seal, verify
from .errors import ExitCode, IthcliError
from .output import jsonable

__all__ = ["GENESIS", "AuditError", "AuditLog", "entry_hash"]
_canonical, _line = canonical, line_of  # the names bench/ and older tests use

#: path -> (inode, size, hash of the last entry, segment number, segment day) as this process last wrote it
_LAST: dict[str, tuple[int, int, str, int, str | None]] = {}


@dataclass
class _Tail:
    """Where the next entry goes: after `prev`, in segment `seq` of UTC day `day` (None: still empty)."""

    prev: str
    seq: int
    day: str | None
    previous: dict | None = None  # an empty active file after closed segments: its header's summary


class AuditLog:
    def __init__(self, path: str | os.PathLike, *, segment_bytes: int | None = None,
                 clock: Callable[[], float] | None = None):
        self.path = Path(path)
        self._key = str(self.path)
        # ITHCLI_AUDIT_SEGMENT_BYTES: a smaller size for tests and benchmarks (documented in docs/audit.md)
        self.segment_bytes = segment_bytes or int(os.environ.get("ITHCLI_AUDIT_SEGMENT_BYTES") or seg.SEGMENT_BYTES)
        self._clock = clock
        self._held: list[dict[str, Any]] | None = None  # reads holding_reads() keeps, not written yet

    def clock(self) -> float:
        """The computer's clock: injected (the constructor's, or wall_clock replaced by a test)."""
        return self._clock() if self._clock is not None else wall_clock()

    def append(self, record: dict[str, Any], *, durable: bool = True, plain: bool = False) -> dict[str, Any]:
        """Append one record; fsync'd before returning (durable), so a reported event is on disk.

        Reads pass durable=False: they are written at once but reach the disk with the
        next durable entry (every write's records are durable), which keeps a batch of
        200 interrogations from queueing on one fsync each. An exclusive lock (on
        audit.jsonl.lock: rotation renames the active file) serialises writers, so two
        ithcli processes cannot fork the chain. Only the last line is read: appending
        stays cheap as the log grows; closing a segment checks and seals it once (0.4 s for 64 MB).

        Inside holding_reads(), a read waits in memory instead and its entry is returned without
        `prev` and `hash`: see there. plain: the record is made of JSON values already, a dict of
        its own (an exchange's entry: PumpSession.audit_exchange made them), not walked again.
        """
        fields = record if plain else jsonable(record)
        with _THREADS:  # one lock descriptor a process: threads queue here, processes on flock
            if self._held is not None:
                if not durable:
                    self._held.append(fields)
                    return fields
                records, self._held = [*self._held, fields], []  # what was held goes first, in order
            else:
                records = [fields]
            return self._write(records, durable)[-1]

    @contextlib.contextmanager
    def holding_reads(self) -> Iterator[None]:
        """Reads (durable=False) appended inside wait in memory and are written together, in the
        order appended: before the next durable entry (in the same write and fsync), at each
        write_held() and at the end, however it ends. One lock and one write for many entries:
        the batch runner writes a turn's reads so (several hundred a second over a ward). An
        entry's time is when it is written, at most one runner turn after its exchange; a
        process killed outright loses the reads it held (never a write's entries: those are
        durable and written at once)."""
        with _THREADS:
            if self._held is not None:  # already holding: the outer one writes them
                nested = True
            else:
                nested, self._held = False, []
        if nested:
            yield
            return
        try:
            yield
        finally:
            try:
                self.write_held()
            finally:
                with _THREADS:
                    self._held = None

    def write_held(self) -> None:
        """Write the reads holding_reads() holds now, if any."""
        with _THREADS:
            if self._held:
                records, self._held = self._held, []
                self._write(records, False)

    def _write(self, records: list[dict[str, Any]], durable: bool) -> list[dict[str, Any]]:
        """records (plain already) as entries, in one locked pass; the caller holds _THREADS."""
        now = self.clock()
        lock = _lock_fd(self.path, self._key)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return self._append_locked(records, durable, now, _utc_day(now))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _append_locked(self, records: list[dict[str, Any]], durable: bool, now: float, day: str
                       ) -> list[dict[str, Any]]:
        fd = self._open()
        try:
            st = os.fstat(fd)
            ino, tail = st.st_ino, self._tail(fd, st)
            if tail.day is not None and (tail.day != day or st.st_size >= self.segment_bytes):
                new = self._rotate(fd, tail)
                os.close(fd)
                fd, ino = new, os.fstat(new).st_ino
                tail = _Tail(tail.prev, tail.seq + 1, None, self._summary_of_closed())
            if tail.day is None and tail.previous is not None:
                tail = self._start_segment(fd, tail, now, day)
            stamp, prev, lines, written = _iso(now), tail.prev, [], []
            for record in records:  # one day and one segment: the pass is one moment
                entry = {"time": stamp, **record, "prev": prev}
                line, prev = sealed_line(entry)
                entry["hash"] = prev
                lines.append(line)
                written.append(entry)
            data = b"".join(lines)
            end = os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, data)
            if durable:
                os.fsync(fd)
            _LAST[self._key] = (ino, end + len(data), prev, tail.seq, tail.day or day)
        finally:
            os.close(fd)
        return written

    def _open(self) -> int:
        # the path as text: os.open would ask the Path for it every time (a Python call)
        return os.open(self._key, os.O_RDWR | os.O_CREAT, 0o600)  # _lock_fd(): the directory exists

    def _tail(self, fd: int, st: os.stat_result) -> _Tail:
        known = _LAST.get(self._key)
        if known and known[:2] == (st.st_ino, st.st_size):  # the file is exactly as this process left it
            return _Tail(known[2], known[3], known[4])
        if st.st_size == 0:
            closed = seg.closed_parts(self.path)
            if not closed:
                return _Tail(GENESIS, 1, None)
            # closed segments and no active file: a rotation stopped between its two steps, or
            # the first entry after one. The new file starts with its header, as rotation does.
            summary = self._summary_of_closed()
            return _Tail(summary["last_hash"], summary["segment"] + 1, None, summary)
        prev = self._recover_tail(fd)
        first = os.pread(fd, 1 << 16, 0).split(b"\n", 1)[0]
        header = seg.header_of(first)
        return _Tail(prev, int(header["segment"]) if header is not None else 1, seg.day_of(first))

    def _rotate(self, fd: int, tail: _Tail) -> int:
        """Close the active file into the segments folder; a new, empty active file (its header next)."""
        folder = seg.segments_dir(self.path)
        folder.mkdir(mode=0o700, exist_ok=True)
        target = folder / seg.segment_name(tail.seq, tail.day or "0000-00-00")
        if target.exists():
            raise AuditError(f"audit log {self.path}: cannot close segment {tail.seq}, {target} exists already; "
                             f"run 'ithcli audit verify'")
        os.fsync(fd)  # reads not yet on disk go with the segment
        os.rename(self.path, target)  # a crash after it: the next append starts the new file
        seg.fsync_dir(folder)
        new = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        seg.fsync_dir(self.path.parent)
        return new

    def _summary_of_closed(self) -> dict:
        """The newest closed segment as the next one's header seals it (a checkpoint's own record)."""
        last = seg.closed_parts(self.path)[-1]
        if last.kind == "checkpoint":
            cp = seg.read_checkpoint(last.path)
            return {k: cp[k] for k in ("segment", "file", "entries", "first_prev", "first_hash", "last_hash", "bytes",
                                       "sha256")}
        return seal(last.path)  # every line checked once, as it closes, and its digest sealed

    def _start_segment(self, fd: int, tail: _Tail, now: float, day: str) -> _Tail:
        """The new active file's first entry: its number and day, and the summary of the one before."""
        if tail.previous is None or not tail.previous.get("last_hash"):
            raise AuditError(f"audit log {self.path}: the last closed segment's last entry is damaged; "
                             f"run 'ithcli audit verify'")
        line, digest = sealed_line(segment_header(tail.seq, day, tail.previous, now))
        os.write(fd, line)
        os.fsync(fd)
        return _Tail(digest, tail.seq, day)

    def _recover_tail(self, fd: int) -> str:
        """The last entry's hash. A torn last line (a crash mid-write) is moved aside
        to a side file and the removal itself recorded, never glued to the next entry."""
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return GENESIS
        span = 16 * 1024  # an entry is far smaller; read more only when a line is longer
        while True:
            start = max(0, size - span)
            tail = os.pread(fd, size - start, start)
            if start == 0 or tail[:-1].rfind(b"\n") >= 0:
                break
            span *= 4
        if tail.endswith(b"\n"):
            last = tail[:-1].rsplit(b"\n", 1)[-1]
            try:
                return json.loads(last)["hash"]
            except (ValueError, KeyError, TypeError):
                raise AuditError(
                    f"audit log {self.path}: the last entry is damaged; run 'ithcli audit verify'"
                ) from None
        cut = tail.rfind(b"\n")
        torn = tail[cut + 1 :]
        keep = start + cut + 1
        side = self.path.with_name(f"{self.path.name}.torn-{int(time.time())}")
        side.write_bytes(torn)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        if keep == 0 and seg.closed_parts(self.path):  # a torn header: the segment starts again
            now = self.clock()
            summary = self._summary_of_closed()
            prev = self._start_segment(fd, _Tail(summary["last_hash"], summary["segment"] + 1, None, summary),
                                       now, seg.utc_day(now)).prev
        else:
            prev = self._recover_tail(fd)
        entry: dict[str, Any] = {"time": _iso(self.clock()), "event": "torn-line-removed", "bytes": len(torn),
                                 "saved_to": str(side), "prev": prev}
        entry["hash"] = entry_hash(entry)
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line_of(entry))
        return entry["hash"]

    # --- reading: every part in order, one line at a time (audit_verify.py) ---------------
    def verify(self, segments: tuple[int, int] | None = None, archive: str | os.PathLike | None = None
               ) -> tuple[int, list[str]]:
        """(entries checked, problems). Every break in the chain is named by segment and line.
        segments: only this range of segment numbers; archive: also check archived segments there."""
        result = self.verify_report(segments, archive)
        return result["entries"], result["problems"]

    def verify_report(self, segments: tuple[int, int] | None = None, archive: str | os.PathLike | None = None
                      ) -> dict[str, Any]:
        """What `ithcli audit verify` shows: entries, problems, and each part checked."""
        return verify(self.path, segments=segments, archive=Path(archive) if archive else None)

    def iter_records(self) -> Iterator[dict]:
        """Every readable entry of every segment, one at a time (constant memory), unchecked."""
        with seg.snapshot(self.path) as opened:
            for part in opened:
                for _, entry, _problem in entries(part.lines()):
                    if entry is not None:
                        entry.pop(EDITED, None)
                        yield entry

    def records(self) -> list[dict]:
        """The whole log in memory: for small logs and tests; readers use scan() or iter_records()."""
        return list(self.iter_records())


def segment_header(seq: int, day: str, previous: dict, now: float) -> dict[str, Any]:
    """A segment's first entry: its number and UTC day, the summary of the segment before (entries,
    first and last hash, bytes), chained to that one's last entry."""
    return {"time": _iso(now), "event": seg.SEGMENT_START, "segment": seq, "day": day, "previous": previous,
            "prev": previous["last_hash"]}


#: path -> (pid, descriptor of its audit.jsonl.lock): opened once a process (a forked child opens its own:
#: flock belongs to the open file, which a child shares with its parent)
_LOCK_FDS: dict[str, tuple[int, int]] = {}
_THREADS = threading.Lock()
_DAY: list = [None, ""]  # the UTC day number last asked and its name


def _lock_fd(active: Path, key: str) -> int:
    """The lock descriptor for the active file `active` (`key`: its path as text, the cache's key)."""
    known = _LOCK_FDS.get(key)
    if known is not None and known[0] == os.getpid():
        if os.fstat(known[1]).st_nlink:
            return known[1]
        os.close(known[1])  # the lock file was removed (its directory with it): lock the one there now
    fd = seg.open_lock(active)
    _LOCK_FDS[key] = (os.getpid(), fd)
    return fd


def _utc_day(epoch: float) -> str:
    number = int(epoch // 86400)
    if _DAY[0] != number:
        _DAY[:] = [number, seg.utc_day(epoch)]
    return _DAY[1]


def wall_clock() -> float:
    return time.time()


class AuditError(IthcliError):
    exit_code = ExitCode.AUDIT
    kind = "audit"


def _iso(epoch: float) -> str:
    """UTC, its offset written out. The text of the last whole second asked is kept: a batch
    writes many entries a second (gmtime floors, as // 1 does; a NaN never matches)."""
    global _LAST_ISO
    second, text = _LAST_ISO  # one tuple read: another thread may replace it, never tear it
    if second != epoch // 1:
        text = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))
        _LAST_ISO = (epoch // 1, text)
    return text


_LAST_ISO: tuple[float, str] = (float("nan"), "")
