"""Ward: one ith-emulator serving many pumps (`--pumps N`): what it costs to start, to restart
from its state files, to keep idle, and what a pump in it answers like next to a lone one.

    python bench/ward.py [--sizes 1,50,200,1000] [--n 200] [--transport pty|tcp|both]

For each size: the time from launch to the manifest's path on stdout (fresh ward directory),
the same for a restart on that directory, the ward's CPU while nobody talks to it (its pump
clocks ticking), and the median INTERROGATE round trip (sealed session, ithcli's own client)
on the ward's middle pump. The baseline, measured in the same run: a lone `ith-emulator`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from _common import table

from ithcli import emulator_process
from ithcli.app import PumpSession, Records, Settings
from ithcli.keystore import KeyStore

IDLE_S = 3.0


def round_trip_ms(url: str, keys: dict[str, bytes], serial: str, n: int) -> float:
    """Median INTERROGATE round trip through ithcli's PumpClient, without the audit log."""
    tmp = tempfile.mkdtemp(prefix="ith-bench-ward-")
    store = os.path.join(tmp, "keys")
    KeyStore(store).add(serial, keys)
    settings = Settings(port=url, timeout=5, json=True, verbose=0, audit_path=os.path.join(tmp, "audit.jsonl"),
                        state_dir=tmp, key_store_dir=store, operator="bench")
    session = PumpSession(settings, Records.from_settings(settings))
    try:
        client = session.client()
        client.on_exchange = None
        for _ in range(5):
            client.interrogate()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            client.interrogate()
            times.append(time.perf_counter() - start)
    finally:
        session.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return statistics.median(times) * 1e3


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_ward(args: list[str], size: int, n: int) -> tuple:
    directory = tempfile.mkdtemp(prefix="ith-bench-w-")
    try:
        start = time.perf_counter()
        ward = emulator_process.start_ward(args, pumps=size, ward_dir=os.path.join(directory, "w"))
        started = time.perf_counter() - start
        try:
            before = cpu_seconds(ward.pid)
            time.sleep(IDLE_S)
            idle = (cpu_seconds(ward.pid) - before) / IDLE_S * 100
            pump = ward.pumps[size // 2]
            rtt = round_trip_ms(pump.url, pump.keys(), pump.serial, n)
        finally:
            ward.stop()
        start = time.perf_counter()
        again = emulator_process.start_ward(args, pumps=size, ward_dir=os.path.join(directory, "w"))
        restarted = time.perf_counter() - start
        again.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return size, f"{started:.2f}", f"{restarted:.2f}", f"{idle:.1f}", f"{rtt:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,50,200,1000")
    parser.add_argument("--n", type=int, default=200, help="round trips measured a pump")
    parser.add_argument("--transport", choices=["pty", "tcp", "both"], default="both")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    for transport in (["pty", "tcp"] if opts.transport == "both" else [opts.transport]):
        args = ["--listen", "127.0.0.1:0"] if transport == "tcp" else []
        with emulator_process.start(args) as lone:
            baseline = round_trip_ms(lone.url, lone.keys, lone.serial, opts.n)
        rows = [measure_ward(args, size, opts.n) for size in sizes]
        table(f"Ward over {transport}: a lone ith-emulator answers INTERROGATE in {baseline:.3f} ms (median)",
              rows, ("pumps", "start s", "restart s", "idle CPU %", "INTERROGATE ms"))


if __name__ == "__main__":
    main()
