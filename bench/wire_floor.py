"""The floor under bench/batch.py: the same traffic shape with none of ithcli's work.

    python bench/wire_floor.py [--pumps 200] [--runs 5]

N minimal Python processes each hold a raw pty and answer every read with 80 bytes;
one client process opens all N ptys and, in one selector loop, does 4 round trips
on each (60 bytes out, 80 back), as a batch interrogate does (HELLO, AUTH, two
INTERROGATEs). No framing, no crypto, no audit, no threads: what is left is Python
start-up, the ptys and the kernel. A figure far below the batch's shows that the
batch's cost is the work per request, not the wire or the number of processes.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _common import FLOOR_CLIENT, piped, table

ECHO = """
import os, select, tty
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
reply = bytes(80)
poller = select.poll()
poller.register(master, select.POLLIN)
while True:
    poller.poll()
    os.read(master, 4096)
    os.write(master, reply)
"""

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pumps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    servers = [subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE) for _ in range(args.pumps)]
    try:
        paths = [piped(p.stdout).readline().decode().strip() for p in servers]
        rows = []
        for n in (1, args.pumps):
            loop, whole = [], []
            for i in range(args.runs + 1):  # the first run is not counted
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", FLOOR_CLIENT, *paths[:n]], capture_output=True, text=True,
                                     check=True).stdout
                if i:
                    whole.append(time.perf_counter() - t)
                    loop.append(float(out))
            rows.append((n, f"{statistics.median(loop) * 1000:.1f}", f"{statistics.median(whole) * 1000:.1f}"))
    finally:
        for p in servers:
            p.kill()
            p.wait()
            piped(p.stdout).close()
    table(f"bare wire floor: 4 round trips on each pty (median of {args.runs}; ms)", rows,
          ("ptys", "open + 4 round trips each", "whole client process"))


if __name__ == "__main__":
    main()
