"""The audit log at scale (issue 14): generate a log of N entries, then time `ithcli audit
verify` of all of it and `ithcli report --pump P` for one day of it, with peak resident memory.

    python bench/audit.py [--entries 10000000] [--pumps 20] [--days 30] [--dir DIR]

The entries are real: one `ithcli interrogate` of a real ith-emulator gives the template
(its HELLO and INTERROGATE entries as ithcli wrote them), copied with a new time and pump
serial and chained with the real hashing (ithcli.audit), written straight to the files in
segments exactly as AuditLog.append rotates them (a new UTC day, or SEGMENT_BYTES), with the
same segment-start headers (the append path's lock and fsync per entry are not what is
measured; `--one-file` writes the whole log as one file, as before segments). Each
measurement runs ithcli in its own process and reads its peak RSS and that of the largest
worker it started (resource.getrusage of itself and of its children).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import pair, start_emulator, stop, table

from ithcli.audit import GENESIS, segment_header
from ithcli.audit_chain import sealed_line
from ithcli.audit_segments import SEGMENT_BYTES, segment_name, segments_dir, utc_day


def templates(workdir: str) -> list[dict]:
    """The entries one real `ithcli interrogate` writes, without their chain."""
    emu, url, key_file = start_emulator("--time-scale", "1e-9", workdir=workdir)
    try:
        keys = os.path.join(workdir, "keys")
        pair(key_file, keys)
        env = {**os.environ, "ITHCLI_STATE_DIR": os.path.join(workdir, "state"), "ITHCLI_KEY_STORE": keys,
               "ITHCLI_PORT": url, "ITHCLI_OPERATOR": "bench"}
        subprocess.run([sys.executable, "-m", "ithcli", "interrogate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        stop(emu)
    with open(os.path.join(workdir, "state", "audit.jsonl")) as fh:
        entries = [json.loads(line) for line in fh]
    return [{k: v for k, v in e.items() if k not in ("prev", "hash", "time")} for e in entries]


def generate(path: str, n: int, pumps: int, days: int, shapes: list[dict], *, one_file: bool = False
             ) -> tuple[str, float, int]:
    """n entries, evenly over `days` days up to now, pumps in turn; (a pump, seconds taken, files)."""
    start = time.perf_counter()
    end = int(time.time())
    step = days * 86400 / n
    serials = [f"BEN-{i:04d}" for i in range(pumps)]
    out = _Segments(path, one_file)
    for i in range(n):
        t = end - days * 86400 + int(i * step)
        out.write(t, {**shapes[i % len(shapes)], "pump_serial": serials[(i // len(shapes)) % pumps]})
    out.close()
    return serials[0], time.perf_counter() - start, out.seq


class _Segments:
    """Writes entries as AuditLog.append would: rotating at a new UTC day or past SEGMENT_BYTES."""

    def __init__(self, path: str, one_file: bool):
        self.path, self.one_file = path, one_file
        self.folder = segments_dir(Path(path))
        self.seq, self.fh = 1, open(path, "wb", buffering=1 << 20)
        self.day: str | None = None
        self.first_hash: str | None = None
        self.prev, self.entries, self.size = GENESIS, 0, 0
        self.first_prev, self.digest = GENESIS, hashlib.sha256()

    def write(self, t: int, record: dict) -> None:
        day = utc_day(t)
        if not self.one_file and self.day is not None and (day != self.day or self.size >= SEGMENT_BYTES):
            self._rotate(t, day)
        self.day = self.day or day
        self._line({"time": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"), **record,
                    "prev": self.prev})

    def _line(self, entry: dict) -> None:
        line, self.prev = sealed_line(entry)
        self.fh.write(line)
        self.digest.update(line)
        self.first_hash = self.first_hash or self.prev
        self.entries += 1
        self.size += len(line)

    def _rotate(self, t: int, day: str) -> None:
        self.fh.close()
        self.folder.mkdir(exist_ok=True)
        name = segment_name(self.seq, self.day or day)
        os.rename(self.path, self.folder / name)
        # the seal AuditLog writes (audit_verify.seal): these lines were made, not read back and checked
        previous = {"segment": self.seq, "file": name, "entries": self.entries, "first_prev": self.first_prev,
                    "first_hash": self.first_hash, "last_hash": self.prev, "bytes": self.size,
                    "sha256": self.digest.hexdigest(), "problems": []}
        self.seq, self.day, self.fh = self.seq + 1, day, open(self.path, "wb", buffering=1 << 20)
        self.first_hash, self.entries, self.size = None, 0, 0
        self.first_prev, self.digest = self.prev, hashlib.sha256()
        self._line(segment_header(self.seq, day, previous, t))

    def close(self) -> None:
        self.fh.close()


def measure(args: list[str], env: dict) -> tuple[float, float, float, int]:
    """(seconds, peak RSS in MB, its largest worker's peak RSS in MB, exit code) of one ithcli run."""
    code = ("import resource, sys, time\nfrom ithcli.cli import main\nt = time.perf_counter()\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "print('BENCH', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          check=False)
    line = next(x for x in reversed(proc.stderr.splitlines()) if x.startswith("BENCH "))
    _, seconds, rss_kb, child_kb, exit_code = line.split()
    return float(seconds), int(rss_kb) / 1024, int(child_kb) / 1024, int(exit_code) if exit_code.isdigit() else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--pumps", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--one-file", action="store_true", help="the whole log as one file (before segments)")
    parser.add_argument("--dir", help="where the log is written (default: a new temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="measure the log already in --dir (not generated)")
    a = parser.parse_args()
    workdir = a.dir or tempfile.mkdtemp(prefix="ith-bench-audit-")
    path = os.path.join(workdir, "audit.jsonl")
    if a.reuse:
        serial, files = "BEN-0000", 1 + len(list(segments_dir(Path(path)).glob("*.jsonl")))
    else:
        shapes = [e for e in templates(workdir) if e.get("command") in ("HELLO", "INTERROGATE")]
        serial, took, files = generate(path, a.entries, a.pumps, a.days, shapes, one_file=a.one_file)
        size_mb = sum(p.stat().st_size for p in [Path(path), *segments_dir(Path(path)).glob("*.jsonl")]) / 1e6
        print(f"generated {a.entries:,} entries ({size_mb:,.0f} MB, {files} files) in {took:.1f} s: {path}")
    env = {**os.environ, "ITHCLI_AUDIT_LOG": path, "ITHCLI_STATE_DIR": os.path.join(workdir, "state")}
    rows = []
    s, rss, worker, code = measure(["--json", "audit", "verify"], env)
    rows.append(("audit verify", f"{s:.2f}", f"{a.entries / s:,.0f}", f"{rss:.0f}", f"{worker:.0f}", code))
    day = a.entries / a.days
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    for args, days_read in ((["--since", yesterday, "--until", yesterday], 1), (["--hours", "24"], 2)):
        s, rss, worker, code = measure(["--json", "--tz", "UTC", "report", "--pump", serial, *args], env)
        rows.append((f"report --pump {serial} {' '.join(args)}", f"{s:.2f}", f"{day * days_read / s:,.0f}",
                     f"{rss:.0f}", f"{worker:.0f}", code))
    table(f"{a.entries:,} entries, {a.pumps} pumps, {a.days} days, {files} files ({resource.getpagesize()} B "
          f"pages; report: entries/s of the UTC days it reads, one for a day, two for 24 h)", rows,
          ("command", "seconds", "entries/s", "peak RSS MB", "worker RSS MB", "exit"))


if __name__ == "__main__":
    main()
