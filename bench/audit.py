"""The audit log at scale (issue 14): generate a log of N entries, then time `ithcli audit
verify` and `ithcli report --pump P` for one day of it, with each one's peak resident memory.

    python bench/audit.py [--entries 10000000] [--pumps 20] [--days 30] [--dir DIR]

The entries are real: one `ithcli interrogate` of a real ith-emulator gives the template
(its HELLO and INTERROGATE entries as ithcli wrote them), copied with a new time and pump
serial and chained with the real hashing (ithcli.audit), written straight to the file (the
append path's lock and fsync per entry are not what is measured). Each measurement runs
ithcli in its own process and reads that process's peak RSS (resource.getrusage).
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

from _common import pair, start_emulator, stop, table

from ithcli.audit import GENESIS, _canonical


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


def generate(path: str, n: int, pumps: int, days: int, shapes: list[dict]) -> tuple[str, float]:
    """n entries, evenly over `days` days up to now, pumps in turn; (a pump, seconds taken)."""
    start = time.perf_counter()
    end = int(time.time())
    step = days * 86400 / n
    serials = [f"BEN-{i:04d}" for i in range(pumps)]
    prev = GENESIS
    with open(path, "wb", buffering=1 << 20) as fh:
        for i in range(n):
            t = end - days * 86400 + int(i * step)
            entry = {"time": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                     **shapes[i % len(shapes)], "pump_serial": serials[(i // len(shapes)) % pumps], "prev": prev}
            canonical = _canonical(entry)
            prev = hashlib.sha256(canonical).hexdigest()
            fh.write(canonical[:-1] + b',"hash":"' + prev.encode() + b'"}\n')
    return serials[0], time.perf_counter() - start


def measure(args: list[str], env: dict) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one ithcli run in its own process."""
    code = ("import resource, sys, time\nfrom ithcli.cli import main\nt = time.perf_counter()\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "print('BENCH', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code,"
            " file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          check=False)
    line = next(x for x in reversed(proc.stderr.splitlines()) if x.startswith("BENCH "))
    _, seconds, rss_kb, exit_code = line.split()
    return float(seconds), int(rss_kb) / 1024, int(exit_code) if exit_code.isdigit() else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--pumps", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--dir", help="where the log is written (default: a new temporary directory)")
    a = parser.parse_args()
    workdir = a.dir or tempfile.mkdtemp(prefix="ith-bench-audit-")
    shapes = [e for e in templates(workdir) if e.get("command") in ("HELLO", "INTERROGATE")]
    path = os.path.join(workdir, "audit.jsonl")
    serial, took = generate(path, a.entries, a.pumps, a.days, shapes)
    size_mb = os.path.getsize(path) / 1e6
    print(f"generated {a.entries:,} entries ({size_mb:,.0f} MB) in {took:.1f} s: {path}")
    env = {**os.environ, "ITHCLI_AUDIT_LOG": path, "ITHCLI_STATE_DIR": os.path.join(workdir, "state")}
    rows = []
    s, rss, code = measure(["--json", "audit", "verify"], env)
    rows.append(("audit verify", f"{s:.2f}", f"{a.entries / s:,.0f}", f"{rss:.0f}", code))
    s, rss, code = measure(["--json", "report", "--pump", serial, "--hours", "24"], env)
    rows.append((f"report --pump {serial} --hours 24", f"{s:.2f}", f"{a.entries / s:,.0f}", f"{rss:.0f}", code))
    table(f"{a.entries:,} entries, {a.pumps} pumps, {a.days} days ({resource.getpagesize()} B pages)", rows,
          ("command", "seconds", "entries/s", "peak RSS MB", "exit"))


if __name__ == "__main__":
    main()
