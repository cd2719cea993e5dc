"""`ithcli audit`: check the hash-chained audit log, list its segments, archive old ones."""
from __future__ import annotations

from pathlib import Path

import click

from ..audit import AuditError
from ..audit_segments import Part, all_parts, day_of, first_line, header_of
from ..errors import UsageError
from ..output import console


class SegmentRange(click.ParamType):
    """N, A-B or A- (from A on): segment numbers as `ithcli audit segments` lists them."""

    name = "RANGE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        first, dash, last = str(value).partition("-")
        try:
            lo = int(first)
            hi = lo if not dash else (int(last) if last else 10**9)
        except ValueError:
            self.fail(f"{value!r} is not a segment number or range (N, A-B or A-)", param, ctx)
        if lo < 1 or hi < lo:
            self.fail(f"{value!r}: segment numbers start at 1 and a range runs upwards", param, ctx)
        return (lo, hi)


@click.group()
def audit():
    """The local audit log of every command sent and every response (docs/audit.md)."""


@audit.command()
@click.option("--segments", type=SegmentRange(), metavar="RANGE",
              help="Only these segments: N, A-B or A- (default: all, archived ones through their checkpoints).")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Also check the archived segments in DIR against their checkpoints.")
@click.pass_obj
def verify(app, segments, archive_dir):
    """Check the chain: any edited, removed or reordered entry or segment is named and exits 10."""
    log = app.records.audit
    if not log.path.exists() and not all_parts(log.path):
        raise AuditError(f"no audit log at {log.path}")
    if archive_dir is not None and not Path(archive_dir).is_dir():
        raise UsageError(f"--archive {archive_dir}: no such directory")
    result = log.verify_report(segments, archive_dir)
    if segments is not None and not result["segments"]:
        raise UsageError(f"the audit log {log.path} has no segment {segments[0]}"
                         + (f" to {segments[1]}" if segments[1] != segments[0] else "")
                         + ": see 'ithcli audit segments'")
    if result["problems"]:
        raise AuditError(f"audit log {log.path} fails verification: " + "; ".join(result["problems"]),
                         details=result)
    app.emit(result, _show_verified)


def _show_verified(r: dict) -> None:
    parts = r["segments"]
    archived = [p for p in parts if p["kind"] == "checkpoint"]
    what = f"{r['entries']:,} entries" + (f" in {len(parts) - len(archived)} files" if len(parts) > 1 else "")
    if archived:
        what += f", {r['archived_entries']:,} more in {len(archived)} archived segments (through their checkpoints)"
    scope = f"segments {parts[0]['segment']} to {parts[-1]['segment']}: " if r["range"] else ""
    tail = "" if r["linked_to_previous"] else " (the segment before the range is not here: its link is unchecked)"
    console().print(f"Audit log {r['path']}: {scope}{what}, chain intact{tail}.")


@audit.command()
@click.pass_obj
def segments(app):
    """List the log's files: closed segments, archived ones' checkpoints, the active file."""
    log = app.records.audit
    rows = [_row(p) for p in all_parts(log.path)]
    if not rows:
        raise AuditError(f"no audit log at {log.path}")

    def render(data):
        for row in data["segments"]:
            console().print(f"{row['segment']:>6}  {row['day'] or '':10}  {row['kind']:10}  {row['bytes']:>12,} B  "
                            f"{row['path']}")

    app.emit({"path": str(log.path), "segments": rows}, render)


def _row(part: Part) -> dict:
    seq, day = part.seq, part.day
    if part.kind == "active":  # its number and day are in its first line (segment 1: none)
        first = first_line(part.path)
        header = header_of(first)
        seq, day = (int(header["segment"]) if header else 1), day_of(first)
    return {"segment": seq, "day": day, "kind": part.kind, "path": str(part.path), "bytes": part.path.stat().st_size}


@audit.command()
@click.option("--to", "destination", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Where the segments go (the clinic's archive: a mounted share, a folder shipped on).")
@click.option("--through", type=click.IntRange(1), metavar="N", help="Archive the closed segments 1 to N.")
@click.option("--before", metavar="YYYY-MM-DD", help="Archive the closed segments of days before this (UTC).")
@click.pass_obj
def archive(app, destination, through, before):
    """Move closed segments to DIR; each leaves a checkpoint so the rest still verifies."""
    from datetime import date

    from ..audit_archive import archive as move

    if (through is None) == (before is None):
        raise UsageError("give one of --through N or --before YYYY-MM-DD")
    if before is not None:
        try:
            date.fromisoformat(before)
        except ValueError:
            raise UsageError(f"--before {before!r} is not a date (YYYY-MM-DD)") from None
    done = move(app.records.audit, Path(destination), through=through, before=before)

    def render(data):
        for cp in data["archived"]:
            console().print(f"Archived {cp['file']} ({cp['entries']:,} entries) to {data['to']}; "
                            f"checkpoint left in its place.")

    app.emit({"to": str(Path(destination).resolve()), "archived": done}, render)
