"""Where the audit log's segments are and what they are called: names, listing, a consistent snapshot.

The log is the active file (`audit.jsonl`, the path ithcli is given) plus the closed segments
beside it in `audit.segments/`. Each closed segment is named `NNNNNN-YYYY-MM-DD.jsonl`: its
sequence number, then the UTC day (computer clock) of its first entry, so a day's entries are
found by name without opening anything. A segment archived away leaves its checkpoint
`NNNNNN-YYYY-MM-DD.checkpoint.json` in its place. Segment 1 is the first file ever written
(no header: logs written before segments are segment 1 as they are); every later segment
begins with a `segment-start` entry whose `prev` is the hash that ended the one before, and
whose `previous` summarises and seals that segment (entries, first and last hash, bytes, its
SHA-256 and what checking every line of it found as it closed: audit_verify.seal), so the chain
runs on across files and a missing, reordered or renamed file is named by its number.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: a segment is closed at the first entry of a new UTC day, or once it is this big
SEGMENT_BYTES = 64 * 1024 * 1024
_NAME = re.compile(r"^(\d{6})-(\d{4}-\d{2}-\d{2})\.(jsonl|checkpoint\.json)$")
SEGMENT_START = "segment-start"


def segments_dir(active: Path) -> Path:
    """audit.jsonl -> audit.segments/ (beside it: archiving moves files out of it, never the active one)."""
    return active.with_name(f"{active.stem}.segments")


def lock_path(active: Path) -> Path:
    """Writers serialise on this file, not on the active one: rotation renames the active file."""
    return active.with_name(f"{active.name}.lock")


def segment_name(seq: int, day: str) -> str:
    return f"{seq:06d}-{day}.jsonl"


def checkpoint_name(seq: int, day: str) -> str:
    return f"{seq:06d}-{day}.checkpoint.json"


def utc_day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


@dataclass(frozen=True)
class Part:
    """One piece of the log: a closed segment, an archived segment's checkpoint, or the active file."""

    seq: int | None  # None: the active file (its number is in its header)
    day: str | None
    path: Path
    kind: str  # "segment", "checkpoint" or "active"

    @property
    def name(self) -> str:
        return self.path.name


def closed_parts(active: Path) -> list[Part]:
    """The closed segments and checkpoints, by sequence number (a segment before its checkpoint:
    both present means the archive was interrupted before the segment was removed)."""
    folder = segments_dir(active)
    if not folder.is_dir():
        return []
    parts = []
    for entry in os.scandir(folder):
        m = _NAME.match(entry.name)
        if m:
            kind = "segment" if m.group(3) == "jsonl" else "checkpoint"
            parts.append(Part(int(m.group(1)), m.group(2), Path(entry.path), kind))
    return sorted(parts, key=lambda p: (p.seq or 0, p.kind != "segment"))


def all_parts(active: Path) -> list[Part]:
    parts = closed_parts(active)
    if active.exists():
        parts.append(Part(None, None, active, "active"))
    return parts


def open_lock(active: Path) -> int:
    """The lock file's descriptor (made, with its directory, for the log's first entry)."""
    try:
        return os.open(lock_path(active), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:  # not checked on every append: only when the directory is missing
        active.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path(active), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def locked(active: Path, shared: bool = False) -> Iterator[None]:
    """The writers' lock (shared: a reader taking a snapshot of which files make up the log)."""
    fd = open_lock(active)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass
class Opened:
    """A part opened for reading, with the size it had when the snapshot was taken: a reader never
    reads a line a writer is still writing, and a rotation during the read changes nothing.
    Read with pread (no shared file offset), so a forked verifier can read it from its own process."""

    part: Part
    fd: int | None  # None for a checkpoint
    size: int

    def lines(self, chunk: int = 1 << 16) -> Iterator[bytes]:
        """The part's lines, each with its newline (a torn last line without it)."""
        fd = self.fd
        if fd is None:
            return
        offset, rest = 0, b""
        while offset < self.size:
            data = os.pread(fd, min(chunk, self.size - offset), offset)
            if not data:
                break
            offset += len(data)
            block = io.BytesIO(rest + data)  # splits on b"\n" only, in C
            rest = b""
            for raw in block:
                if raw[-1:] == b"\n":
                    yield raw
                else:
                    rest = raw
        if rest:
            yield rest

    def lines_holding(self, needle: bytes, chunk: int = 4 << 20) -> Iterator[bytes]:
        """Only the complete lines holding `needle`, found by searching each chunk in C (a report's
        one pump among twenty: the other lines are never split out in Python)."""
        fd = self.fd
        offset, rest = 0, b""
        while fd is not None and offset < self.size:
            data = os.pread(fd, min(chunk, self.size - offset), offset)
            if not data:
                break
            offset += len(data)
            first = data.find(b"\n") + 1
            if first == 0:
                rest += data  # a line longer than a chunk
                continue
            spanning = rest + data[:first]  # the line begun in the chunk before
            if needle in spanning:
                yield spanning
            end = data.rfind(b"\n") + 1
            at = data.find(needle, first, end)
            while at >= 0:
                stop = data.find(b"\n", at) + 1
                yield data[data.rfind(b"\n", 0, at) + 1:stop]
                at = data.find(needle, stop, end)
            rest = data[end:]

    def head(self, limit: int = 1 << 16) -> bytes:
        """The first line (a header, when it is one), read without moving through the part."""
        if self.fd is None:
            return b""
        data = os.pread(self.fd, min(limit, self.size), 0)
        cut = data.find(b"\n")
        return data[:cut + 1] if cut >= 0 else data


@contextlib.contextmanager
def snapshot(active: Path, parts: list[Part] | None = None) -> Iterator[list[Opened]]:
    """Every part of the log opened at once under the shared lock (so no rotation falls between
    listing and opening), then read without it. parts: only these (a range)."""
    opened: list[Opened] = []
    # no lock file: no writer has rotated this log (or none exists yet); a reader creates nothing
    guard = locked(active, shared=True) if lock_path(active).exists() else contextlib.nullcontext()
    try:
        with guard:
            for part in all_parts(active) if parts is None else parts:
                if part.kind == "checkpoint":
                    opened.append(Opened(part, None, 0))
                    continue
                try:
                    fd = os.open(part.path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # only when parts were listed before the lock: the caller names it missing
                opened.append(Opened(part, fd, os.fstat(fd).st_size))
        yield opened
    finally:
        for o in opened:
            if o.fd is not None:
                os.close(o.fd)


def first_line(path: Path, limit: int = 1 << 20) -> bytes:
    with open(path, "rb") as fh:
        return fh.readline(limit)


def last_line(path: Path, span: int = 1 << 16) -> bytes:
    """A closed segment's last line (with its newline), read from its tail."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - span))
        return fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1] + b"\n"


def day_of(first: bytes) -> str | None:
    """The UTC day of the file a first line begins: its header's, else (segment 1) its entry's time."""
    header = header_of(first)
    if header is not None:
        return str(header.get("day"))
    try:
        when = json.loads(first).get("time")
    except (ValueError, AttributeError):
        return None
    return when[:10] if isinstance(when, str) else None  # written in UTC, the date first


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file's record; ValueError when it is not one."""
    data = json.loads(path.read_bytes())
    needed = ("segment", "file", "entries", "first_prev", "first_hash", "last_hash", "sha256")
    if not isinstance(data, dict) or any(k not in data for k in needed):
        raise ValueError(f"{path.name} is not an audit checkpoint")
    return data


def header_of(raw: bytes) -> dict | None:
    """The segment-start entry a line holds, or None (segment 1, or not an entry at all)."""
    if b'"segment-start"' not in raw:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and entry.get("event") == SEGMENT_START else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
