"""The manifest of a ward emulator (`ith-emulator --pumps N` or `--ward FILE`), read and checked.

    {"format": "ith-ward-manifest", "version": 1, "pid": PID,
     "pumps": [{"serial": "EMU-...", "url": "/dev/pts/N" or "socket://HOST:PORT",
                "key_file": PATH, "control": PATH, "state": PATH, "model": NAME, "drug": NAME}, ...]}

The emulator writes it atomically before it prints its path (emulator/ward.py). Its readers
here: `ithcli keys pair --from MANIFEST`, the ward launcher (emulator_process.start_ward) and
batch plans taking their targets from it. A manifest that cannot be used is one UsageError
line naming the file and what is wrong with it; nothing in it is trusted before it is checked.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .keystore import read_key_file

FORMAT = "ith-ward-manifest"
VERSION = 1
#: every pump entry's fields, all strings
FIELDS = ("serial", "url", "key_file", "control", "state", "model", "drug")
MAX_BYTES = 16 * 1024 * 1024  # ~4 kB a pump: far more than any ward the emulator serves


@dataclass(frozen=True)
class WardPump:
    """One pump of a ward: where it serves and its files (paths absolute)."""

    serial: str
    url: str
    key_file: str
    control: str
    state: str
    model: str
    drug: str

    def keys(self) -> dict[str, bytes]:
        """Role name -> key, from its key file (UsageError when that cannot be used)."""
        return read_key_file(Path(self.key_file))["keys"]


@dataclass(frozen=True)
class Manifest:
    path: str
    pid: int
    pumps: tuple[WardPump, ...]

    def pump(self, serial: str) -> WardPump:
        for pump in self.pumps:
            if pump.serial == serial:
                return pump
        raise KeyError(serial)


def looks_like_manifest(path: str | os.PathLike) -> bool:
    """Whether a file says it is a ward manifest (so `keys pair --from` takes it as one).
    False for anything unreadable or other: its own reader says what is wrong then."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(MAX_BYTES))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_manifest(path: str | os.PathLike) -> Manifest:
    shown = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"ward manifest {shown}: cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(f"ward manifest {shown}: larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f"ward manifest {shown}: not valid JSON") from None
    return parse_manifest(data, shown)


def parse_manifest(data: object, path: str) -> Manifest:
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise UsageError(f"ward manifest {path}: not an {FORMAT} version {VERSION} file")
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise UsageError(f"ward manifest {path}: 'pid' must be a positive whole number")
    entries = data.get("pumps")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"ward manifest {path}: 'pumps' must be a non-empty list")
    base = os.path.dirname(os.path.abspath(path))
    pumps = tuple(_pump(entry, number, path, base) for number, entry in enumerate(entries, 1))
    seen: set[str] = set()
    for pump in pumps:
        if pump.serial in seen:
            raise UsageError(f"ward manifest {path}: serial {pump.serial!r} appears twice")
        seen.add(pump.serial)
    return Manifest(path, pid, pumps)


def _pump(entry: object, number: int, path: str, base: str) -> WardPump:
    if not isinstance(entry, dict):
        raise UsageError(f"ward manifest {path}: pump {number} is not an object")
    for name in FIELDS:
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            raise UsageError(f"ward manifest {path}: pump {number}: {name!r} must be a non-empty string")
    values = {name: entry[name] for name in FIELDS}
    for name in ("key_file", "control", "state"):  # relative: to the manifest's directory
        values[name] = os.path.join(base, values[name])
    return WardPump(**values)
