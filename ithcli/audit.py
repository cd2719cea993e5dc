"""The audit log: every command sent and every response, hash-chained, append-only.

One JSON object a line. Each entry holds the SHA-256 of the previous entry's line
(`prev`) and its own hash over its canonical JSON (`hash`), so editing, removing
or reordering any entry breaks the chain at that point and `ithcli audit verify`
names the line. A torn last line (a crash mid-write) is reported, never merged.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import ExitCode, IthcliError

GENESIS = "0" * 64


def _canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(entry_without_hash: dict) -> str:
    return hashlib.sha256(_canonical(entry_without_hash)).hexdigest()


class AuditLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def _last_hash(self) -> str:
        last = GENESIS
        for _, entry, problem in self._entries():
            if problem:
                raise AuditError(f"audit log {self.path}: {problem}: fix or move it before writing")
            last = entry["hash"]
        return last

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record; fsync'd before returning, so a reported event is on disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"time": _now_iso(), **record, "prev": self._last_hash()}
        entry["hash"] = entry_hash(entry)
        line = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _entries(self) -> Iterator[tuple[int, dict | None, str | None]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        torn = lines[-1] != b""
        if not torn:
            lines = lines[:-1]
        for number, raw in enumerate(lines, start=1):
            if torn and number == len(lines):
                yield number, None, f"line {number} is incomplete (torn write)"
                return
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield number, None, f"line {number} is not valid JSON"
                return
            if not isinstance(entry, dict) or "hash" not in entry or "prev" not in entry:
                yield number, None, f"line {number} is not an audit entry"
                return
            yield number, entry, None

    def verify(self) -> tuple[int, list[str]]:
        """(entries checked, problems). Every break in the chain is named by line."""
        problems: list[str] = []
        prev = GENESIS
        count = 0
        for number, entry, problem in self._entries():
            if problem:
                problems.append(problem)
                break
            count += 1
            body = {k: v for k, v in entry.items() if k != "hash"}
            if entry_hash(body) != entry["hash"]:
                problems.append(f"line {number}: contents do not match its hash (edited)")
            if entry["prev"] != prev:
                problems.append(
                    f"line {number}: does not follow the entry before it (removed or reordered)"
                )
            prev = entry["hash"]
        return count, problems

    def records(self) -> list[dict]:
        return [e for _, e, p in self._entries() if e is not None]


class AuditError(IthcliError):
    exit_code = ExitCode.AUDIT
    kind = "audit"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
