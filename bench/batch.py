"""Batch: `ithcli batch run` of a plan of interrogate steps over N emulated pumps, against
the same plan over one pump (goals: 200 pumps within 2x of one; with --ward, 1000 within 5x).

    python bench/batch.py [--sizes 1,10,50,200] [--jobs 64] [--runs 3]        # a process per pump
    python bench/batch.py --ward [--sizes 1,10,50,200,1000] [--tcp] [--runs 5] # one ward emulator
    python bench/batch.py --ward --compare-tree DIR                            # ... and another checkout's ithcli
    python bench/batch.py --validate [--targets 10000]                         # plan validation

Per-process mode: each pump is its own ith-emulator process on a pty. Ward mode: every pump
is one of a single `ith-emulator --pumps N` (ptys, or TCP with --tcp), and the wire floor
is printed beside each size: one process serving N ptys (or sockets) that answers each
request with 80 bytes, and a bare client doing the same 4 round trips a pump from one
selector loop (no framing, no crypto, no audit). Either way the clocks are frozen
(--time-scale 1e-9), every emulator is started before timing, and the figure is the median
wall time of the whole `ithcli batch run` process (start-up, preflight read of every
target, then the interrogate step on every target) over interleaved rounds of every size.

--validate times `ithcli batch validate` of plans of 1 and N targets (each its own port and
serial, a program step in the drug's unit and an assert), against `ithcli --help`.
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

from _common import FLOOR_CLIENT, median_run, pair, piped, stop, table

from ithcli import emulator_process
from ithcli.emulator_process import EmulatorProcess

FROZEN = ("--time-scale", "1e-9")


def start_many(n: int, workdir: str) -> list[tuple[EmulatorProcess, str, str, str]]:
    # all launched first, then each waited for: they start in parallel
    pending = []
    for i in range(n):
        serial = f"BENCH-{i:04d}"
        key_file = os.path.join(workdir, f"keys-{serial}.json")
        emu = emulator_process.launch(["--pty", *FROZEN, "--serial", serial], key_file=key_file)
        pending.append((emu, serial, key_file))
    try:
        return [(emu.wait_ready(120), emu.url, serial, key_file) for emu, serial, key_file in pending]
    except BaseException:
        for emu, *_ in pending:
            emu.stop()
        raise


def plan(path: str, pumps) -> None:
    """pumps: (anything, url, serial, anything) each."""
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


def run_once(plan_path: str, env: dict, jobs: int, workdir: str, pids: list[int]) -> tuple[float, float, float]:
    """Wall seconds of one `ithcli batch run`, and the CPU seconds of the ithcli process
    and of the emulators it talked to (where the 2 cores went)."""
    journal = os.path.join(workdir, f"j-{time.monotonic_ns()}.jsonl")
    emu_before = sum(cpu_seconds(p) for p in pids)
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
            sum(cpu_seconds(p) for p in pids) - emu_before)


def bench_env(workdir: str) -> tuple[dict, str]:
    key_store = os.path.join(workdir, "keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    env.update(ITHCLI_KEY_STORE=key_store, ITHCLI_STATE_DIR=os.path.join(workdir, "state"))
    # as an installed ithcli starts: from compiled bytecode (kept outside the tree, as the tests
    # keep theirs), not compiling every module it imports from source on every run
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), f"ithcli-pycache-{os.getuid()}"))
    return env, key_store


def interleaved(sizes: list[int], runs: int, once) -> dict[int, list[tuple[float, ...]]]:
    """Rounds of every size, interleaved, after one untimed round: this machine's speed
    drifts by 20-30 % over a minute, and measuring the one-pump baseline in another minute
    than the 200 made the ratios swing with it. The first ithcli run after the emulators
    start is slower too (state directory, caches)."""
    samples: dict[int, list[tuple[float, ...]]] = {n: [] for n in sizes}
    for round_ in range(runs + 1):
        for n in sizes:
            figures = once(n)
            if round_:
                samples[n].append(figures)
    return samples


def per_process(args) -> None:
    sizes = [int(s) for s in (args.sizes or "1,10,50,200").split(",")]
    workdir = tempfile.mkdtemp(prefix="ith-bench-batch-")
    env, key_store = bench_env(workdir)
    pumps = start_many(max(sizes), workdir)
    try:
        for _, _, _, key_file in pumps:
            pair(key_file, key_store)
        plans = {}
        for n in sizes:
            plans[n] = os.path.join(workdir, f"plan-{n}.toml")
            plan(plans[n], pumps[:n])
        samples = interleaved(sizes, args.runs, lambda n: run_once(plans[n], env, args.jobs, workdir,
                                                                   [p.pid for p, *_ in pumps[:n]]))
    finally:
        for p, *_ in pumps:
            stop(p)
    rows = []
    base = None
    for n in sizes:
        t, cli_cpu, emu_cpu = (statistics.median(x[i] for x in samples[n]) for i in range(3))
        base = base or t
        rows.append((n, f"{t:.3f}", f"{t / base:.2f}", f"{t / n * 1000:.1f}", f"{cli_cpu:.2f}", f"{emu_cpu:.2f}",
                     "<= 2.00" if n > 1 else "baseline"))
    table(f"batch run, interrogate step, one emulator process a pump (median of {args.runs} interleaved rounds; "
          f"--jobs {args.jobs}; seconds; ratio against one pump)",
          rows, ("pumps", "s", "ratio", "ms/pump", "ithcli CPU s", "emulators CPU s", "goal"))
    print("CPU s: user + system seconds of the ithcli process and of the emulators during one run (median);\n"
          "on 2 cores, (ithcli CPU + emulators CPU) / 2 is a floor for the wall time.")


# the wire floor beside a ward: one process serves every pty (or TCP port) and answers each
# read with 80 bytes; one bare client does 4 round trips on each, as a batch interrogate does
# (HELLO, AUTH, two INTERROGATEs), from one selector loop: no framing, crypto or audit
FLOOR_SERVER = """
import os, selectors, socket, sys, tty
n, tcp = int(sys.argv[1]), sys.argv[2] == "tcp"
sel = selectors.DefaultSelector()
reply = bytes(80)
for _ in range(n):
    if tcp:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        sel.register(lsock, selectors.EVENT_READ, "accept")
        print(f"socket://127.0.0.1:{lsock.getsockname()[1]}")
    else:
        master, slave = os.openpty()
        tty.setraw(slave)
        sel.register(master, selectors.EVENT_READ, "pty")
        print(os.ttyname(slave))
sys.stdout.flush()
while True:
    for key, _ in sel.select():
        if key.data == "accept":
            conn, _ = key.fileobj.accept()
            sel.register(conn, selectors.EVENT_READ, "conn")
        elif key.data == "conn":
            if key.fileobj.recv(4096):
                key.fileobj.send(reply)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
        else:
            os.read(key.fd, 4096)
            os.write(key.fd, reply)
"""

def floor(sizes: list[int], runs: int, *, tcp: bool) -> dict[int, tuple[float, float]]:
    """Per size: the median seconds of the bare client's loop, and of its whole process."""
    server = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(max(sizes)), "tcp" if tcp else "pty"],
                              stdout=subprocess.PIPE, text=True)
    try:
        urls = [piped(server.stdout).readline().strip() for _ in range(max(sizes))]
        samples: dict[int, list[tuple[float, ...]]] = interleaved(sizes, runs, lambda n: _floor_once(urls[:n]))
    finally:
        server.kill()
        server.wait()
        piped(server.stdout).close()
    return {n: (statistics.median(x[0] for x in s), statistics.median(x[1] for x in s)) for n, s in samples.items()}


def _floor_once(urls: list[str]) -> tuple[float, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", FLOOR_CLIENT, *urls], capture_output=True, text=True, check=True)
    return float(out.stdout), time.perf_counter() - t


# the same work as a batch interrogate's, pump after pump, in one warm process (no batch, no
# runner, no threads): a session opened, the status read twice (once described), the link
# closed; its CPU a pump is what the batch's own per-pump work is compared with
WARM = """
import os, sys, time
from pathlib import Path
from ithcli import druglib
from ithcli.app import PumpSession, Records, Settings
from ithcli.keystore import KeyStore
settings = Settings(port=None, key_store_dir=os.environ["ITHCLI_KEY_STORE"], state_dir=os.environ["ITHCLI_STATE_DIR"])
records, library, keys = Records.from_settings(settings), druglib.load(None), KeyStore(settings.key_store_dir)
def pump(url):
    session = PumpSession(Settings(**{**settings.__dict__, "port": url}), records, library=library, keystore=keys)
    session.read(settle=False)
    session.interrogate(resolve=False)
    session.close()
urls = sys.argv[1:]
pump(urls[0])
start = time.process_time()
for url in urls:
    pump(url)
print((time.process_time() - start) / len(urls))
"""


def warm_cpu(urls: list[str], env: dict, runs: int) -> float:
    """Median CPU seconds a pump of the same work in one warm process."""
    return statistics.median(float(subprocess.run([sys.executable, "-c", WARM, *urls], env=env, check=True,
                                                  capture_output=True, text=True).stdout) for _ in range(runs))


def ward(args) -> None:
    sizes = [int(s) for s in (args.sizes or "1,10,50,200,1000").split(",")]
    workdir = tempfile.mkdtemp(prefix="ith-bench-ward-")
    env, key_store = bench_env(workdir)
    # --compare-tree DIR: another checkout's ithcli (PYTHONPATH, for the batch process only), in the same rounds
    before = dict(env, PYTHONPATH=os.path.abspath(args.compare_tree)) if args.compare_tree else None
    listen = ["--listen", "127.0.0.1:0"] if args.tcp else []
    with emulator_process.start_ward([*listen, *FROZEN], pumps=max(sizes)) as emulator:
        pumps = emulator.pumps
        for pump in pumps:
            pair(pump.key_file, key_store)
        plans = {}
        for n in sizes:
            plans[n] = os.path.join(workdir, f"plan-{n}.toml")
            plan(plans[n], [(None, p.url, p.serial, None) for p in pumps[:n]])

        def once(n: int) -> tuple[float, ...]:
            now = run_once(plans[n], env, args.jobs, workdir, [emulator.pid])
            return now + (run_once(plans[n], before, args.jobs, workdir, [emulator.pid]) if before else ())
        samples = interleaved(sizes, args.runs, once)
        warm = warm_cpu([p.url for p in pumps[:min(200, len(pumps))]], env, args.runs)
    floors = floor(sizes, args.runs, tcp=args.tcp)
    title = (f"batch run, interrogate step, ONE ward emulator over {'TCP' if args.tcp else 'ptys'} (median of "
             f"{args.runs} interleaved rounds; --jobs {args.jobs}; seconds; ratio against one pump)")
    per_pump = _ward_table(title, sizes, samples, 0, floors)
    print("floor: one process serving the N ptys/sockets (80 bytes a reply), one bare client doing 4 round trips\n"
          "each from one selector loop: the loop alone, and the whole client process (Python start-up included).")
    if per_pump is not None:
        print(f"ithcli CPU a pump in the batch ({sizes[0]} -> {sizes[-1]} pumps): {per_pump * 1000:.2f} ms; the same "
              f"work pump after pump in one warm process: {warm * 1000:.2f} ms ({per_pump / warm:.2f}x)")
    if before:
        per_pump = _ward_table(f"the same rounds, ithcli from {args.compare_tree}", sizes, samples, 3, floors)
        if per_pump is not None:
            print(f"its ithcli CPU a pump ({sizes[0]} -> {sizes[-1]} pumps): {per_pump * 1000:.2f} ms")


def _ward_table(title: str, sizes: list[int], samples: dict[int, list[tuple[float, ...]]], at: int,
                floors: dict[int, tuple[float, float]]) -> float | None:
    """The table of one ithcli's figures (samples[n][round][at:at + 3]); its CPU a pump, first to last size."""
    rows = []
    base = None
    for n in sizes:
        t, cli_cpu, emu_cpu = (statistics.median(x[at + i] for x in samples[n]) for i in range(3))
        base = base or t
        loop, whole = floors[n]
        goal = "baseline" if n == sizes[0] else "<= 2.00" if n <= 200 else "<= 5.00"
        rows.append((n, f"{t:.3f}", f"{t / base:.2f}", f"{t / n * 1000:.2f}", f"{cli_cpu:.2f}", f"{emu_cpu:.2f}",
                     f"{loop * 1000:.1f}", f"{whole * 1000:.1f}", goal))
    table(title, rows, ("pumps", "s", "ratio", "ms/pump", "ithcli CPU s", "ward CPU s", "floor loop ms",
                        "floor process ms", "goal"))
    first, last = sizes[0], sizes[-1]
    if last == first:
        return None
    cpu = {n: statistics.median(x[at + 1] for x in samples[n]) for n in (first, last)}
    return (cpu[last] - cpu[first]) / (last - first)


def validate(args) -> None:
    workdir = tempfile.mkdtemp(prefix="ith-bench-validate-")
    env, _ = bench_env(workdir)
    rows = []
    base = median_run([sys.executable, "-m", "ithcli", "--help"], args.runs, env)
    rows.append(("ithcli --help", f"{base:.3f}", "1.00", "", ""))
    for n in (1, args.targets):
        path = os.path.join(workdir, f"plan-{n}.toml")
        with open(path, "w") as fh:
            fh.write('[plan]\nversion = 1\nname = "bench"\n\n')
            for i in range(n):
                fh.write(f'[[target]]\nport = "/dev/pts/{i}"\nserial = "BENCH-{i:05d}"\ndrug = "morphine"\n\n')
            fh.write('[[step]]\naction = "program"\ndose = "2.5 mg/day"\n\n'
                     '[[step]]\naction = "assert"\ncheck = "daily_dose.value == 2.5"\n')
        cmd = [sys.executable, "-m", "ithcli", "--json", "batch", "validate", path]
        check = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"validate failed ({check.returncode}): {check.stderr[-400:]}")
        t = median_run(cmd, args.runs, env)
        rows.append((f"batch validate, {n} target(s)", f"{t:.3f}", f"{t / base:.2f}", "< 2 s" if n > 1 else "", ""))
    table(f"plan validation (median of {args.runs}; seconds; ratio against ithcli --help)", rows,
          ("command", "s", "ratio", "goal", ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", help="pump counts (default 1,10,50,200; with --ward 1,10,50,200,1000)")
    ap.add_argument("--jobs", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ward", action="store_true", help="every pump from one ward emulator (ith-emulator --pumps)")
    ap.add_argument("--tcp", action="store_true", help="with --ward: the ward serves TCP ports, not ptys")
    ap.add_argument("--compare-tree", metavar="DIR", help="with --ward: also run the batch of another checkout "
                    "(e.g. `git archive COMMIT | tar -x -C DIR`) in the same rounds")
    ap.add_argument("--validate", action="store_true", help="time `batch validate` of a plan of --targets targets")
    ap.add_argument("--targets", type=int, default=10_000)
    args = ap.parse_args()
    if args.validate:
        validate(args)
    elif args.ward:
        ward(args)
    else:
        per_process(args)


if __name__ == "__main__":
    main()
