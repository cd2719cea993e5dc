"""Batch: `ithcli batch run` of a plan of interrogate steps over N emulated pumps, against
the same plan over one pump (goal: N pumps within 2x of one).

    python bench/batch.py [--sizes 1,10,50,200] [--jobs 64] [--runs 3]

Each pump is its own ith-emulator process on a pty with a frozen clock
(--time-scale 1e-9), all started before timing; the figure is the median wall time
of the whole `ithcli batch run` process (start-up, preflight read of every target,
then the interrogate step on every target) over interleaved rounds of every size.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from _common import pair, stop, table

from ithcli import emulator_process
from ithcli.emulator_process import EmulatorProcess


def start_many(n: int, workdir: str) -> list[tuple[EmulatorProcess, str, str, str]]:
    # all launched first, then each waited for: they start in parallel
    pending = []
    for i in range(n):
        serial = f"BENCH-{i:04d}"
        key_file = os.path.join(workdir, f"keys-{serial}.json")
        emu = emulator_process.launch(["--pty", "--time-scale", "1e-9", "--serial", serial], key_file=key_file)
        pending.append((emu, serial, key_file))
    try:
        return [(emu.wait_ready(120), emu.url, serial, key_file) for emu, serial, key_file in pending]
    except BaseException:
        for emu, *_ in pending:
            emu.stop()
        raise


def plan(path: str, pumps) -> None:
    with open(path, "w") as fh:
        fh.write('[plan]\nversion = 1\nname = "bench"\n\n')
        for _, url, serial, _ in pumps:
            fh.write(f'[[target]]\nport = "{url}"\nserial = "{serial}"\n\n')
        fh.write('[[step]]\naction = "interrogate"\n')


def cpu_seconds(pid: int) -> float:
    """CPU a live process has used so far: /proc/PID/schedstat counts nanoseconds on the
    CPU (the tick-based utime/stime in /proc/PID/stat misses a pump's few milliseconds)."""
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0]) / 1e9


def run_once(plan_path: str, env: dict, jobs: int, workdir: str, emulators) -> tuple[float, float, float]:
    """Wall seconds of one `ithcli batch run`, and the CPU seconds of the ithcli process
    and of the emulators it talked to (where the 2 cores went)."""
    journal = os.path.join(workdir, f"j-{time.monotonic_ns()}.jsonl")
    emu_before = sum(cpu_seconds(p.pid) for p in emulators)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ithcli", "--json", "batch", "run", plan_path,
                           "--jobs", str(jobs), "--journal", journal,
                           "--results", journal + ".results"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"batch run failed ({proc.returncode}): {proc.stderr[-400:]}")
    return (wall, after.ru_utime - children.ru_utime + after.ru_stime - children.ru_stime,
            sum(cpu_seconds(p.pid) for p in emulators) - emu_before)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,50,200")
    ap.add_argument("--jobs", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = tempfile.mkdtemp(prefix="ith-bench-batch-")
    key_store = os.path.join(workdir, "keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    env.update(ITHCLI_KEY_STORE=key_store, ITHCLI_STATE_DIR=os.path.join(workdir, "state"))
    pumps = start_many(max(sizes), workdir)
    try:
        for _, _, _, key_file in pumps:
            pair(key_file, key_store)
        plans = {}
        for n in sizes:
            plans[n] = os.path.join(workdir, f"plan-{n}.toml")
            plan(plans[n], pumps[:n])
        # Rounds of every size, interleaved, after one untimed round: this machine's speed
        # drifts by 20-30 % over a minute, and measuring the one-pump baseline in another
        # minute than the 200 made the ratios swing with it. The first ithcli run after the
        # emulators start is slower too (state directory, caches).
        samples: dict[int, list[tuple[float, float, float]]] = {n: [] for n in sizes}
        for round_ in range(args.runs + 1):
            for n in sizes:
                figures = run_once(plans[n], env, args.jobs, workdir, [p for p, *_ in pumps[:n]])
                if round_:
                    samples[n].append(figures)
        rows = []
        base = None
        for n in sizes:
            t, cli_cpu, emu_cpu = (statistics.median(x[i] for x in samples[n]) for i in range(3))
            base = base or t
            rows.append((n, f"{t:.3f}", f"{t / base:.2f}", f"{t / n * 1000:.1f}", f"{cli_cpu:.2f}", f"{emu_cpu:.2f}",
                         "<= 2.00" if n > 1 else "baseline"))
    finally:
        for p, *_ in pumps:
            stop(p)
    table(f"batch run, interrogate step (median of {args.runs} interleaved rounds; --jobs {args.jobs}; seconds; "
          "ratio against one pump)",
          rows, ("pumps", "s", "ratio", "ms/pump", "ithcli CPU s", "emulators CPU s", "goal"))
    print("CPU s: user + system seconds of the ithcli process and of the emulators during one run (median);\n"
          "on 2 cores, (ithcli CPU + emulators CPU) / 2 is a floor for the wall time.")


if __name__ == "__main__":
    main()
