"""--key-file FILE: the pump's own long-term keys, one per role. No defaults exist.

    {"format": "ithcli-pump-keys", "version": 1, "serial": "<serial>",
     "keys": {"reader": "<64 hex>", "clinician": "<64 hex>"}}

Either role may be absent, not both. A missing file is created with fresh random
keys for the pump's serial, mode 0600, atomically (a temporary file linked into
place, so a half-written or clobbered key file cannot exist). An existing file is
refused when group or others may read it, when it is malformed, or when it is for
another pump's serial. Key material never appears in a message or a log.
"""
from __future__ import annotations

import json
import os
import stat

from protocol import Role, security

FORMAT = "ithcli-pump-keys"
VERSION = 1
ROLE_NAMES = {"reader": Role.READER, "clinician": Role.CLINICIAN}


class KeyFileError(Exception):
    """The key file cannot be used: the emulator refuses to start (one-line reason)."""


def load_or_create(path: str, serial: str) -> dict[Role, bytes]:
    if not os.path.lexists(path):
        keys = {Role.READER: security.new_key(), Role.CLINICIAN: security.new_key()}
        _create(path, serial, keys)
        return keys
    return load(path, serial)


def serial_in(path: str) -> str | None:
    """The serial an existing key file says it is for; None when there is no such file or no serial
    can be read from it. Nothing else is checked here: load() refuses whatever is wrong with it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = json.loads(handle.read(64 * 1024).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    finally:
        os.close(fd)
    serial = data.get("serial") if isinstance(data, dict) else None
    return serial if isinstance(serial, str) else None


def load(path: str, serial: str) -> dict[Role, bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot open: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(f"key file {path} is readable or writable by group or others "
                               f"(mode {stat.S_IMODE(info.st_mode):04o}): refused; chmod 600 it "
                               "and consider its keys compromised")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(64 * 1024)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyFileError(f"key file {path} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise KeyFileError(f"key file {path} is not an {FORMAT} version {VERSION} file")
    if data.get("serial") != serial:
        found = data.get("serial")
        shown = repr(found) if isinstance(found, str) and len(found) <= 16 else "another"
        raise KeyFileError(f"key file {path} is for pump {shown}, not {serial!r}")
    entries = data.get("keys")
    if not isinstance(entries, dict) or not entries:
        raise KeyFileError(f"key file {path} holds no keys (give reader and/or clinician)")
    keys: dict[Role, bytes] = {}
    for name, text in entries.items():
        role = ROLE_NAMES.get(name) if isinstance(name, str) else None
        if role is None:
            raise KeyFileError(f"key file {path}: unknown role (known: {', '.join(ROLE_NAMES)})")
        key = _key(text)
        if key is None:
            raise KeyFileError(f"key file {path}: the {name} key is not {security.KEY_SIZE * 2} hex digits")
        if key == bytes(security.KEY_SIZE):
            raise KeyFileError(f"key file {path}: the {name} key is all zeros")
        keys[role] = key
    if len(set(keys.values())) != len(keys):
        # a reader key that is also the clinician key would let a reader program the pump
        raise KeyFileError(f"key file {path}: the reader and clinician keys must differ")
    return keys


def _key(text) -> bytes | None:
    if not isinstance(text, str) or len(text) != 2 * security.KEY_SIZE:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _create(path: str, serial: str, keys: dict[Role, bytes]) -> None:
    names = {role: name for name, role in ROLE_NAMES.items()}
    text = json.dumps({"format": FORMAT, "version": VERSION, "serial": serial,
                       "keys": {names[role]: key.hex() for role, key in keys.items()}}, indent=1) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # atomic, and never over a file someone else created meanwhile
    except FileExistsError:
        raise KeyFileError(f"key file {path} appeared while it was being created: start again") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
