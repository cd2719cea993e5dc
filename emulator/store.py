"""--state FILE: the pump's memory, saved atomically as JSON.

A save is complete or absent, never half-written: write a temporary file in the
same directory, fsync it, os.replace() it over the old one, fsync the directory.
The server saves after every change and before replying, so a kill -9 loses
nothing that was acknowledged. `saved_at` (wall clock) lets a restart continue
the pump clock over the time the emulator was down.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from .pump import DEFAULT_STALL_RECOVERY_S, Pump

FORMAT = "ith-emulator-state"
VERSION = 3  # 2: dose-based program steps, applied-transaction history, running bolus
#            3: MRI-safe mode's recorded program, the static field, the motor's stall
#: older versions read by filling in what they could not hold (version 1 is refused)
MIGRATE_FROM = 2


class StateError(Exception):
    """The state file cannot be used; the emulator refuses to start fresh over it."""


def save(path: str, pump: Pump, *, wall: float | None = None) -> None:
    data = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time() if wall is None else wall,
        "pump": pump.to_dict(),
    }
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ith-state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str, clock=None) -> tuple[Pump, float]:
    """(pump as saved, wall time of the save). Raises StateError with a one-line reason."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"state file {path} is corrupt (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{path} is not an ith-emulator state file")
    if data.get("version") not in (VERSION, MIGRATE_FROM) or isinstance(data.get("version"), bool):
        raise StateError(f"state file {path} has version {data.get('version')!r}, expected {VERSION}")
    saved_at = data.get("saved_at")
    if not isinstance(saved_at, (int, float)) or isinstance(saved_at, bool):
        raise StateError(f"state file {path} is corrupt (no saved_at)")
    try:
        if data["version"] == MIGRATE_FROM:
            _migrate_2(data["pump"])
        pump = Pump.from_dict(data["pump"], clock=clock)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StateError(f"state file {path} is corrupt ({detail})") from None
    return pump, float(saved_at)


def _migrate_2(pump: dict) -> None:
    """Version 2 had no MRI-safe mode (it could not be entered), no field and no stall."""
    if not isinstance(pump, dict):
        raise TypeError("pump is not an object")
    pump.setdefault("mri_program", None)
    pump.setdefault("field", {"tesla": 0.0, "gradient_t_per_m": 0.0})
    pump.setdefault("stall", {"stalled": False, "recovery_at": None, "needs_interrogation": False})
    pump.setdefault("stall_recovery_s", DEFAULT_STALL_RECOVERY_S)
    pump.setdefault("scenario", [])
