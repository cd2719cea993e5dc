"""Archiving closed segments away: each leaves a checkpoint, so what stays still verifies.

A clinic ships its closed segments to its records system and removes them here; the
checkpoint left in the segment's place (number, file, entries, the hash its first entry
followed, its first and last hash, its size and SHA-256) lets `audit verify` join the
segment after it as if the file were there, and the same record is appended to the chain
(`segment-archived`), so an edited checkpoint is named. Nothing is removed before its copy
is on disk, hashes as the original, and the record of it is in the chain.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from . import audit_segments as seg
from .audit import AuditError, AuditLog, _iso
from .audit_verify import ARCHIVED, seal
from .errors import UsageError


def archive(log: AuditLog, destination: Path, *, through: int | None = None, before: str | None = None
            ) -> list[dict[str, Any]]:
    """Move the closed segments numbered up to `through` (or of days before `before`) to
    `destination`; the checkpoints written, oldest first. Refused whole if one fails its check."""
    chosen = [p for p in seg.closed_parts(log.path) if p.kind == "segment" and p.seq is not None
              and (through is None or p.seq <= through) and (before is None or (p.day or "") < before)]
    if not chosen:
        raise UsageError(f"no closed segment of {log.path} to archive "
                         f"({'through ' + str(through) if through is not None else 'before ' + str(before)}); "
                         f"the active file is never archived: see 'ithcli audit segments'")
    destination.mkdir(parents=True, exist_ok=True)
    checkpoints = [_copy_checked(part, destination, _iso(log.clock())) for part in chosen]
    for cp in checkpoints:  # sealed in the chain before anything is removed
        log.append({"event": ARCHIVED, **cp})
    with seg.locked(log.path):  # a reader's snapshot sees each segment or its checkpoint, never neither
        for part, cp in zip(chosen, checkpoints, strict=True):
            _write_checkpoint(part.path.with_name(seg.checkpoint_name(cp["segment"], cp["day"])), cp)
            part.path.unlink()
        seg.fsync_dir(seg.segments_dir(log.path))
    return checkpoints


def _copy_checked(part: seg.Part, destination: Path, now: str) -> dict[str, Any]:
    """The segment checked whole (as it is sealed) and copied; its checkpoint record. A copy that
    differs: refused."""
    checked = seal(part.path, every_problem=True)
    if checked["problems"]:
        raise AuditError(f"{part.name} fails verification, nothing archived: " + "; ".join(checked["problems"]))
    if checked["segment"] != part.seq:
        raise AuditError(f"{part.name} holds segment {checked['segment']}: renamed or reordered, nothing archived")
    target = destination / part.name
    if not target.exists():
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(part.path, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        seg.fsync_dir(destination)
    with open(target, "rb") as fh:
        copied = hashlib.file_digest(fh, "sha256").hexdigest()
    if copied != checked["sha256"]:
        raise AuditError(f"{target} exists and differs from {part.name}: nothing archived")
    return {"format": "ith-audit-checkpoint", "version": 1, "segment": part.seq, "file": part.name,
            "day": part.day, **{k: checked[k] for k in ("entries", "first_prev", "first_hash", "last_hash",
                                                         "bytes", "sha256")},
            "archived_to": str(destination.resolve()), "archived_at": now}


def _write_checkpoint(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, sort_keys=True, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
