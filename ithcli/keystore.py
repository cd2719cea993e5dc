"""The programmer's key store: per-pump, per-role keys in files only the owner can read.

One JSON file per pump, in the same format as the pump's own key file, so pairing
is copying: {"format": "ithcli-pump-keys", "version": 1, "serial": S,
"keys": {"reader": hex, "clinician": hex}}. A key file that group or others can
read is refused, never used. Keys are looked up by the key id the pump announces
in HELLO, so the pump never has to say its serial number in clear.
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import AuthError, UsageError
from .protected_files import OTHERS_READ, read_protected

FORMAT = "ithcli-pump-keys"
ROLES = ("reader", "clinician")


@dataclass(frozen=True)
class StoredKey:
    serial: str
    role: str
    key: bytes
    path: str


def default_key_store() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ithcli" / "keys"


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def read_key_file(path: Path) -> dict:
    """Parse and check one key file (permissions first: a readable key is a leaked key)."""
    raw = read_protected(path, "key file", forbidden=OTHERS_READ, refusal="is readable by group or others "
                         "(mode {mode}): refused; chmod 600 it and consider the keys compromised")
    try:
        data = json.loads(raw.decode())
    except ValueError as exc:
        raise UsageError(f"key file {path}: not a valid key file: {exc}") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != FORMAT or type(version) is not int or version != 1:
        raise UsageError(f"key file {path}: not an {FORMAT} version 1 file")
    serial = data.get("serial")
    keys = data.get("keys")
    if not isinstance(serial, str) or not serial or not isinstance(keys, dict) or not keys:
        raise UsageError(f"key file {path}: needs a serial and at least one key")
    parsed = {}
    for role, text in keys.items():
        if role not in ROLES:
            raise UsageError(f"key file {path}: unknown role {role!r}")
        key = bytes.fromhex(text) if isinstance(text, str) and _HEX64.fullmatch(text) else b""
        if len(key) != 32:
            raise UsageError(f"key file {path}: the {role} key must be 64 hex digits")
        if key == bytes(32):
            raise AuthError(f"key file {path}: the {role} key is all zeros: refused (not a real key)")
        parsed[role] = key
    if len(parsed) == 2 and parsed["reader"] == parsed["clinician"]:
        raise AuthError(f"key file {path}: the reader and clinician keys are the same: refused (a reader "
                        "could program)")
    return {"serial": serial, "keys": parsed}


def write_key_file(path: Path, serial: str, keys: dict[str, bytes]) -> None:
    """Create a key file readable by its owner only (created 0600, never widened)."""
    from .state import atomic_write

    body = {"format": FORMAT, "version": 1, "serial": serial, "keys": {r: k.hex() for r, k in keys.items()}}
    atomic_write(path, (json.dumps(body, indent=2) + "\n").encode())


class KeyStore:
    def __init__(self, directory: str | os.PathLike | None):
        self.dir = Path(directory) if directory else default_key_store()
        self._index: dict[tuple[str, bytes], StoredKey] | None = None
        self._lock = threading.Lock()  # batch threads share one store: build the index once

    def entries(self) -> list[StoredKey]:
        if not self.dir.is_dir():
            return []
        out = []
        for path in sorted(self.dir.glob("*.json")):
            data = read_key_file(path)
            for role, key in data["keys"].items():
                out.append(StoredKey(data["serial"], role, key, str(path)))
        return out

    def find(self, role: str, key_id: bytes) -> StoredKey | None:
        """The key the pump announced, by role and key id. The store is read once per
        KeyStore object (a batch over 200 pumps shares one), not once per lookup."""
        from protocol.security import key_id as id_of

        with self._lock:
            if self._index is None:
                self._index = {(e.role, id_of(e.key)): e for e in self.entries()}
            return self._index.get((role, key_id))

    def path_for(self, serial: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in serial)
        return self.dir / f"{safe}.json"

    def add(self, serial: str, keys: dict[str, bytes], *, replace: bool = False) -> Path:
        path = self.path_for(serial)
        if path.exists() and not replace:
            existing = read_key_file(path)
            if existing["keys"] != keys:
                raise UsageError(f"{serial} already has different keys in {path}: pass --replace to re-pair")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        write_key_file(path, serial, keys)
        self._index = None
        return path

    def remove(self, serial: str) -> bool:
        path = self.path_for(serial)
        if path.exists():
            path.unlink()
            self._index = None
            return True
        return False


class MemoryKeyStore(KeyStore):
    """Keys held in memory only: the private emulator of --port emulator."""

    def __init__(self, serial: str, keys: dict[str, bytes]):
        super().__init__(None)
        self._entries = [StoredKey(serial, role, key, "<memory>") for role, key in keys.items()]

    def entries(self) -> list[StoredKey]:
        return list(self._entries)
