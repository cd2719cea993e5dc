"""One file's lines as chain links: each line checked against its own hash, without parsing when it can.

An entry is one JSON object a line holding `prev` (the hash of the entry before it) and
`hash` (the SHA-256 of its own canonical JSON). These functions read one file of the log
(a segment) one line at a time, in constant memory; audit_verify.py joins the files.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator

GENESIS = "0" * 64

#: json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str), its encoder made once:
#: dumps builds a new JSONEncoder for these options at every call (every entry written). It keeps
#: no state between calls, so threads may share it.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def canonical(entry: dict) -> bytes:
    return _encode(entry).encode()


def entry_hash(entry_without_hash: dict) -> str:
    return hashlib.sha256(canonical(entry_without_hash)).hexdigest()


def line_of(entry: dict) -> bytes:
    """An entry (its hash included) as one line, keys sorted: how the fallback writers wrote it."""
    return (_encode(entry) + "\n").encode()


def sealed_line(entry_without_hash: dict) -> tuple[bytes, str]:
    """(the line append() writes, its hash): the hashed text with the hash appended, encoded once."""
    text = canonical(entry_without_hash)
    digest = hashlib.sha256(text).hexdigest()
    return text[:-1] + b',"hash":"' + digest.encode() + b'"}\n', digest


#: marks an entry whose hash does not match, between entries() and its readers (never written)
EDITED = "\x00edited"
_HASH_TAIL = len(b',"hash":"') + 64 + len(b'"}\n')
_HASH_KEY = b',"hash":"'


def entries(lines: Iterable[bytes], parse: bool | bytes = True) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, entry, problem) one line at a time. A torn or unreadable line ends the file."""
    for number, raw in enumerate(lines, start=1):
        entry, problem = read_line(number, raw, parse)
        yield number, entry, problem
        if entry is None:
            return


def read_line(number: int, raw: bytes, parse: bool | bytes = True) -> tuple[dict | None, str | None]:
    """(entry, None) or (None, problem). An entry whose content does not match its hash carries EDITED.
    parse=False (verify): a line as append() writes it gives only its links, {"prev", "hash"}, unparsed;
    parse=b"...": only lines holding these bytes are parsed (report's one pump), the rest as links."""
    if not raw.endswith(b"\n"):  # only the last line can lack its newline
        return None, f"line {number} is incomplete (torn write)"
    link = None if parse is True or (parse is not False and parse in raw) else fast_link(raw)
    if link is not None:
        return link, None
    try:
        entry = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, f"line {number} is not valid JSON"
    if not isinstance(entry, dict) or "hash" not in entry or "prev" not in entry:
        return None, f"line {number} is not an audit entry"
    if not hash_matches(raw, entry):
        entry = {**entry, EDITED: True}
    return entry, None


def fast_link(raw: bytes, sha256=hashlib.sha256) -> dict | None:
    """{"prev", "hash"} of a line exactly as append() writes it, its hash checked over its bytes,
    without parsing it; None: any other line (parsed and checked the slow way). The one
    top-level "prev" is found by its key: `"prev":` appears once, as a key (in a string the
    quotes would be escaped), or the line is parsed."""
    if raw[-_HASH_TAIL:-67] != _HASH_KEY or raw[-3:] != b'"}\n':
        return None
    at = raw.find(b'"prev":"')
    if at < 0 or raw.find(b'"prev":', at + 7) >= 0:
        return None
    digest = raw[-67:-3].decode("ascii", "replace")
    if sha256(raw[:-_HASH_TAIL] + b"}").hexdigest() != digest:
        return None  # parsed: an edited line is named as such after the slow check
    at += 8
    if raw[at + 64:at + 65] != b'"':
        return None
    return {"prev": raw[at:at + 64].decode("ascii", "replace"), "hash": digest}


def hash_matches(raw: bytes, entry: dict) -> bool:
    """The entry's hash is over its canonical JSON. A line as append() writes it is that text
    with the hash appended, so the bytes are hashed as they are (no re-encoding: the fast path
    verify needs at scale); any other line (an older writer's key order) is re-encoded."""
    digest = entry["hash"]
    if isinstance(digest, str) and raw.endswith(b'"}\n') and raw[-_HASH_TAIL:-67] == _HASH_KEY \
            and raw[-67:-3] == digest.encode():
        if hashlib.sha256(raw[:-_HASH_TAIL] + b"}").hexdigest() == digest:
            return True
    body = {k: v for k, v in entry.items() if k != "hash"}
    return entry_hash(body) == digest


def last_hash_of(raw: bytes) -> str | None:
    """The hash a last line ends with (a tail read), None when the line is no entry."""
    link = fast_link(raw) if raw.endswith(b"\n") else None
    if link is not None:
        return link["hash"]
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    digest = entry.get("hash") if isinstance(entry, dict) else None
    return digest if isinstance(digest, str) else None
