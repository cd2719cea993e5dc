"""Local state: where ithcli keeps its audit log and its journal of unconfirmed writes.

The journal entry for a write is written (and fsync'd) *before* its COMMIT is
sent, and removed once the pump's answer is known, so a crash or a lost reply
always leaves a record that the next read resolves against the pump.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "ithcli"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover temporary file with wider permissions must not keep them
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class PendingWrites:
    """One file per pump serial number: the write whose outcome is not yet known."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "pending"

    def _path(self, serial: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in serial)
        return self.dir / f"{safe}.json"

    def get(self, serial: str) -> dict | None:
        path = self._path(serial)
        try:
            with open(str(path), "rb") as fh:  # (a str: pathlib's open costs more than the read)
                return json.loads(fh.read().decode())  # UTF-8, as written (json would guess from a BOM)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # (ValueError: bad JSON, or bytes that are not UTF-8)
            from .errors import Unconfirmed

            raise Unconfirmed(
                f"the journal of unconfirmed writes for {serial} ({path}) is unreadable: {exc}; "
                "interrogate the pump and check its last programming before removing it"
            ) from None

    def put(self, serial: str, record: dict) -> None:
        atomic_write(self._path(serial), json.dumps(record, sort_keys=True).encode())

    def clear(self, serial: str) -> None:
        try:
            self._path(serial).unlink()
        except FileNotFoundError:
            pass


class PumpNotes:
    """What ithcli knows of a pump's patient that the pump does not hold: one small file per
    serial number. Today: baclofen's spasticity origin, which sets its daily budget, for a pump
    whose patient record holds none (the pump's record is the source when it does: ithcli/patient.py)."""

    ORIGINS = ("spinal", "cerebral")

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "pumps"

    def _path(self, serial: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in serial)
        return self.dir / f"{safe}.json"

    def get(self, serial: str) -> dict:
        path = self._path(serial)
        try:
            notes = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            from .errors import UsageError

            raise UsageError(f"the notes kept for {serial} ({path}) are unreadable: {exc}") from None
        return notes if isinstance(notes, dict) else {}

    def origin(self, serial: str) -> str | None:
        origin = self.get(serial).get("spasticity_origin")
        return origin if origin in self.ORIGINS else None

    def set_origin(self, serial: str, origin: str) -> None:
        atomic_write(self._path(serial), json.dumps({**self.get(serial), "spasticity_origin": origin},
                                                    sort_keys=True).encode())
