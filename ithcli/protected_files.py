"""Reading a file whose permissions are part of its meaning: pump keys, clinician credentials,
the clinic policy. The mode is checked on the file that is read (no gap between the check and
the read), never through a symbolic link, and a file others may read (a key) or change (the
policy) is refused, never used."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import AuthError, UsageError

#: a secret: nobody but its owner may read it
OTHERS_READ = stat.S_IRWXG | stat.S_IRWXO
#: a file that decides who is trusted: nobody but its owner may change it
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def read_protected(path: str | os.PathLike, what: str, *, forbidden: int, refusal: str) -> bytes:
    """The bytes of the regular file at `path` ("{what} {path}" in messages). AuthError when its
    mode has any `forbidden` bit: "{what} {path} {refusal}", refusal formatted with {mode}."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"{what} {path}: not a regular file")
        if mode & forbidden:
            raise AuthError(f"{what} {path} " + refusal.format(mode=f"{stat.S_IMODE(mode):o}"))
        return fh.read()
