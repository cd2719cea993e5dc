"""The campaign: many ithcli write sessions under seeded faults, each one checked.

Per worker: one ith-emulator (TCP, frozen clock), one fault proxy in front of it,
one fault-free TruthClient straight to it, and a private ithcli state dir and key
store. Per session:

  1. the truth before: the program, the last txid, the log's length;
  2. a seeded fault is armed: in the proxy (bytes on the wire) or in the emulator
     (its control-socket faults), or none;
  3. the real `ithcli --port PROXY --json WRITE` runs as a subprocess, WRITE one of
     `program --dose`, `refill --volume --concentration` or `bolus --dose --over`;
  4. the emulator's faults are cleared and the truth read again, then checked:
       - the pump delivers the old therapy (program, reservoir, bolus) or exactly the
         write's, never anything else
         (except under mismatch_on_commit, a pump that lies: then ithcli must not
         say verified);
       - exit 0 (verified)      => the new program, and its txid was applied;
       - exit 8 (unconfirmed)   => either; then `ithcli reconcile` (through the proxy,
                                   no fault) must learn the truth: applied exactly
                                   when the pump's log has TX_APPLIED for the txid;
       - any other exit (failed) => the old program, nothing applied (exit 7 may
                                   also mean the pump applied something else: it
                                   must then not be the new program);
       - at most one TX_APPLIED in the session, and no txid ever applied twice;
       - no unconfirmed-write journal left behind once ithcli said anything but 8
         (or after reconcile); no internal error (exit 1), no traceback, no hang.

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
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from protocol import Command, Drug, EventType, InfusionMode, bodies
from protocol.therapy import rate_for_dose

from .proxy import KINDS, TO_CLI, TO_PUMP, Fault, FaultProxy, PtyFaultProxy
from .pump import CampaignError, EmulatorProcess, TruthClient
from .warm import HUNG, WarmCli

EMULATOR_FAULTS = ("drop_commit_reply", "mismatch_on_commit", "reset_on_commit", "reset_after_commit",
                   "drop_prepare_reply", "reset_after_prepare", "drop_reply")
EMULATOR_ARGS = ["--time-scale", "1e-9", "--model", "peristaltic-40", "--drug", "morphine",
                 "--concentration", "10 mg/mL", "--flow", "0.2 mL/day", "--volume", "30 mL"]
CLI_TIMEOUT_S = 60.0  # a CLI run longer than this is a hang
NG_PER_MG = 1_000_000


# --- choosing a session ----------------------------------------------------------------

WRITE_KINDS = ("program", "refill", "bolus")
WRITE_WEIGHTS = (6, 2.5, 1.5)
REFILL_CONCENTRATIONS_MG_PER_ML = (10, 20)  # both in the drug library for morphine
BOLUS_SECONDS = 600
LOW_RESERVOIR_UL = 10_000  # below this a session refills (bolus sessions drain the reservoir)


def choose_dose(rng: random.Random, current_ng: int) -> Decimal:
    """A new morphine dose, 1.0-3.0 mg/day in 0.1 steps, never the current one, within
    the drug library's step rules (at most +50 %; a cut of less than half needs no flag)."""
    current = Decimal(current_ng) / NG_PER_MG
    options = [Decimal(n) / 10 for n in range(10, 31)]
    fits = [d for d in options if d != current and current * Decimal("0.6") < d <= current * Decimal("1.45")]
    return rng.choice(fits or [Decimal("2.0") if current != 2 else Decimal("2.2")])


@dataclass(frozen=True)
class Write:
    """One write a session asks ithcli to make, and what the pump shows once it is applied."""
    kind: str
    args: tuple[str, ...]
    dose_ng: int = 0  # program: the new daily dose; bolus: the bolus
    reservoir_ul: int = 0  # refill: the volume after the fill
    concentration_ng_per_ml: int = 0  # refill: the concentration filled

    def as_dict(self) -> dict:
        return {"kind": self.kind, "args": list(self.args)}


def choose_write(rng: random.Random, status: bodies.Status, program: bodies.Program,
                 kind: str | None = None) -> Write:
    """A seeded write of `kind` (default: drawn by WRITE_WEIGHTS) that the drug library
    and the pump accept when nothing goes wrong."""
    if kind is None:
        kind = rng.choices(WRITE_KINDS, weights=WRITE_WEIGHTS)[0]
        if status.reservoir_ul < LOW_RESERVOIR_UL:
            kind = "refill"
    if kind == "program":
        dose = choose_dose(rng, program.daily_dose_ng_per_day)
        return Write("program", ("program", "--dose", f"{dose} mg/day", "--yes"), dose_ng=int(dose * NG_PER_MG))
    if kind == "refill":
        volumes = [v for v in range(20, 41) if v * 1000 != status.reservoir_ul]
        volume = rng.choice(volumes)
        conc = rng.choice(REFILL_CONCENTRATIONS_MG_PER_ML)
        # --no-bridge: the catheter's old contents are not what the campaign checks (ithcli/catheter_ops.py)
        return Write("refill", ("refill", "--volume", f"{volume} mL", "--concentration", f"{conc} mg/mL", "--no-bridge",
                                "--yes"),
                     reservoir_ul=volume * 1000, concentration_ng_per_ml=conc * NG_PER_MG)
    if kind == "bolus":
        dose = Decimal(rng.randint(1, 5)) / 10  # 0.1-0.5 mg
        return Write("bolus", ("bolus", "--dose", f"{dose} mg", "--over", f"{BOLUS_SECONDS // 60} min", "--yes"),
                     dose_ng=int(dose * NG_PER_MG))
    raise ValueError(f"unknown write kind {kind!r}")


DOUBLE_FAULT_SHARE = 0.15  # of faulty sessions: a second fault on top (another layer or frame)


def choose_fault(rng: random.Random, timeout: float) -> dict:
    """A seeded fault plan: {"layer": "none" | "emulator" | "proxy", details}, and for
    DOUBLE_FAULT_SHARE of the faulty ones a second fault under "also" (e.g. a reset on
    COMMIT and a bit flip in the PREPARE reply, or two frames damaged)."""
    r = rng.random()
    if r < 0.08:
        return {"layer": "none"}
    plan = _one_fault(rng, timeout, "emulator" if r < 0.38 else "proxy")
    if rng.random() < DOUBLE_FAULT_SHARE:
        plan["also"] = _one_fault(rng, timeout, rng.choice(("emulator", "proxy")))
    return plan


def _one_fault(rng: random.Random, timeout: float, layer: str) -> dict:
    if layer == "emulator":
        name = rng.choice(EMULATOR_FAULTS)
        count = rng.randint(1, 3) if name == "drop_reply" else 1
        return {"layer": "emulator", "name": name, "count": count}
    kind = rng.choice(KINDS)
    direction = rng.choice((TO_PUMP, TO_CLI))
    target = rng.choices(("commit", "prepare", "any"), weights=(5, 2, 3))[0]
    index = 0 if target != "any" else rng.randint(0, 12)
    fault = Fault(kind=kind, direction=direction, target=target, index=index,
                  offset=rng.randint(0, 60), length=rng.randint(1, 4), bit=rng.randint(0, 7),
                  delay=round(timeout * rng.uniform(1.1, 3.0), 3))
    return {"layer": "proxy", "fault": fault.as_dict()}


def fault_name(part: dict) -> str:
    if part["layer"] == "none":
        return "none"
    if part["layer"] == "emulator":
        return f"emulator:{part['name']}"
    return f"proxy:{part['fault']['kind']}:{part['fault']['direction']}"


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
        before_status = self.truth.status()
        before = self.truth.program().program
        serial = before_status.serial_number
        log_from = before_status.event_count
        write = choose_write(rng, before_status, before, (plan or {}).get("write"))
        plan = plan if plan is not None else choose_fault(rng, self.timeout)

        parts = [plan] + ([plan["also"]] if "also" in plan else [])
        emulator_faults = [p for p in parts if p["layer"] == "emulator"]
        for part in emulator_faults:
            self.emulator.control("fault", name=part["name"], count=part["count"])
        proxy_faults = [Fault(**{k: v for k, v in p["fault"].items()
                                 if k not in ("fired", "frame_len", "frame_command")})
                        for p in parts if p["layer"] == "proxy"]
        if proxy_faults:
            self.proxy.arm(proxy_faults)
        started = time.monotonic()
        rc, out, stderr = self.cli(*write.args)
        elapsed = time.monotonic() - started
        self.proxy.disarm()
        left = self.emulator.control("faults").get("armed", {}) if emulator_faults else {}
        self.emulator.control("clear_faults")
        # an unconfirmed write is settled by `ithcli reconcile` before the truth is read:
        # on a serial line (the pty link) a COMMIT held past ithcli's timeout still reaches
        # the pump, ahead of reconcile's own bytes, so the pump's state is final only then
        settled = self.cli("reconcile") if rc == 8 else None

        after_status = self.truth.status()
        after = self.truth.program().program
        events = self.truth.events_since(log_from)
        applied = [e.arg1 for e in events if e.type == EventType.TX_APPLIED]
        txid = (out or {}).get("txid")
        state = classify(write, (before_status, before), (after_status, after))

        result: dict[str, Any] = {
            "session": number, "worker": self.wid, "link": self.link, "seed": seed, "write": write.as_dict(),
            "fault": plan, "exit": rc, "txid": txid, "outcome": (out or {}).get("outcome"),
            "truth": state, "applied": applied, "seconds": round(elapsed, 3), "violations": []}
        # the plan as it ran: each proxy fault with whether it fired, each emulator fault whether used
        proxy_ran = iter(proxy_faults)
        ran = []
        for part in parts:
            part = {k: v for k, v in part.items() if k != "also"}
            if part["layer"] == "proxy":
                part["fault"] = next(proxy_ran).as_dict()
            elif part["layer"] == "emulator":
                part["used"] = part["name"] not in left
            ran.append(part)
        result["fault"] = dict(ran[0], also=ran[1]) if len(ran) > 1 else ran[0]
        v = result["violations"]
        # a pump that lies (applies 10 % more than it echoed; only programs and refills)
        lying = any(p["layer"] == "emulator" and p["name"] == "mismatch_on_commit" and p["used"] for p in ran)

        # never anything but old or new (a lying pump aside)
        if state == "other" and not (lying and rc in (7, 8)):
            v.append(f"the pump delivers neither the old nor the new therapy (exit {rc})")
        # nothing applied twice
        if len(applied) > 1:
            v.append(f"{len(applied)} transactions applied in one session: {applied}")
        for t in applied:
            if t in self.applied_txids:
                v.append(f"txid {t} applied twice")
            self.applied_txids.add(t)
        if after_status.last_txid != (applied[-1] if applied else before_status.last_txid):
            v.append(f"last_txid {after_status.last_txid} disagrees with the log {applied}")
        if rc == HUNG:
            v.append(stderr)
        elif rc < 0:
            v.append(f"ithcli was killed by signal {-rc}: {stderr.strip()[-300:]}")
        elif rc == 1 or "Traceback" in stderr:
            v.append(f"internal error (exit {rc}): {stderr.strip()[-300:]}")
        elif rc == 0:
            if state != "new":
                v.append(f"exit 0 (verified) but the pump delivers the {state} therapy")
            if txid is None or txid not in applied:
                v.append(f"exit 0 (verified) but txid {txid} is not in the pump's log {applied}")
        elif rc == 8:
            assert settled is not None  # reconcile ran: rc == 8
            result["reconcile"] = self._check_reconcile(settled, result, serial, txid, applied, state, lying)
        else:  # failed for certain
            if rc == 7 and lying:
                if state == "new":
                    v.append("exit 7 but the new program is applied")
            elif state != "old" or applied:
                v.append(f"exit {rc} (failed) but the pump delivers the {state} therapy, applied {applied}")
        if rc != 8 and self.pending_exists(serial):
            v.append(f"exit {rc} left an unconfirmed-write journal entry behind")
        if v:
            result["stderr"] = stderr.strip()[-500:]
        if after_status.bolus_remaining_ng:
            # the clock is frozen: let the bolus finish, or the next bolus or refill is refused
            self.emulator.control("advance", seconds=BOLUS_SECONDS + 60)
        return result

    def _check_reconcile(self, settled: tuple, result: dict, serial: str, txid, applied: list, state: str,
                         lying: bool) -> dict:
        v = result["violations"]
        rc, out, stderr = settled
        info = {"exit": rc}
        if rc != 0 or out is None:
            v.append(f"reconcile after exit 8 failed (exit {rc}): {stderr.strip()[-300:]}")
            return info
        info.update(had_unconfirmed=out["had_unconfirmed"], applied=out["applied"], txid=out["txid"])
        if result["outcome"] == "unverified":  # COMMIT acknowledged, read-back lost
            if not applied or (state != "new" and not lying):
                v.append(f"exit 8 after an acknowledged COMMIT but the pump shows {state}, applied {applied}")
        elif out["had_unconfirmed"]:
            truth = out["txid"] in applied
            if out["applied"] != truth:
                v.append(f"reconcile says applied={out['applied']} but the pump's log says {truth}")
            if txid is not None and out["txid"] != txid:
                v.append(f"reconcile settled txid {out['txid']}, the write was {txid}")
        elif applied:
            v.append(f"exit 8 and nothing to reconcile, yet {applied} was applied")
        if self.pending_exists(serial):
            v.append("reconcile left the unconfirmed-write journal entry")
        return info


def classify(write: Write, before: tuple[bodies.Status, bodies.Program],
             after: tuple[bodies.Status, bodies.Program]) -> str:
    """"old" (nothing changed), "new" (exactly the write applied) or "other", from the
    pump's status and program before and after the session."""
    (status0, program0), (status1, program1) = before, after
    therapy0 = (program0, status0.reservoir_ul, status0.bolus_remaining_ng)
    therapy1 = (program1, status1.reservoir_ul, status1.bolus_remaining_ng)
    if therapy1 == therapy0:
        return "old"
    if write.kind == "program":
        expected = (_continuous(program0, program0.concentration_ng_per_ml, write.dose_ng), therapy0[1], therapy0[2])
    elif write.kind == "refill":  # the daily dose is kept; the flow follows the concentration
        expected = (_continuous(program0, write.concentration_ng_per_ml, program0.daily_dose_ng_per_day),
                    write.reservoir_ul, therapy0[2])
    else:  # bolus: on top of the program, nothing else changes (the clock is frozen)
        expected = (_therapy(program0), therapy0[1], therapy0[2] + write.dose_ng)
    return "new" if (_therapy(program1), therapy1[1], therapy1[2]) == expected else "other"


#: what classify compares of a program: mode, drug, concentration, daily dose and each
#: step's (start, dose, rate); not the 24-hour volume, which follows from them
_Therapy = tuple[InfusionMode, Drug, int, int, tuple[tuple[int, int, int], ...]]


def _therapy(program: bodies.Program) -> _Therapy:
    return (program.mode, program.drug, program.concentration_ng_per_ml, program.daily_dose_ng_per_day,
            tuple((st.start_minute, st.dose_ng_per_day, st.rate_nl_per_day) for st in program.steps))


def _continuous(program: bodies.Program, concentration: int, dose: int) -> _Therapy:
    """The continuous program ithcli asks for: one step from midnight, at the rate that
    delivers the dose at that concentration (protocol/therapy.py's rounding)."""
    return (InfusionMode.CONTINUOUS, program.drug, concentration, dose,
            ((0, dose, rate_for_dose(dose, concentration)),))


# --- the cut sweep -------------------------------------------------------------------

def cut_sweep_plans(direction: str, offsets, write: str = "program") -> list[dict]:
    return [{"layer": "proxy", "write": write,
             "fault": Fault(kind="cut", direction=direction, target="commit", offset=o).as_dict()}
            for o in offsets]


# --- the whole campaign --------------------------------------------------------------

@dataclass
class Summary:
    sessions: int = 0
    violations: list = field(default_factory=list)
    exits: Counter = field(default_factory=Counter)
    truths: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    faults_fired: Counter = field(default_factory=Counter)
    reconciled: Counter = field(default_factory=Counter)
    writes: Counter = field(default_factory=Counter)
    links: Counter = field(default_factory=Counter)
    doubles: Counter = field(default_factory=Counter)  # sessions with two faults, by the pair
    # per write kind and direction: the COMMIT (reply) byte offsets a cut fired at
    cut_offsets: dict = field(default_factory=lambda: {k: {TO_PUMP: set(), TO_CLI: set()} for k in WRITE_KINDS})
    commit_frame_len: dict = field(default_factory=dict)  # per write kind: {direction: bytes}
    seconds: float = 0.0

    def add(self, r: dict) -> None:
        self.sessions += 1
        self.exits[r["exit"]] += 1
        self.truths[r["truth"]] += 1
        self.writes[r["write"]["kind"]] += 1
        self.links[r["link"]] += 1
        f = r["fault"]
        parts = [f] + ([f["also"]] if "also" in f else [])
        for part in parts:  # each fault counted on its own, armed and fired
            name = fault_name(part)
            self.faults[name] += 1
            if part["layer"] == "none" or part.get("used") or (part["layer"] == "proxy" and part["fault"]["fired"]):
                self.faults_fired[name] += 1
        if len(parts) > 1:
            self.doubles[" + ".join(fault_name(p) for p in parts)] += 1
        if len(parts) == 1 and f["layer"] == "proxy" and f["fault"]["kind"] == "cut" \
                and f["fault"]["target"] == "commit" and f["fault"]["fired"]:
            self.cut_offsets[r["write"]["kind"]][f["fault"]["direction"]].add(f["fault"]["offset"])
        if "reconcile" in r:
            rec = r["reconcile"]
            self.reconciled["applied" if rec.get("applied") else "not applied"
                            if rec.get("had_unconfirmed") else "nothing pending"] += 1
        for text in r["violations"]:
            self.violations.append({"session": r["session"], "write": r["write"], "fault": f, "exit": r["exit"],
                                    "problem": text})

    def as_dict(self) -> dict:
        return {"sessions": self.sessions, "violations": self.violations, "exits": dict(self.exits),
                "writes": dict(self.writes), "links": dict(self.links), "truths": dict(self.truths),
                "faults": dict(sorted(self.faults.items())), "double_faults": sum(self.doubles.values()),
                "faults_fired": dict(sorted(self.faults_fired.items())), "reconciled": dict(self.reconciled),
                "cut_offsets": {k: {d: sorted(s) for d, s in by_dir.items()} for k, by_dir in self.cut_offsets.items()},
                "commit_frame_len": self.commit_frame_len, "seconds": round(self.seconds, 1)}


def run_campaign(sessions: int, *, seed: int = 1, workers: int = 2, timeout: float = 0.3,
                 sweep: bool = True, out: str | None = None, workdir: str | None = None,
                 progress=None, launch: str = "warm", link: str = "tcp") -> Summary:
    """Run `sessions` random sessions (plus, with sweep, a cut at every byte offset of the
    COMMIT frame and of its reply) over `workers` emulators; return the summary."""
    started = time.monotonic()
    root = Path(workdir or tempfile.mkdtemp(prefix="ith-campaign-"))
    summary = Summary()
    lock = threading.Lock()
    out_fh = open(out, "w") if out else None
    # link "mixed": even workers on TCP, odd ones on a pty
    links = [("pty" if w % 2 else "tcp") if link == "mixed" else link for w in range(workers)]
    pool = [Worker(w, root / f"w{w}", timeout, launch, links[w]) for w in range(workers)]
    errors: list[BaseException] = []
    try:
        for w in pool:
            w.start()
        jobs: list[tuple[int, dict | None]] = [(n, None) for n in range(sessions)]
        if sweep:
            # the frames' lengths are fixed for a given message: learn them once per kind
            # of write, fault-free; then cut each kind's COMMIT and its reply at every offset
            base = sessions
            for number, kind in enumerate(WRITE_KINDS, start=1):
                proxy = pool[0].proxy
                assert proxy is not None  # started above
                proxy.arm([])
                probe = pool[0].session(-number, seed, {"layer": "none", "write": kind})
                lengths = _commit_lengths(proxy.frames)
                summary.commit_frame_len[kind] = lengths
                if probe["violations"]:
                    summary.add(probe)
                for direction in (TO_PUMP, TO_CLI):
                    for plan in cut_sweep_plans(direction, range(0, lengths[direction] + 1), kind):
                        jobs.append((base, plan))
                        base += 1
        queues = [jobs[i::workers] for i in range(workers)]

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
