"""Shared by the bench scripts: timing helpers, a plain table, emulator start-up.

Benchmarks print figures; they assert nothing (timings belong in docs/performance.md,
never in tests). Every figure is reported with a baseline measured in the same run.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, AnyStr

from ithcli import emulator_process
from ithcli.emulator_process import EmulatorProcess

REPO = Path(__file__).resolve().parent.parent


def median_run(cmd: list[str], runs: int, env: dict | None = None) -> float:
    """Median wall time (s) of running cmd to completion, after one warm-up run."""
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(title: str, rows: list[tuple], headers: tuple) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))


def start_emulator(*args: str, workdir: str | None = None) -> tuple[EmulatorProcess, str, str]:
    """(emulator, URL, key file) of a new ith-emulator with fresh keys (ithcli's launcher)."""
    workdir = workdir or tempfile.mkdtemp(prefix="ith-bench-")
    key_file = os.path.join(workdir, f"keys-{time.monotonic_ns()}.json")
    emu = emulator_process.start(args, key_file=key_file)
    return emu, emu.url, key_file


def stop(emu: EmulatorProcess) -> None:
    emu.stop()


def piped(stream: IO[AnyStr] | None) -> IO[AnyStr]:
    """A Popen stream opened with PIPE: never None then, though Popen's types cannot say so."""
    assert stream is not None, "not opened with PIPE"
    return stream


def pair(key_file: str, key_store: str) -> None:
    os.makedirs(key_store, mode=0o700, exist_ok=True)
    target = os.path.join(key_store, os.path.basename(key_file))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(Path(key_file).read_bytes())


#: the wire floor's client: N ptys or socket:// URLs, 4 round trips each (60 bytes out, 80 back, as a
#: batch interrogate: HELLO, AUTH, two INTERROGATEs) from one selector loop; prints its loop's seconds
FLOOR_CLIENT = """
import os, selectors, socket, sys, time, tty
t = time.perf_counter()
sel = selectors.DefaultSelector()
left = {}
for url in sys.argv[1:]:
    if url.startswith("socket://"):
        host, port = url[9:].rsplit(":", 1)
        link = socket.create_connection((host, int(port)))
        link.setblocking(False)
        fd = link.fileno()
    else:
        link = fd = os.open(url, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
    left[fd] = [4, 0, link]  # round trips to go, bytes of this reply so far
    sel.register(fd, selectors.EVENT_READ)
    os.write(fd, bytes(60))
while left:
    for key, _ in sel.select():
        fd = key.fd
        state = left[fd]
        state[1] += len(os.read(fd, 4096))
        if state[1] >= 80:
            state[0] -= 1
            state[1] = 0
            if state[0]:
                os.write(fd, bytes(60))
            else:
                sel.unregister(fd)
                link = state[2]
                link.close() if hasattr(link, "close") else os.close(fd)
                del left[fd]
print(time.perf_counter() - t)
"""
