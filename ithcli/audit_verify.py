"""Checking the audit log across its segments: each file's chain, then the files joined in order.

Each part (a closed segment, an archived segment's checkpoint, the active file) is checked
on its own (audit_chain.entries: every line against its hash and the line before it), which
a worker process can do (a large log is verified on every core). Then the parts are joined:
their numbers must run on without a gap (a missing segment is named), each file must hold
the segment its name says (a renamed or reordered one is named), and each part's first
entry must follow the last entry of the part before (an edited or swapped segment is
named). A checkpoint stands for its archived segment and must match the record of its
archiving sealed in the chain; with --archive the archived file is checked against it too.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import audit_segments as seg
from .audit_chain import EDITED, GENESIS, last_hash_of, read_line

#: below this many bytes the parts are checked in this process (a worker costs more than it saves)
PARALLEL_BYTES = 32 * 1024 * 1024
ARCHIVED = "segment-archived"
SEALED_PROBLEMS = 20  # the most a seal lists


@dataclass
class PartCheck:
    """One part as found: its number (from its content), its links and what is wrong inside it."""

    name: str
    kind: str
    seq: int
    name_seq: int | None = None
    entries: int = 0
    first_prev: str | None = None
    first_hash: str | None = None
    last_hash: str | None = None
    header: dict | None = None
    problems: list[str] = field(default_factory=list)
    archived: list[dict] = field(default_factory=list)  # records of segments archived, seen in this part
    checkpoint: dict | None = None
    sha256: str | None = None
    sealed: bool = False  # checked against the digest sealed when it closed, not line by line


def walk(opened: seg.Opened, result: PartCheck, prefix: str, parse: bool | bytes = True,
         digest: Any = None) -> Iterator[dict]:
    """The part's entries, each checked against its hash and the one before it, into `result`
    (with the records of archiving it holds; digest: the file's bytes hashed as they pass).
    Segment 1's first entry follows the start of the chain; a later one's first is joined later.
    One loop, no generator stacked on another: verify's speed at scale is this loop's."""
    prev: str | None = GENESIS if result.seq == 1 and result.kind != "checkpoint" else None
    first = True
    problems = result.problems
    for number, raw in enumerate(opened.lines(), start=1):
        if digest is not None:
            digest.update(raw)
        entry, problem = read_line(number, raw, parse)
        if entry is None:
            problems.append(f"{prefix}{problem}")
            break
        if b'"segment-archived"' in raw:
            _note_archived(raw, result.archived)
        result.entries += 1
        if EDITED in entry:
            del entry[EDITED]
            problems.append(f"{prefix}line {number}: contents do not match its hash (edited)")
        if first:
            result.first_prev, result.first_hash, first = entry["prev"], entry["hash"], False
        if prev is not None and entry["prev"] != prev:
            problems.append(f"{prefix}line {number}: does not follow the entry before it (removed or reordered)")
        prev = entry["hash"]
        yield entry
    result.last_hash = None if first else prev


def _note_archived(raw: bytes, found: list[dict]) -> None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return
    if isinstance(entry, dict) and entry.get("event") == ARCHIVED:
        found.append(entry)


def start(opened: seg.Opened) -> PartCheck:
    """A part before its lines are read: its number from its header (segment 1 has none)."""
    part = opened.part
    if part.kind == "checkpoint":
        try:
            cp = seg.read_checkpoint(part.path)
        except (OSError, ValueError) as exc:
            return PartCheck(part.name, "checkpoint", part.seq or 0, part.seq,
                             problems=[f"{part.name} is not a readable checkpoint ({exc})"])
        return PartCheck(part.name, "checkpoint", int(cp["segment"]), part.seq, entries=int(cp["entries"]),
                         first_prev=cp["first_prev"], first_hash=cp["first_hash"], last_hash=cp["last_hash"],
                         checkpoint=cp, sha256=cp["sha256"])
    header = seg.header_of(opened.head())
    seq = int(header["segment"]) if header is not None and isinstance(header.get("segment"), int) else 1
    return PartCheck(part.name, part.kind, seq, part.seq, header=header)


def seal(path: Path, *, every_problem: bool = False, named: str | None = None) -> dict[str, Any]:
    """What the segment after a closed one records of it (its header's `previous`): number, file,
    entries, the hash its first entry follows, its first and last hash, bytes, the SHA-256 of its
    bytes, and the problems its check found when it closed (none, normally). A report then checks
    the file against the digest alone: unchanged since a check of every line. A seal is one line
    of the log: it lists SEALED_PROBLEMS problems at most (every_problem: all, for an error).
    named: how its lines are named in problems (default: by the file's name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        opened = seg.Opened(seg.Part(None, None, path, "segment"), fd, os.fstat(fd).st_size)
        result, digest = start(opened), hashlib.sha256()
        for _ in walk(opened, result, f"{named or path.name} ", parse=False, digest=digest):
            pass
    finally:
        os.close(fd)
    return {"segment": result.seq, "file": path.name, "entries": result.entries, "first_prev": result.first_prev,
            "first_hash": result.first_hash, "last_hash": result.last_hash, "bytes": opened.size,
            "sha256": digest.hexdigest(),
            "problems": result.problems if every_problem else _at_most(result.problems, SEALED_PROBLEMS)}


def _at_most(problems: list[str], n: int) -> list[str]:
    """A seal is one line of the log: the first problems, and how many more (verify names them all)."""
    return problems if len(problems) <= n else problems[:n] + [f"and {len(problems) - n} more problems: "
                                                              f"run 'ithcli audit verify'"]


def sealed_or_checked(opened: seg.Opened, prefix: str, sealed: dict | None) -> PartCheck:
    """A closed segment whose bytes hash as its seal says: what the seal recorded (its lines were
    checked when it closed); any other part, or one changed since: checked line by line."""
    if sealed is None or opened.fd is None:
        return check(opened, prefix)
    digest, offset = hashlib.sha256(), 0
    while offset < opened.size:
        chunk = os.pread(opened.fd, min(4 << 20, opened.size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    if digest.hexdigest() != sealed.get("sha256") or offset != sealed.get("bytes"):
        return check(opened, prefix)  # changed since it closed: the line that changed is named
    result = start(opened)
    result.entries, result.first_prev = int(sealed["entries"]), sealed.get("first_prev")
    result.first_hash, result.last_hash = sealed.get("first_hash"), sealed.get("last_hash")
    result.problems = list(sealed.get("problems") or [])
    result.sealed = True
    return result


def check(opened: seg.Opened, prefix: str) -> PartCheck:
    """One part checked whole, lines unparsed where they can be (verify's path; a worker's job)."""
    result = start(opened)
    if opened.fd is not None:
        for _ in walk(opened, result, prefix, parse=False):
            pass
    return result


def prefix_for(part: seg.Part, single: bool) -> str:
    """How a line is named: "line 4" in a log of one file (as always), "NAME line 4" otherwise."""
    return "" if single else f"{part.name} "


def join(results: list[PartCheck], *, linked_to: str | None = GENESIS, whole: bool = True) -> list[str]:
    """What is wrong between the parts. linked_to: the hash the first part must follow (None: not
    known, a range whose previous segment is absent); whole: the log from its first segment."""
    problems: list[str] = []
    for r in results:
        if r.kind == "segment" and r.name_seq is not None and r.name_seq != r.seq:
            problems.append(f"{r.name} holds segment {r.seq}: renamed or reordered")
    before: PartCheck | None = None
    for r in sorted(results, key=lambda x: x.seq):
        if before is None:
            if whole and r.seq > 1:
                problems.append(f"{_segments(1, r.seq - 1)} missing: the log begins at {r.name}")
            elif r.seq > 1 and linked_to is not None and r.first_prev is not None and r.first_prev != linked_to:
                problems.append(f"{r.name}: its first entry does not follow the last entry of segment {r.seq - 1}")
        elif r.seq == before.seq:
            problems.append(f"{before.name} and {r.name} both hold segment {r.seq}")
        elif r.seq > before.seq + 1:
            problems.append(f"{_segments(before.seq + 1, r.seq - 1)} missing between {before.name} and {r.name}")
        elif r.first_prev is not None and r.first_prev != before.last_hash:
            sealed = (r.header or {}).get("previous") or {}
            if before.kind != "checkpoint" and sealed.get("entries") not in (None, before.entries):
                problems.append(f"{before.name} holds {before.entries} entries but {r.name} sealed "
                                f"{sealed['entries']} (its last entries removed, or entries added)")
            else:
                problems.append(f"{r.name}: its first entry does not follow the last entry of {before.name} "
                                f"(a segment removed, reordered or edited)")
        before = r
    return problems


def _segments(first: int, last: int) -> str:
    return f"segment {first} is" if first == last else f"segments {first} to {last} are"


def checkpoint_problems(results: list[PartCheck]) -> list[str]:
    """Each checkpoint against the record of its archiving sealed in the chain (whole log only)."""
    sealed = {int(a["segment"]): a for r in results for a in r.archived if isinstance(a.get("segment"), int)}
    problems = []
    for r in results:
        if r.checkpoint is None:
            continue
        record = sealed.get(r.seq)
        if record is None:
            problems.append(f"{r.name}: no record of archiving segment {r.seq} in the chain")
        elif any(record.get(k) != r.checkpoint.get(k) for k in ("entries", "first_hash", "last_hash", "sha256")):
            problems.append(f"{r.name} does not match the record of its archiving in the chain (edited)")
    return problems


def archived_problems(results: list[PartCheck], archive: Path) -> list[str]:
    """Each archived segment found in `archive` checked whole against its checkpoint."""
    problems = []
    for r in results:
        if r.checkpoint is None:
            continue
        path = archive / r.checkpoint["file"]
        try:
            got = seal(path, every_problem=True, named=f"{archive.name}/{path.name}")
        except OSError:
            problems.append(f"archived segment {r.checkpoint['file']} is not in {archive}")
            continue
        problems += got["problems"]
        if got["sha256"] != r.checkpoint["sha256"] or got["last_hash"] != r.last_hash or got["entries"] != r.entries:
            problems.append(f"archived segment {path} does not match its checkpoint {r.name} (edited or replaced)")
    return problems


def verify(active: Path, *, segments: tuple[int, int] | None = None, archive: Path | None = None) -> dict[str, Any]:
    """The whole log (or a range of segment numbers) checked; what `ithcli audit verify` reports."""
    with seg.snapshot(active) as opened:
        if segments is not None:
            opened = [o for o in opened if segments[0] <= _seq_of(o) <= segments[1]]
        single = len(opened) == 1 and opened[0].part.kind == "active"
        results = _check_all(opened, single)
        linked_to: str | None = GENESIS
        if segments is not None and results and min(r.seq for r in results) > 1:
            linked_to = _last_hash_before(active, min(r.seq for r in results))
    problems = [p for r in sorted(results, key=lambda x: x.seq) for p in r.problems]
    problems += join(results, linked_to=linked_to, whole=segments is None)
    if segments is None:
        problems += checkpoint_problems(results)
    if archive is not None:
        problems += archived_problems(results, archive)
    parts = [{"name": r.name, "segment": r.seq, "kind": r.kind, "entries": r.entries,
              "first_hash": r.first_hash, "last_hash": r.last_hash} for r in sorted(results, key=lambda x: x.seq)]
    return {"path": str(active), "entries": sum(r.entries for r in results if r.kind != "checkpoint"),
            "archived_entries": sum(r.entries for r in results if r.kind == "checkpoint"),
            "segments": parts, "range": list(segments) if segments else None,
            "linked_to_previous": linked_to is not None, "ok": not problems, "problems": problems}


def _seq_of(opened: seg.Opened) -> int:
    if opened.part.seq is not None:
        return opened.part.seq
    header = seg.header_of(opened.head())
    return int(header["segment"]) if header is not None else 1


def _last_hash_before(active: Path, seq: int) -> str | None:
    """The hash ending segment seq-1 (its file's last line, or its checkpoint); None: not here."""
    for part in seg.closed_parts(active):
        if part.seq != seq - 1:
            continue
        if part.kind == "checkpoint":
            try:
                return str(seg.read_checkpoint(part.path)["last_hash"])
            except (OSError, ValueError):
                return None
        return last_hash_of(seg.last_line(part.path))
    return None


def _worth_workers(opened: list[seg.Opened]) -> bool:
    return sum(o.size for o in opened) >= PARALLEL_BYTES and len(opened) > 1 and (os.cpu_count() or 1) > 1


def _check_all(opened: list[seg.Opened], single: bool) -> list[PartCheck]:
    jobs = [(o, prefix_for(o.part, single)) for o in opened]
    if not _worth_workers(opened):
        return [check(o, p) for o, p in jobs]
    with _workers(len(jobs)) as pool:
        return list(pool.map(_check_job, jobs, chunksize=1))


def _workers(jobs: int) -> Any:
    """A pool of verifier processes, one a core (a large log only pays for these imports)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers inherit the open descriptors, so they read exactly the snapshot's files
    return ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, jobs),
                               mp_context=multiprocessing.get_context("fork"))


def _seals(opened: list[seg.Opened], chosen: list[seg.Opened]) -> dict[str, dict]:
    """name -> the seal of each chosen closed segment, from the header of the part after it."""
    seals = {}
    following = {id(a): b for a, b in zip(opened, opened[1:], strict=False)}
    for o in chosen:
        after = following.get(id(o))
        if o.part.kind != "segment" or after is None or after.fd is None:
            continue
        header = seg.header_of(after.head())
        previous = (header or {}).get("previous") or {}
        if previous.get("file") == o.part.name and previous.get("sha256"):
            seals[o.part.name] = previous
    return seals


def _selected_while_workers_check(chosen: list[seg.Opened], single: bool, only: bytes,
                                  results: list[PartCheck], seals: dict[str, dict]) -> Iterator[dict]:
    """One pump's entries of a large read: worker processes check each file (against its seal,
    else every line's hash and links) while this one parses only the lines holding `only`; the
    checks land in `results`."""
    with _workers(len(chosen)) as pool:
        futures = [pool.submit(_sealed_job, (o, prefix_for(o.part, single), seals.get(o.part.name)))
                   for o in chosen]
        for o in chosen:
            for raw in o.lines_holding(only):
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue  # the worker names the line
                if isinstance(entry, dict) and "time" in entry:
                    yield entry
        results += [f.result() for f in futures]


def _check_job(job: tuple[seg.Opened, str]) -> PartCheck:
    return check(*job)


def _sealed_job(job: tuple[seg.Opened, str, dict | None]) -> PartCheck:
    return sealed_or_checked(*job)


class Scan:
    """Entries across the parts, in order, checked as they pass (report's read). days (first, last
    UTC day): only the segments of those days, with `before` parts ahead of them and `after` parts
    after them for context; `read_from` names what was read.
    only: the bytes of one pump's serial: only lines holding them are parsed and given (every line
    of the parts read is still checked against its hash and the line before)."""

    def __init__(self, active: Path, *, days: tuple[str, str] | None = None, before: int = 0, after: int = 0,
                 only: bytes | None = None):
        self.active, self.days, self.before, self.after, self.only = active, days, before, after, only
        self.count = 0
        self.problems: list[str] = []
        self.read_from: list[str] = []
        self.by_seal: list[str] = []  # the files checked against their sealed digest (the rest line by line)
        self.earlier = self.later = False  # parts before (after) those read exist: more context could be read

    def entries(self, parse: bool = True) -> Iterator[dict]:
        how: bool | bytes = self.only if parse and self.only is not None else parse
        with seg.snapshot(self.active) as opened:
            single = len(opened) == 1 and opened[0].part.kind == "active"
            chosen = self._choose(opened)
            results: list[PartCheck] = []
            if isinstance(how, bytes) and _worth_workers(chosen):
                seals = _seals(opened, chosen)
                yield from _selected_while_workers_check(chosen, single, how, results, seals)
            for o in chosen if not results else []:
                result = start(o)
                if o.fd is not None:
                    for entry in walk(o, result, prefix_for(o.part, single), how):
                        if how is parse or "time" in entry:  # a link-only line of another pump: not given
                            yield entry
                results.append(result)
            for result in results:
                self.problems += result.problems
                self.count += result.entries if result.kind != "checkpoint" else 0
            whole = len(chosen) == len(opened)
            linked_to = GENESIS if whole or not results else _last_hash_before(self.active, results[0].seq)
            self.problems += join(results, linked_to=linked_to, whole=whole)
            self.read_from = [o.part.name if o.fd is not None else f"{o.part.name} (archived: not read)"
                              for o in chosen]
            self.by_seal = [r.name for r in results if r.sealed]

    def _choose(self, opened: list[seg.Opened]) -> list[seg.Opened]:
        if self.days is None:
            return opened
        first, last = self.days
        days = [o.part.day or seg.day_of(o.head()) for o in opened]
        inside = [i for i, d in enumerate(days) if d is not None and first <= d <= last]
        if inside:
            lo, hi = inside[0], inside[-1] + 1
        else:  # nothing written those days: the context around where they would be
            lo = hi = next((i for i, d in enumerate(days) if d is not None and d > last), len(opened))
        lo, hi = max(0, lo - self.before), min(len(opened), hi + self.after)
        self.earlier, self.later = lo > 0, hi < len(opened)
        return opened[lo:hi]
