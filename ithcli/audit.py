"""The audit log: every command sent and every response, hash-chained, append-only.

One JSON object a line. Each entry holds the SHA-256 of the previous entry's line
(`prev`) and its own hash over its canonical JSON (`hash`), so editing, removing
or reordering any entry breaks the chain at that point and `ithcli audit verify`
names the line. A torn last line (a crash mid-write) is reported, never merged.
Every reader streams the file one line at a time (scan, iter_records): verify and
report run in constant memory whatever the log's size.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ExitCode, IthcliError
from .output import jsonable

GENESIS = "0" * 64
#: path -> (inode, size, hash of the last entry) as this process last wrote it
_LAST: dict[str, tuple[int, int, str]] = {}


def _canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(entry_without_hash: dict) -> str:
    return hashlib.sha256(_canonical(entry_without_hash)).hexdigest()


class AuditLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._key = str(self.path)

    def append(self, record: dict[str, Any], *, durable: bool = True) -> dict[str, Any]:
        """Append one record; fsync'd before returning (durable), so a reported event is on disk.

        Reads pass durable=False: they are written at once but reach the disk with the
        next durable entry (every write's records are durable), which keeps a batch of
        200 interrogations from queueing on one fsync each. An exclusive lock
        serialises writers (two ithcli processes cannot fork the chain). Only the last
        line is read: appending stays cheap as the log grows.
        """
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            known = _LAST.get(self._key)
            # the file is exactly as this process left it: the last hash is known
            prev = known[2] if known and known[:2] == (st.st_ino, st.st_size) else self._recover_tail(fd)
            entry = {"time": _now_iso(), **jsonable(record), "prev": prev}
            canonical = _canonical(entry)
            entry["hash"] = hashlib.sha256(canonical).hexdigest()
            # the line is the hashed text with the hash appended: encoded once, not twice
            line = canonical[:-1] + b',"hash":"' + entry["hash"].encode() + b'"}\n'
            end = os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
            if durable:
                os.fsync(fd)
            _LAST[self._key] = (st.st_ino, end + len(line), entry["hash"])
        finally:
            os.close(fd)  # releases the lock
        return entry

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the first entry: make the directory (not checked on every append)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def _recover_tail(self, fd: int) -> str:
        """The last entry's hash. A torn last line (a crash mid-write) is moved aside
        to a side file and the removal itself recorded, never glued to the next entry."""
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return GENESIS
        span = 16 * 1024  # an entry is far smaller; read more only when a line is longer
        while True:
            start = max(0, size - span)
            os.lseek(fd, start, os.SEEK_SET)
            tail = os.read(fd, size - start)
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
        prev = self._recover_tail(fd)
        entry: dict[str, Any] = {"time": _now_iso(), "event": "torn-line-removed", "bytes": len(torn),
                 "saved_to": str(side), "prev": prev}
        entry["hash"] = entry_hash(entry)
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, _line(entry))
        return entry["hash"]

    def _entries(self, parse: bool = True) -> Iterator[tuple[int, dict | None, str | None]]:
        """(line number, entry, problem) one line at a time: constant memory whatever the log's size.
        parse=False (verify): a line as append() writes it gives only its links, unparsed."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):  # only the last line can lack its newline
                    yield number, None, f"line {number} is incomplete (torn write)"
                    return
                link = None if parse else _fast_link(raw)
                if link is not None:
                    yield number, link, None
                    continue
                try:
                    entry = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    yield number, None, f"line {number} is not valid JSON"
                    return
                if not isinstance(entry, dict) or "hash" not in entry or "prev" not in entry:
                    yield number, None, f"line {number} is not an audit entry"
                    return
                if not _hash_matches(raw, entry):
                    entry = {**entry, _EDITED: True}
                yield number, entry, None

    def scan(self, parse: bool = True) -> Iterator[dict]:
        """Every entry, in order, one at a time, checked as it passes: after the last one,
        `self.checked` is (entries checked, problems) exactly as verify() returns them.
        parse=False: entries as append() wrote them are checked without being parsed and
        given as {"prev", "hash"} only (verify's speed at scale)."""
        problems: list[str] = []
        prev = GENESIS
        count = 0
        self.checked: tuple[int, list[str]] = (0, problems)
        for number, entry, problem in self._entries(parse):
            if entry is None:  # _entries gives a problem exactly when it gives no entry
                problems.append(problem or f"line {number} is not an audit entry")
                break
            count += 1
            if entry.pop(_EDITED, False):
                problems.append(f"line {number}: contents do not match its hash (edited)")
            if entry["prev"] != prev:
                problems.append(
                    f"line {number}: does not follow the entry before it (removed or reordered)"
                )
            prev = entry["hash"]
            self.checked = (count, problems)
            yield entry
        self.checked = (count, problems)

    def verify(self) -> tuple[int, list[str]]:
        """(entries checked, problems). Every break in the chain is named by line."""
        for _ in self.scan(parse=False):
            pass
        return self.checked

    def iter_records(self) -> Iterator[dict]:
        """Every readable entry, one at a time (constant memory), unchecked: scan() checks."""
        for _, entry, _problem in self._entries():
            if entry is not None:
                entry.pop(_EDITED, None)
                yield entry

    def records(self) -> list[dict]:
        """The whole log in memory: for small logs and tests; readers use scan() or iter_records()."""
        return list(self.iter_records())


#: marks an entry whose hash does not match, between _entries and scan (never written)
_EDITED = "\x00edited"
_HASH_TAIL = len(b',"hash":"') + 64 + len(b'"}\n')


def _fast_link(raw: bytes) -> dict | None:
    """{"prev", "hash"} of a line exactly as append() writes it, its hash checked over its bytes,
    without parsing it; None: any other line (parsed and checked the slow way). The one
    top-level "prev" is found by its key: `"prev":` appears once, as a key (in a string the
    quotes would be escaped), or the line is parsed."""
    if raw[-_HASH_TAIL:-67] != b',"hash":"' or not raw.endswith(b'"}\n') or raw.count(b'"prev":') != 1:
        return None
    digest = raw[-67:-3].decode("ascii", "replace")
    if hashlib.sha256(raw[:-_HASH_TAIL] + b"}").hexdigest() != digest:
        return None  # parsed: an edited line is named as such after the slow check
    at = raw.index(b'"prev":') + 7
    if raw[at:at + 1] != b'"' or raw[at + 65:at + 66] != b'"':
        return None
    return {"prev": raw[at + 1:at + 65].decode("ascii", "replace"), "hash": digest}


def _hash_matches(raw: bytes, entry: dict) -> bool:
    """The entry's hash is over its canonical JSON. A line as append() writes it is that text
    with the hash appended, so the bytes are hashed as they are (no re-encoding: the fast path
    verify needs at scale); any other line (an older writer's key order) is re-encoded."""
    digest = entry["hash"]
    if isinstance(digest, str) and raw.endswith(b'"}\n') and raw[-_HASH_TAIL:-67] == b',"hash":"' \
            and raw[-67:-3] == digest.encode():
        if hashlib.sha256(raw[:-_HASH_TAIL] + b"}").hexdigest() == digest:
            return True
    body = {k: v for k, v in entry.items() if k != "hash"}
    return entry_hash(body) == digest


def _line(entry: dict) -> bytes:
    return (json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()


class AuditError(IthcliError):
    exit_code = ExitCode.AUDIT
    kind = "audit"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())  # UTC, its offset written out
