"""The campaign: many ithcli write sessions under seeded faults, each one checked.

Per worker: one ith-emulator (TCP, frozen clock), one fault proxy in front of it,
one fault-free TruthClient straight to it, and a private ithcli state dir and key
store. Per session:

  1. sometimes, when patient boluses are on, the patient presses the handheld (the
     emulator's control op "activate"): granted or refused by the pump's rules, its bolus
     run to its end or left running into the session;
  2. the truth before: status (therapy, catheter record, patient-bolus limits, clock) and
     program, the last txid, the log's length;
  3. a seeded write (writes.py: program, refill with or without a bridge bolus, bolus,
     catheter implant/revise/correct, priming bolus, clock set, patient-bolus limits) and a
     seeded fault (plans.py), armed in the proxy (bytes on the wire) or in the emulator
     (its control-socket faults), or none;
  4. the real `ithcli --port PROXY --json WRITE` runs as a subprocess; the emulator's
     faults are cleared; after exit 8, `ithcli reconcile`; the truth is read again and
     ithcli's verdict judged (oracle.py): the pump shows the old state or exactly the
     write's, verified means applied, failed means not, reconcile learns the truth, at most
     one TX_APPLIED and no txid applied twice, no journal left behind, no crash, no hang;
  5. any bolus still running (a bridge takes days) is run to its end by advancing the clock.

Everything random comes from random.Random(f"{seed}:{session}"): a session's write
and fault are reproducible from (seed, session number, worker count). Whether a
delay lands before or after a timeout is timing, so a delay near the timeout can
end either way; each way is still checked.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import Command, EventType, bodies

from .oracle import Outcome, check_reconcile, classify, judge
from .plans import (
    EMULATOR_FAULTS,
    as_ran,
    choose_fault,
    cut_sweep_plans,
    fault_name,
    proxy_faults,
)
from .proxy import TO_CLI, TO_PUMP, FaultProxy, PtyFaultProxy
from .pump import CampaignError, EmulatorProcess, TruthClient
from .summary import Summary
from .warm import HUNG, WarmCli
from .writes import BOLUS_SECONDS, DAY_S, SWEEP_KINDS, WRITE_KINDS, Write, choose_dose, choose_write

__all__ = ["BOLUS_SECONDS", "EMULATOR_ARGS", "EMULATOR_FAULTS", "SWEEP_KINDS", "WRITE_KINDS", "Summary", "Worker",
           "Write", "choose_dose", "choose_fault", "choose_write", "classify", "cut_sweep_plans", "fault_name",
           "run_campaign"]

EMULATOR_ARGS = ["--time-scale", "1e-9", "--model", "peristaltic-40", "--drug", "morphine",
                 "--concentration", "10 mg/mL", "--flow", "0.2 mL/day", "--volume", "30 mL"]
CLI_TIMEOUT_S = 60.0  # a CLI run longer than this is a hang
#: of the sessions on a pump with patient boluses on: the patient presses the handheld first
ACTIVATE_SHARE = 0.4


# --- one worker -------------------------------------------------------------------

@dataclass
class Worker:
    wid: int
    root: Path
    timeout: float
    launch: str = "warm"  # "warm": a forked, pre-imported ithcli (warm.py); "spawn": a fresh interpreter
    link: str = "tcp"  # "tcp": ithcli on a socket:// URL; "pty": ithcli on a device path (proxy.PtyFaultProxy)
    emulator: EmulatorProcess | None = None
    proxy: FaultProxy | PtyFaultProxy | None = None
    truth: TruthClient | None = None
    applied_txids: set = field(default_factory=set)

    def start(self) -> Worker:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.root / "ithcli-state"
        self.key_store = self.root / "keys"
        self.emulator = EmulatorProcess(self.root / "pump", EMULATOR_ARGS).start()
        self.emulator.pair(self.key_store)
        self.proxy = (PtyFaultProxy if self.link == "pty" else FaultProxy)(self.emulator.address)
        self.truth = TruthClient(self.emulator.address, self.emulator.keys()["reader"])
        self.warm = WarmCli(self.root / "warm") if self.launch == "warm" else None
        return self

    def stop(self) -> None:
        if self.truth:
            self.truth.close()
        warm = getattr(self, "warm", None)  # unset when start() failed before it
        if warm:
            warm.close()
        if self.proxy:
            self.proxy.close()
        if self.emulator:
            self.emulator.stop()
            self.emulator.cleanup()

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
        env.update(ITHCLI_STATE_DIR=str(self.state_dir), ITHCLI_KEY_STORE=str(self.key_store),
                   ITHCLI_OPERATOR=f"campaign-{self.wid}", COLUMNS="120")
        return env

    def cli(self, *args: str) -> tuple[int, dict | None, str]:
        assert self.proxy is not None, "Worker.start() first"
        argv = ["--port", self.proxy.url, "--timeout", str(self.timeout), "--json", *args]
        if self.warm is not None:
            rc, stdout, stderr = self.warm.run(argv, self.env(), CLI_TIMEOUT_S)
        else:
            try:
                proc = subprocess.run([sys.executable, "-m", "ithcli", *argv], capture_output=True, text=True,
                                      env=self.env(), timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)
                rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
            except subprocess.TimeoutExpired:
                rc, stdout, stderr = HUNG, "", ""
        if rc == HUNG:
            return HUNG, None, f"hung: no exit within {CLI_TIMEOUT_S} s"
        try:
            out = json.loads(stdout) if stdout.strip() else None
        except ValueError:
            out = None
        return rc, out, stderr

    def pending_exists(self, serial: str) -> bool:
        return (self.state_dir / "pending" / f"{serial}.json").exists()

    # --- one session ------------------------------------------------------------
    def session(self, number: int, seed: int, plan: dict | None = None) -> dict:
        rng = random.Random(f"{seed}:{number}")
        assert self.emulator is not None and self.proxy is not None and self.truth is not None, "Worker.start() first"
        # the patient's handheld in the random sessions (a sweep's write must reach its COMMIT)
        activation = self.patient(random.Random(f"{seed}:{number}:patient")) if plan is None else None
        before_status = self.truth.status()
        before = self.truth.program().program
        serial = before_status.serial_number
        write = choose_write(rng, before_status, before, (plan or {}).get("write"))
        plan = plan if plan is not None else choose_fault(rng, self.timeout)
        parts = [plan] + ([plan["also"]] if "also" in plan else [])
        started = time.monotonic()
        (rc, out, stderr), ran = self._run(write, parts)
        elapsed = time.monotonic() - started
        # an unconfirmed write is settled by `ithcli reconcile` before the truth is read:
        # on a serial line (the pty link) a COMMIT held past ithcli's timeout still reaches
        # the pump, ahead of reconcile's own bytes, so the pump's state is final only then
        settled = self.cli("reconcile") if rc == 8 else None

        after_status = self.truth.status()
        after = self.truth.program().program
        events = self.truth.events_since(before_status.event_count)
        applied = [e.arg1 for e in events if e.type == EventType.TX_APPLIED]
        # a pump that lies (applies 10 % more than it echoed; only writes that set the program)
        lying = any(p["layer"] == "emulator" and p["name"] == "mismatch_on_commit" and p["used"]
                    for p in [ran] + ([ran["also"]] if "also" in ran else []))
        o = Outcome(rc, out, stderr, classify(write, (before_status, before), (after_status, after)), applied,
                    lying, settled)
        result: dict[str, Any] = {
            "session": number, "worker": self.wid, "link": self.link, "seed": seed, "write": write.as_dict(),
            "fault": ran, "exit": rc, "txid": o.txid, "outcome": (out or {}).get("outcome"), "truth": o.state,
            "applied": applied, "activation": activation, "seconds": round(elapsed, 3), "violations": []}
        v = result["violations"]
        self._check_log(applied, before_status, after_status, v)
        result["verdict"] = judge(o, v, rc != 8 and self.pending_exists(serial))
        if rc == 8:
            result["reconcile"] = check_reconcile(o, v, self.pending_exists(serial))
        if v or rc not in (0, 8):  # why it failed, for --out
            result["stderr"] = stderr.strip()[-500:]
        if after_status.bolus_remaining_ng:
            # the clock is frozen: let the bolus finish, or the next bolus or refill is refused
            self.finish_bolus()
        if write.kind == "priming" and (o.state == "new" or rc == 6):
            # the day of monitoring after a priming; or one the 24-hour bolus total refuses (a frozen
            # clock keeps every bolus in the window): the next priming comes a day later
            self.emulator.control("advance", seconds=DAY_S)
        return result

    def _run(self, write: Write, parts: list[dict]) -> tuple[tuple[int, dict | None, str], dict]:
        """Arm the plan's faults, run ithcli's write, disarm: (rc, out, stderr) and the plan as it ran."""
        assert self.emulator is not None and self.proxy is not None
        emulator_faults = [p for p in parts if p["layer"] == "emulator"]
        for part in emulator_faults:
            self.emulator.control("fault", name=part["name"], count=part["count"])
        armed = proxy_faults(parts)
        if armed:
            self.proxy.arm(armed)
        ran = self.cli(*write.args)
        self.proxy.disarm()
        left = self.emulator.control("faults").get("armed", {}) if emulator_faults else {}
        self.emulator.control("clear_faults")
        return ran, as_ran(parts, armed, left)

    def _check_log(self, applied: list, before: bodies.Status, after: bodies.Status, v: list[str]) -> None:
        """At most one TX_APPLIED in a session, no txid ever applied twice, last_txid as the log says."""
        if len(applied) > 1:
            v.append(f"{len(applied)} transactions applied in one session: {applied}")
        for t in applied:
            if t in self.applied_txids:
                v.append(f"txid {t} applied twice")
            self.applied_txids.add(t)
        if after.last_txid != (applied[-1] if applied else before.last_txid):
            v.append(f"last_txid {after.last_txid} disagrees with the log {applied}")

    def patient(self, rng: random.Random) -> str | None:
        """Sometimes, with patient boluses on, a press of the handheld: what the pump said. A granted
        bolus is run to its end, or half the time left running into the session's write."""
        assert self.emulator is not None and self.truth is not None
        if rng.random() >= ACTIVATE_SHARE:
            return None
        limits = self.truth.status().ptm
        if not limits.enabled:
            return None
        if rng.random() < 0.5:  # the lockout has passed (the frozen clock moves only when told)
            self.emulator.control("advance", seconds=limits.lockout_s)
        reply = self.emulator.control("activate")
        if reply["outcome"] != "granted":
            return f"refused: {reply['reason']}"
        if rng.random() < 0.5:
            return "granted, running"
        self.finish_bolus()
        return "granted"

    def finish_bolus(self) -> None:
        """Advance the pump's clock past the end of the running bolus (a bridge bolus takes days)."""
        assert self.emulator is not None
        for _ in range(3):
            bolus = self.emulator.control("state").get("bolus")
            if not bolus:
                return
            self.emulator.control("advance", seconds=bolus["duration_s"] - bolus["elapsed_s"] + 60)
        raise CampaignError(f"a bolus still runs after three advances: {bolus}")


# --- the whole campaign --------------------------------------------------------------
def run_campaign(sessions: int, *, seed: int = 1, workers: int = 2, timeout: float = 0.3,
                 sweep: bool = True, out: str | None = None, workdir: str | None = None,
                 progress=None, launch: str = "warm", link: str = "tcp",
                 worker_class: type[Worker] | None = None) -> Summary:
    """Run `sessions` random sessions (plus, with sweep, a cut at every byte offset of the
    COMMIT frame and of its reply) over `workers` emulators; return the summary.
    worker_class: what runs a worker's pump and ithcli (default Worker: real processes)."""
    started = time.monotonic()
    root = Path(workdir or tempfile.mkdtemp(prefix="ith-campaign-"))
    summary = Summary()
    out_fh = open(out, "w") if out else None
    # link "mixed": even workers on TCP, odd ones on a pty
    links = [("pty" if w % 2 else "tcp") if link == "mixed" else link for w in range(workers)]
    pool = [(worker_class or Worker)(w, root / f"w{w}", timeout, launch, links[w]) for w in range(workers)]
    errors: list[BaseException] = []
    try:
        for w in pool:
            w.start()
        jobs: list[tuple[int, dict | None]] = [(n, None) for n in range(sessions)]
        if sweep:
            jobs += _sweep_jobs(pool[0], seed, sessions, summary)
        _run_jobs(pool, jobs, seed, summary, out_fh, progress, errors)
    finally:
        for w in pool:
            w.stop()
        if out_fh:
            out_fh.close()
        if workdir is None and not errors and not summary.violations:
            shutil.rmtree(root, ignore_errors=True)
    summary.seconds = time.monotonic() - started
    if errors:
        raise CampaignError(f"the campaign itself failed: {errors[0]!r}") from errors[0]
    return summary


def _sweep_jobs(w: Worker, seed: int, base: int, summary: Summary) -> list[tuple[int, dict | None]]:
    """The cut sweep's sessions, numbered from `base`. The frames' lengths are fixed for a given
    message: learn them once per kind of write, fault-free; then cut each kind's COMMIT and its
    reply at every offset (SWEEP_KINDS: the COMMIT exchange is the same frames for every kind)."""
    jobs: list[tuple[int, dict | None]] = []
    for number, kind in enumerate(SWEEP_KINDS, start=1):
        proxy = w.proxy
        assert proxy is not None  # started
        proxy.arm([])
        probe = w.session(-number, seed, {"layer": "none", "write": kind})
        lengths = _commit_lengths(proxy.frames)
        summary.commit_frame_len[kind] = lengths
        if probe["violations"]:
            summary.add(probe)
        for direction in (TO_PUMP, TO_CLI):
            for plan in cut_sweep_plans(direction, range(0, lengths[direction] + 1), kind):
                jobs.append((base, plan))
                base += 1
    return jobs


def _run_jobs(pool: list[Worker], jobs: list, seed: int, summary: Summary, out_fh, progress,
              errors: list[BaseException]) -> None:
    """Each worker its share of the jobs, in a thread of its own; results into summary (and out_fh)."""
    lock = threading.Lock()
    queues = [jobs[i::len(pool)] for i in range(len(pool))]

    def work(w: Worker, todo) -> None:
        try:
            for number, plan in todo:
                r = w.session(number, seed, plan)
                with lock:
                    summary.add(r)
                    if out_fh:
                        out_fh.write(json.dumps(r, default=str) + "\n")
                    if progress:
                        progress(summary)
        except BaseException as exc:  # the campaign's machinery, not a finding
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, q)) for w, q in zip(pool, queues, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _commit_lengths(frames) -> dict:
    lengths = {}
    commit_seen = False
    for direction, command, length in frames:
        if direction == TO_PUMP and command == Command.COMMIT:
            lengths[TO_PUMP] = length
            commit_seen = True
        elif direction == TO_CLI and commit_seen and TO_CLI not in lengths:
            lengths[TO_CLI] = length
    if len(lengths) != 2:
        raise CampaignError(f"the probe session saw no COMMIT exchange: {frames}")
    return lengths
