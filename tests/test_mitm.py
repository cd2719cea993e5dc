"""A man-in-the-middle on the link: what the link hardening must show (built for protocol
version 2; the wire is now version 5).

The matrices run in process (tests/loopback.py): the real ithcli (ithcli.cli.main) against
the emulator's real handler, through the fault proxy's own fault logic
(ithcli_campaign.proxy.FaultLine), on a virtual clock, so a forged reply's UNAUTH_GRACE
and every timeout cost no real time. A sample of each runs through real processes:
ith-emulator on TCP, the fault proxy (ithcli_campaign/proxy.py) in front of it, and the
real ithcli forked from a pre-imported process (ithcli_campaign/warm.py). The pump's truth
comes from a separate, direct, authenticated connection (ithcli_campaign.pump.TruthClient),
never through the proxy.

1. A clear ERROR of every ErrorReason forged in place of the pump's reply to COMMIT, for every
   kind of write: ithcli says unconfirmed (8) and that the answer was not authenticated, never
   rejected (5) nor verified (0); the pump did apply it; the pending record is kept; running the
   same command again is refused (8, "was applied", nothing sent) and nothing is applied twice;
   `ithcli reconcile` learns it was applied.
2. The same forgery in place of the reply to PREPARE (11, not committed, the pump unchanged, a
   rerun works once) and of the read-back after COMMIT (never a false verdict).
3. A keyless client failing AUTH on its own connection until RATE_LIMITED does not keep a
   programmer holding the key out of its own connection; the pump counts the failures.
4. A HELLO whose role or version byte is rewritten in flight opens no session.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_harness import cli_env
from loopback import InProcessPump, run_ithcli

from ithcli.emulator_process import EmulatorProcess
from ithcli_campaign.proxy import TO_CLI, TO_PUMP, Fault, FaultLine, FaultProxy
from ithcli_campaign.pump import TruthClient
from ithcli_campaign.warm import WarmCli
from protocol import ErrorReason, EventType, Role, WriteKind, bodies, security
from protocol import session as wire

FROZEN = ("--time-scale", "1e-9")  # the pump clock moves only when a test advances it
TIMEOUT = "10"  # ithcli --timeout: generous for a loaded machine; a forged reply costs only UNAUTH_GRACE
REASONS = list(ErrorReason)
WRITE_COMMANDS = {"PREPARE_PROGRAM", "PREPARE_REFILL", "PREPARE_BOLUS", "PREPARE_MRI_ENTER",
                  "PREPARE_MRI_EXIT", "COMMIT"}
# a HELLO request frame: sync(2) version(1) flags(1) seq(2) command(1) length(2), then the payload
# protocol_version(1) client_nonce(16) role(1)
HELLO_VERSION_OFFSET = 9
HELLO_ROLE_OFFSET = 9 + 1 + 16


# --- the rigs: one pump, its faults, one state dir, ithcli -------------------------------------------


@dataclass
class Run:
    argv: tuple
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict:
        return self.json()["error"]

    def __str__(self) -> str:  # for assertion messages
        return f"ithcli {' '.join(self.argv)} -> exit {self.code}\nstderr: {self.stderr}\nstdout: {self.stdout[:3000]}"


class _Rig:
    """What both rigs share: the pump's truth (self.truth, a TruthClient on a connection of its
    own), ithcli's own state (self.state_dir), and cli() through the faults."""

    emu: EmulatorProcess | InProcessPump
    truth: TruthClient
    proxy: FaultProxy | FaultLine  # ithcli's link goes through it: proxy_url
    proxy_url: str
    env: dict[str, str]
    state_dir: Path

    def _run(self, argv: list[str], env: dict) -> tuple[int, str, str]:
        raise NotImplementedError

    def cli(self, *args: str, faults=(), direct: bool = False, env: dict | None = None) -> Run:
        """ithcli through the proxy with `faults` armed (or straight to the pump); every fault
        must have fired, or the test would prove nothing."""
        port = self.emu.url if direct else self.proxy_url
        self.proxy.arm(list(faults))
        try:
            code, out, err = self._run(["--port", port, "--timeout", TIMEOUT, *args], {**self.env, **(env or {})})
        finally:
            self.proxy.disarm()
        run = Run(tuple(args), code, out, err)
        for fault in faults:
            assert fault.fired, f"the fault {fault} never fired: {run}"
        return run

    def ok(self, *args: str) -> Run:
        run = self.cli(*args)
        assert run.code == 0, str(run)
        return run

    # --- the pump's truth, over the direct connection ---
    def status(self) -> bodies.Status:
        return self.truth.status()

    def log_index(self) -> int:
        return self.status().event_count

    def events_since(self, index: int, type_: EventType) -> list[bodies.Event]:
        return [e for e in self.truth.events_since(index) if e.type == type_]

    def applied_since(self, index: int) -> list[tuple[int, int]]:
        """(txid, WriteKind) of every TX_APPLIED the pump logged from `index` on."""
        return [(e.arg1, e.arg2) for e in self.events_since(index, EventType.TX_APPLIED)]

    def therapy(self) -> dict:
        """What the pump delivers and holds: all a write can change."""
        s = self.status()
        keys = ("last_txid", "mode", "drug", "concentration_ng_per_ml", "daily_dose_ng_per_day",
                "daily_volume_nl_per_day", "reservoir_ul", "mri_mode", "mri_auto_exit_at", "bolus_remaining_ng")
        return {k: getattr(s, k) for k in keys} | {"program": self.truth.program().program}

    # --- ithcli's own state ---
    def pending(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.state_dir / "pending").glob("*.json"))]

    def audit_lines(self) -> int:
        path = self.state_dir / "audit.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def writes_sent_since(self, line: int) -> list[str]:
        """The PREPARE_* and COMMIT exchanges ithcli audited from audit line `line` on."""
        lines = (self.state_dir / "audit.jsonl").read_text().splitlines()[line:]
        entries = [json.loads(text) for text in lines]
        return [e["command"] for e in entries if e.get("event") == "exchange" and e.get("command") in WRITE_COMMANDS]


class Rig(_Rig):
    """Real processes: an emulator on TCP, the fault proxy in front of it, the warm ithcli."""

    emu: EmulatorProcess
    proxy: FaultProxy

    def __init__(self, emu: EmulatorProcess, warm: WarmCli, state_dir: Path):
        self.emu = emu
        host, _, port = emu.url[len("socket://"):].rpartition(":")
        self.address = (host, int(port))
        self.proxy = FaultProxy(self.address)
        self.proxy_url = self.proxy.url
        self.warm = warm
        self.state_dir = Path(state_dir)
        self.env = cli_env({"ITHCLI_STATE_DIR": str(self.state_dir), "ITHCLI_OPERATOR": "mitm-test"})
        self.truth = TruthClient(self.address, emu.keys["reader"])

    def _run(self, argv, env):
        return self.warm.run(argv, env, 60)

    def close(self) -> None:
        self.truth.close()
        self.proxy.close()


class LoopRig(_Rig):
    """In process (tests/loopback.py): the same pump, the proxy's fault logic, ithcli.cli.main,
    a virtual clock."""

    emu: InProcessPump
    proxy: FaultLine

    def __init__(self, tmp_path: Path, *emulator_args: str):
        self.emu = InProcessPump(*FROZEN, *emulator_args)
        self.proxy = self.emu.line
        self.proxy_url = self.emu.url
        self.state_dir = Path(tmp_path) / "state"
        key_store = Path(tmp_path) / "keys"
        self.emu.pair(key_store)
        self.env = cli_env({"ITHCLI_STATE_DIR": str(self.state_dir), "ITHCLI_OPERATOR": "mitm-test",
                            "ITHCLI_KEY_STORE": str(key_store)})
        self.truth = self.emu.truth()

    def _run(self, argv, env):
        return run_ithcli(argv, env, self.emu.clock)

    def close(self) -> None:
        self.emu.close()


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    cli = WarmCli(tmp_path_factory.mktemp("warm"))
    yield cli
    cli.close()


@pytest.fixture
def rig(start_emulator, warm, tmp_path):
    """Real processes: a default pump (peristaltic-40, morphine 10 mg/mL, 18 mL at 2 mg/day),
    frozen clock, TCP."""
    made: list[Rig] = []

    def make(*args):
        r = Rig(start_emulator(*FROZEN, *args, transport="tcp"), warm, tmp_path / f"state-{len(made)}")
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def loop_rig(tmp_path):
    """The same default pump in process."""
    made: list[LoopRig] = []

    def make(*args):
        r = LoopRig(tmp_path / f"loop-{len(made)}", *args)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# --- the six kinds of write, each repeatable case after case on one pump ---------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    logged_as: WriteKind  # arg2 of the TX_APPLIED it leaves
    argv: Callable[[int], list[str]]  # case i's command
    setup: Callable[[_Rig, int], None] = lambda rig, i: None  # before case i (no fault)


def _bolus_setup(rig: _Rig, i: int) -> None:
    if i:
        rig.emu.control("advance", seconds=3600)  # the previous 10-min bolus is over


def _refill_after_empty(rig: _Rig, i: int) -> None:
    if i:
        rig.ok("refill", "--volume", "18 mL", "--concentration", "10 mg/mL", "--yes")


def _leave_mri(rig: _Rig, i: int) -> None:
    if i:
        rig.ok("mri", "exit", "--yes")


def _enter_mri(rig: _Rig, i: int) -> None:
    rig.ok("mri", "enter", "--yes", "--confirm-withdrawal-risk")


KINDS = {k.name: k for k in (
    Kind("program", WriteKind.PROGRAM,
         lambda i: ["program", "--dose", "2.2 mg/day" if i % 2 == 0 else "2 mg/day", "--yes"]),
    Kind("refill", WriteKind.REFILL,
         lambda i: ["refill", "--volume", f"{30 + i % 2} mL", "--concentration", "10 mg/mL", "--yes"]),
    Kind("bolus", WriteKind.BOLUS, lambda i: ["bolus", "--dose", "0.1 mg", "--over", "10 min", "--yes"], _bolus_setup),
    Kind("empty", WriteKind.REFILL, lambda i: ["empty", "--confirm-withdrawal-risk", "--yes"], _refill_after_empty),
    Kind("mri-enter", WriteKind.MRI_ENTER, lambda i: ["mri", "enter", "--yes", "--confirm-withdrawal-risk"],
         _leave_mri),
    Kind("mri-exit", WriteKind.MRI_EXIT, lambda i: ["mri", "exit", "--yes"], _enter_mri),
)}


def forge(target: str, reason: ErrorReason, index: int = 0) -> Fault:
    """A clear ERROR `reason` in place of the pump's reply: what anyone on the line can send."""
    return Fault(kind="forge", direction=TO_CLI, target=target, index=index, reason=int(reason))


# --- 1. a forged reply to COMMIT: every reason, every kind of write --------------------------------


def forged_commit_cases(r: _Rig, spec: Kind, reasons=REASONS) -> list[str]:
    """Each of `reasons` forged in clear in place of the COMMIT reply, case after case on one pump
    (even cases: the same command is run again; odd cases: `ithcli reconcile`). Raises on anything
    false or unsafe; returns how reruns answered when not as the preflight should."""
    rerun_problems: list[str] = []
    for i, reason in enumerate(reasons):
        spec.setup(r, i)
        index = r.log_index()
        argv = ["--json", *spec.argv(i)]
        first = r.cli(*argv, faults=[forge("commit", reason)])

        # the verdict: unconfirmed, because the answer was not authenticated; never rejected nor verified
        assert first.code == 8, f"{reason.name}: {first}"
        out, error = first.json(), first.error
        assert (error["kind"], out["outcome"], out["verified"]) == ("unconfirmed", "unconfirmed", False), str(first)
        assert "not authenticated" in error["message"], str(first)
        assert f"ERROR {reason.name} in clear" in error["message"], str(first)
        assert "NOT re-sent" in error["message"] and "reconcile" in error["message"], str(first)
        assert "nothing was applied" not in error["message"].lower(), str(first)
        txid = out["txid"]

        # the pump did apply it, once; ithcli kept the pending record
        assert r.applied_since(index) == [(txid, spec.logged_as)], f"{reason.name}: {first}"
        assert r.status().last_txid == txid
        assert [p["txid"] for p in r.pending()] == [txid], reason.name

        audited = r.audit_lines()
        if i % 2 == 0:
            # the user runs the same command again: the preflight that settles it must refuse it
            again = r.cli(*argv)
            # never applied twice, whatever the rerun said
            assert r.applied_since(index) == [(txid, spec.logged_as)], f"{reason.name}: {again}"
            assert again.code not in (0, 1), f"{reason.name}: {again}"
            sent = r.writes_sent_since(audited)
            found = again.json()
            message = found.get("error", {}).get("message", "")
            if not (again.code == 8 and found["error"]["kind"] == "unconfirmed"
                    and found.get("reconciled", {}).get("applied") is True and found["reconciled"]["txid"] == txid
                    and "was applied" in message and "Nothing new was sent" in message and sent == []):
                rerun_problems.append(f"{reason.name}: exit {again.code}, sent {sent}: {again.stderr.strip()}")
            assert r.pending() == []
            rec = r.cli("--json", "reconcile")
            assert rec.code == 0, str(rec)
            assert rec.json()["had_unconfirmed"] is False, str(rec)  # the rerun settled it
            assert rec.json()["status"]["last_programming"]["txid"] == txid
        else:
            # the user follows the advice: reconcile learns it was applied, and sends nothing
            rec = r.cli("--json", "reconcile")
            assert rec.code == 0, str(rec)
            found = rec.json()
            assert (found["had_unconfirmed"], found["txid"], found["applied"]) == (True, txid, True), str(rec)
            assert r.writes_sent_since(audited) == []
            assert r.pending() == []
        assert r.applied_since(index) == [(txid, spec.logged_as)], reason.name
    return rerun_problems


def _no_rerun_problems(kind: str, found: list[str]) -> None:
    assert found == [], (
        f"running `ithcli {' '.join(KINDS[kind].argv(0))}` again after an unconfirmed {kind} was not refused by "
        "the preflight (exit 8, 'was applied', nothing sent):\n" + "\n".join(found))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_forged_commit_reply_is_unconfirmed_applied_once_and_never_resent(loop_rig, kind):
    """Every ErrorReason in clear in place of the COMMIT reply (forged_commit_cases), in process:
    unconfirmed (8), applied once, the pending record kept; the same command again refused by the
    preflight (8, "was applied", nothing sent) or `ithcli reconcile` learning it was applied; never
    applied twice."""
    _no_rerun_problems(kind, forged_commit_cases(loop_rig(), KINDS[kind]))


@pytest.mark.parametrize("kind, reasons", [
    ("program", [ErrorReason.INVALID_STATE, ErrorReason.BUSY]),
    ("bolus", [ErrorReason.CHANGED_SINCE_READ]),
])
def test_a_forged_commit_reply_through_real_processes(rig, kind, reasons):
    """The sample of the matrix above through the real emulator, proxy and ithcli: both ways of
    settling it (the rerun, then reconcile) and a second kind of write."""
    _no_rerun_problems(kind, forged_commit_cases(rig(), KINDS[kind], reasons))


# --- 2. a forged reply to PREPARE, and to the read-back after COMMIT ------------------------------


def forged_prepare_cases(r: _Rig, spec: Kind, reasons) -> None:
    """A clear ERROR in place of the PREPARE reply: COMMIT is never sent, ithcli says the answer was
    not authenticated and nothing was applied (11); the pump is unchanged; the same command run
    again, with no forgery, is applied exactly once."""
    for i, reason in enumerate(reasons):
        spec.setup(r, i)
        index = r.log_index()
        before = r.therapy()
        argv = ["--json", *spec.argv(i)]
        audited = r.audit_lines()
        first = r.cli(*argv, faults=[forge("prepare", reason)])
        assert first.code == 11, f"{reason.name}: {first}"
        error = first.error
        assert "not authenticated" in error["message"], str(first)
        assert f"ERROR {reason.name} in clear" in error["message"], str(first)
        assert "COMMIT was not sent" in error["message"] and "nothing was applied" in error["message"], str(first)
        assert first.json()["outcome"] == "not-committed", str(first)
        assert "COMMIT" not in r.writes_sent_since(audited), str(first)
        assert r.therapy() == before and r.applied_since(index) == [], reason.name
        assert r.pending() == []

        again = r.cli(*argv)
        assert again.code == 0, f"{reason.name}: {again}"
        assert again.json()["outcome"] == "verified", str(again)
        txid = again.json()["txid"]
        assert r.applied_since(index) == [(txid, spec.logged_as)], reason.name
        assert r.status().last_txid == txid


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_forged_prepare_reply_commits_nothing_and_a_rerun_applies_once(loop_rig, kind):
    """Every ErrorReason in place of the PREPARE reply, every kind of write, in process."""
    forged_prepare_cases(loop_rig(), KINDS[kind], REASONS)


def test_a_forged_prepare_reply_through_real_processes(rig):
    forged_prepare_cases(rig(), KINDS["refill"], [ErrorReason.NOT_PERMITTED])


def forged_read_back_cases(r: _Rig, spec: Kind, reasons) -> None:
    """After an authenticated COMMIT reply the write is applied: the only true verdicts are
    verified (0: the read-back, asked again in a new session, matched) and unverified (8).
    One forged read-back reply: ithcli opens a new session, asks again, and the genuine sealed
    answer verifies it, saying on stderr that an answer was not authenticated. The re-asked
    reply forged too: the read-back fails and ithcli says the pump acknowledged it, unverified."""
    for i, reason in enumerate(reasons):
        for twice in (False, True):
            case = 2 * i + twice
            spec.setup(r, case)
            index = r.log_index()
            # after COMMIT, to the pump: 0 INTERROGATE (the read-back), 1 HELLO, 2 AUTH (the new
            # session), 3 INTERROGATE (asked again)
            faults = [forge("after_commit", reason, 0)] + ([forge("after_commit", reason, 3)] if twice else [])
            run = r.cli("--json", *spec.argv(case), faults=faults)
            what = f"{reason.name}, {'both read-backs' if twice else 'one read-back'} forged: {run}"
            assert "not authenticated" in run.stderr, what
            if twice:
                assert run.code == 8, what
                assert run.error["kind"] == "unconfirmed" and run.json()["outcome"] == "unverified", what
                assert "acknowledged" in run.error["message"] and "read-back failed" in run.error["message"], what
            else:
                assert run.code == 0, what
                assert run.json()["outcome"] == "verified", what
            txid = run.json()["txid"]
            assert r.applied_since(index) == [(txid, spec.logged_as)], what
            assert r.status().last_txid == txid
            assert r.pending() == []  # the COMMIT reply was authenticated: nothing to reconcile


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_forged_read_back_reply_never_makes_ithcli_report_something_false(loop_rig, kind):
    """Every ErrorReason in place of the read-back's reply (and of the one asked again), every kind
    of write, in process."""
    forged_read_back_cases(loop_rig(), KINDS[kind], REASONS)


def test_a_forged_read_back_reply_through_real_processes(rig):
    forged_read_back_cases(rig(), KINDS["mri-enter"], [ErrorReason.INVALID_STATE])


def forged_handshake_case(r: _Rig, index: int, reason: ErrorReason) -> None:
    """The read-back's reply forged, then the reply to the new session's HELLO or AUTH (in clear by
    design, so anyone can forge it). The write was applied and its COMMIT reply authenticated:
    ithcli must say so, unverified (8), not that the pump refused (5) or has no key (11)."""
    index_before = r.log_index()
    run = r.cli("--json", *KINDS["program"].argv(0),
                faults=[forge("after_commit", ErrorReason.BUSY, 0), forge("after_commit", reason, index)])
    txid_applied = r.applied_since(index_before)
    assert len(txid_applied) == 1 and txid_applied[0][1] == WriteKind.PROGRAM  # the write did land
    assert run.code == 8, f"the write was applied and acknowledged, yet: {run}"
    assert run.json()["outcome"] == "unverified" and run.json()["txid"] == txid_applied[0][0], str(run)
    assert "acknowledged" in run.error["message"], str(run)


HANDSHAKE_FORGERIES = [(1, reason) for reason in REASONS] + [(2, reason) for reason in REASONS]


@pytest.mark.parametrize("index, reason", HANDSHAKE_FORGERIES,
                         ids=[f"{'hello' if i == 1 else 'auth'}-{r.name.lower()}" for i, r in HANDSHAKE_FORGERIES])
def test_a_forged_handshake_in_the_read_backs_new_session_is_not_a_false_verdict(loop_rig, index, reason):
    """Every ErrorReason in place of the new session's HELLO reply (index 1) or AUTH reply (2), in process."""
    forged_handshake_case(loop_rig(), index, reason)


def test_a_forged_handshake_in_the_read_backs_new_session_through_real_processes(rig):
    forged_handshake_case(rig(), 2, ErrorReason.RATE_LIMITED)


def test_after_an_unconfirmed_write_an_mri_write_is_refused_too(loop_rig):
    """ithcli's own words after an unconfirmed write: "further writes to this pump are refused until
    then". `mri enter` must be refused like `program` is (8, nothing sent), not settle and go on."""
    r = loop_rig()
    index = r.log_index()
    first = r.cli("--json", *KINDS["program"].argv(0), faults=[forge("commit", ErrorReason.BUSY)])
    assert first.code == 8, str(first)
    txid = first.json()["txid"]
    audited = r.audit_lines()
    enter = r.cli("--json", *KINDS["mri-enter"].argv(0))
    assert r.applied_since(index)[0] == (txid, WriteKind.PROGRAM)
    sent = r.writes_sent_since(audited)
    mode = r.status().mri_mode
    assert (enter.code, sent) == (8, []), f"sent {sent}, the pump's MRI mode is now {mode!r}: {enter}"
    assert "was applied" in enter.error["message"], str(enter)


# --- 3. a keyless attacker on its own connection --------------------------------------------------


class KeylessClient:
    """A raw socket speaking HELLO + AUTH with a proof from a random key: no key, no session."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=5)
        self.session = wire.ClientSession()

    def _answer(self, request: bytes):
        self.sock.sendall(request)
        while True:
            data = self.sock.recv(65536)
            assert data, "the pump closed the attacker's connection"
            for event in self.session.receive_data(data):
                if isinstance(event, wire.DECISIVE):
                    return event

    def attempt(self) -> ErrorReason:
        hello = self._answer(self.session.hello(Role.CLINICIAN))
        assert isinstance(hello, wire.HelloReply), hello
        answer = self._answer(self.session.authenticate(security.new_key()))
        assert isinstance(answer, wire.Refused) and not answer.authenticated, answer
        return answer.reason

    def close(self) -> None:
        self.sock.close()


def test_a_keyless_client_failing_auth_on_its_own_connection_does_not_lock_the_clinician_out(rig):
    r = rig()
    failures_before = r.status().auth_failures
    index = r.log_index()
    attacker = KeylessClient(r.address)
    try:
        answers = []
        while ErrorReason.RATE_LIMITED not in answers:
            answers.append(attacker.attempt())
            assert len(answers) < 20, answers
        assert answers[0] == ErrorReason.AUTH_FAILED and set(answers) == {ErrorReason.AUTH_FAILED,
                                                                            ErrorReason.RATE_LIMITED}, answers

        # and it goes on guessing while the clinician works on another connection
        stop = threading.Event()
        during: list = []

        def keep_guessing():
            while not stop.is_set():
                try:
                    during.append(attacker.attempt())
                except Exception as exc:
                    during.append(exc)
                    return
                time.sleep(0.02)

        guesser = threading.Thread(target=keep_guessing, daemon=True)
        guesser.start()
        try:
            status = r.cli("--json", "interrogate", direct=True)
            program = r.cli("--json", "program", "--dose", "2.2 mg/day", "--yes", direct=True)
        finally:
            stop.set()
            guesser.join(10)
        assert status.code == 0, str(status)
        assert program.code == 0, str(program)
        assert program.json()["outcome"] == "verified" and program.json()["verified"] is True, str(program)
        assert "retry" not in status.stderr + program.stderr  # ithcli was never asked to wait
        assert during and all(a in (ErrorReason.AUTH_FAILED, ErrorReason.RATE_LIMITED) for a in during), during
        assert ErrorReason.RATE_LIMITED in during, during
        attempts = len(answers) + len(during)
    finally:
        attacker.close()

    assert r.applied_since(index) == [(program.json()["txid"], WriteKind.PROGRAM)]
    assert r.status().daily_dose_ng_per_day == 2_200_000
    # every refused guess counted pump-wide (ithcli's own handshakes added none)...
    assert r.status().auth_failures == failures_before + attempts
    # ...and the clinician can see them in the pump's log
    logged = r.cli("--json", "log", "--type", "auth_failure", direct=True)
    assert logged.code == 0, str(logged)
    assert logged.json()["events"] and logged.json()["events"][0]["arg1"] >= 1, str(logged)


# --- 4. a HELLO rewritten in flight ---------------------------------------------------------------


def _sessions_opened(r: _Rig) -> dict[str, int]:
    """Sessions the pump has opened, per role, since it was made (its counters, not its log:
    the log coalesces sessions into one event per role per 10 minutes)."""
    return r.emu.control("state")["sessions_opened"]


@pytest.mark.parametrize("argv, asked, rewritten", [
    (["--json", "interrogate"], Role.READER, Role.CLINICIAN),
    (["--json", "program", "--dose", "2.2 mg/day", "--yes"], Role.CLINICIAN, Role.READER),
], ids=["read-as-clinician", "write-as-reader"])
def test_a_hello_whose_role_is_rewritten_opens_no_session(rig, tmp_path, argv, asked, rewritten):
    r = rig()
    opened = _sessions_opened(r)
    before = r.therapy()
    patch = Fault(kind="patch", direction=TO_PUMP, target="hello", offset=HELLO_ROLE_OFFSET, value=int(rewritten))
    run = r.cli(*argv, faults=[patch])
    assert run.code == 11, str(run)
    message = run.error["message"]
    assert "HELLO was altered" in message and "No session was opened" in message, str(run)
    assert f"{asked.name.lower()} HELLO" in message, str(run)
    assert _sessions_opened(r) == opened, "a session opened after the HELLO was rewritten"
    assert r.therapy() == before
    # and a clean reader connection counts exactly one reader session, no clinician one
    clean = r.cli("--json", "log", "--type", "session_opened", direct=True,
                  env={"ITHCLI_STATE_DIR": str(tmp_path / "clean-state")})
    assert clean.code == 0, str(clean)
    after = _sessions_opened(r)
    assert (after["reader"] - opened["reader"], after["clinician"] - opened["clinician"]) == (1, 0), after


def hello_version_case(r: _Rig, version: int, code: int) -> None:
    opened = _sessions_opened(r)
    patch = Fault(kind="patch", direction=TO_PUMP, target="hello", offset=HELLO_VERSION_OFFSET, value=version)
    run = r.cli("--json", "interrogate", faults=[patch])
    assert run.code == code, str(run)
    assert run.error["kind"] in ("auth", "protocol"), str(run)
    assert "Traceback" not in run.stderr
    assert _sessions_opened(r) == opened, f"a session opened after the HELLO's version became {version}"
    # nothing stays broken: the next run, not tampered with, gets in
    assert r.cli("--json", "interrogate").code == 0


VERSIONS = [(6, 11), (4, 4), (3, 4), (2, 4), (1, 4), (0xFF, 11)]


@pytest.mark.parametrize("version, code", VERSIONS)
def test_a_hello_whose_version_is_rewritten_opens_no_session_in_process(loop_rig, version, code):
    hello_version_case(loop_rig(), version, code)


@pytest.mark.parametrize("version, code", [VERSIONS[0], VERSIONS[1]])
def test_a_hello_whose_version_is_rewritten_opens_no_session(rig, version, code):
    """Through real processes: a newer version (the pump cannot prove its key: 11) and an older one (4)."""
    hello_version_case(rig(), version, code)
