"""The fault campaign (ithcli_campaign), short enough for CI; docs/reliability.md has the long one.

The campaign's own runner and checks (ithcli_campaign.runner: run_campaign, Worker.session,
classify) run twice:

- in process (tests/loopback.py): the real ithcli (ithcli.cli.main) against the emulator's
  real handler through the proxy's fault logic, on a virtual clock: 200 seeded sessions of
  every kind of write the campaign draws (tests/test_campaign_kinds.py checks the new ones
  in the same run) and the cut at every byte offset of the COMMIT of a program, a refill
  and a bolus and of its reply, with every fault of the campaign exercised. No process and
  no waiting, so the matrix is cheap;
- through real processes: ith-emulator and ithcli as subprocesses (ithcli forked from a
  pre-imported process, a fresh interpreter in one test), the fault proxy between them on
  TCP and on ptys, and a separate fault-free session reading the pump's truth: a sample of
  the same seeded sessions, where timing is real (a delay near the timeout, a pty that
  carries a held frame into the next session).
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time

import pytest
from campaign_loop import CI_SEED, LoopWorker, in_process_campaign

from ithcli_campaign.proxy import KINDS, TO_CLI, TO_PUMP, Fault, PtyFaultProxy
from ithcli_campaign.pump import EmulatorProcess
from ithcli_campaign.runner import EMULATOR_FAULTS, SWEEP_KINDS, WRITE_KINDS, Worker, Write, classify, run_campaign
from ithcli_campaign.warm import WarmCli
from protocol import (
    PROTOCOL_VERSION,
    Alarm,
    BatteryState,
    Command,
    Drug,
    InfusionMode,
    MriMode,
    PumpModel,
    Role,
    bodies,
    encode,
    security,
)
from protocol.catheter import NO_CATHETER
from protocol.patient import NO_PATIENT
from protocol.ptm import PTM_OFF, PTM_UNUSED
from protocol.therapy import rate_for_dose

REAL_SESSIONS = 32  # through real processes, on TCP and ptys
SPAWNED_SESSIONS = 12  # a fresh `python -m ithcli` per run


def test_campaign_in_process_finds_no_wrong_verdict():
    """200 seeded sessions and the cut sweep, every check of the campaign, in process
    (tests/campaign_loop.py: run once, its summary shared with tests/test_campaign_kinds.py)."""
    data = in_process_campaign()
    assert data["violations"] == [], data["violations"][:5]
    assert data["links"] == {"in-process": data["sessions"]}
    # for every swept kind of write, the cut sweep reached every byte offset of the COMMIT frame
    # and of its reply, and past the end
    for kind in SWEEP_KINDS:
        for direction in (TO_PUMP, TO_CLI):
            length = data["commit_frame_len"][kind][direction]
            assert set(range(length + 1)) <= set(data["cut_offsets"][kind][direction]), (kind, direction)
    assert set(data["writes"]) == set(WRITE_KINDS)
    # every fault was exercised, and every kind of verdict was reached
    fired = {name.split(":")[1] for name in data["faults_fired"] if name != "none"}
    assert set(KINDS) | set(EMULATOR_FAULTS) <= fired, fired
    assert data["double_faults"] > 10  # sessions with a second fault on top
    assert {0, 8} <= set(data["exits"]) and set(data["exits"]) - {0, 8}
    assert data["reconciled"].get("applied") and data["reconciled"].get("not applied")


@pytest.mark.slow
def test_short_campaign_finds_no_wrong_verdict(tmp_path):
    """The same seeded sessions through real processes, on sockets and on ptys (no sweep: the
    in-process test above cuts every byte)."""
    summary = run_campaign(REAL_SESSIONS, seed=CI_SEED, workers=2, timeout=0.3, sweep=False, link="mixed")
    data = summary.as_dict()
    assert data["violations"] == [], data["violations"][:5]
    assert data["sessions"] == REAL_SESSIONS
    assert data["links"]["tcp"] and data["links"]["pty"]  # sessions on sockets and on ptys
    fired = {name.split(":")[0] for name in data["faults_fired"]}
    assert {"none", "proxy", "emulator"} <= fired, data["faults_fired"]  # both layers of fault, and none
    assert {0, 8} <= set(data["exits"]) and set(data["exits"]) - {0, 8}
    assert data["reconciled"].get("applied") and data["reconciled"].get("not applied")


@pytest.mark.slow
def test_spawned_ithcli_agrees_with_the_warm_one(tmp_path):
    """The long campaign forks ithcli from a pre-imported process (warm.py); the same checks
    also hold for a fresh `python -m ithcli` per run, the way a user starts it."""
    summary = run_campaign(SPAWNED_SESSIONS, seed=CI_SEED, workers=2, timeout=0.3, sweep=False, launch="spawn")
    data = summary.as_dict()
    assert data["violations"] == [], data["violations"][:5]
    assert data["sessions"] == SPAWNED_SESSIONS and {0, 8} <= set(data["exits"])


def test_a_warm_ithcli_run_is_a_separate_process_with_its_own_exit_and_output(tmp_path):
    warm = WarmCli(tmp_path)
    try:
        env = {"PATH": os.environ.get("PATH", ""), "ITHCLI_STATE_DIR": str(tmp_path / "state"),
               "ITHCLI_KEY_STORE": str(tmp_path / "keys")}
        rc, out, err = warm.run(["--version"], env, 30)
        assert rc == 0 and "ithcli" in out and err == ""
        # a usage error: exit 2, its message on stderr, and under --json the error object on stdout
        rc, out, err = warm.run(["--json", "program", "--dose", "1 mg/day", "--bogus"], env, 30)
        assert rc == 2 and json.loads(out)["error"]["kind"] == "usage" and "--bogus" in err
        # a real failure through ithcli's own error mapping: no such port, exit 3 (link)
        rc, out, err = warm.run(["--json", "--port", "/dev/ithcli-no-such-port", "interrogate"], env, 30)
        assert rc == 3 and json.loads(out)["error"]["exit_code"] == 3
        assert err.startswith("ithcli: error:") and "Traceback" not in err
    finally:
        warm.close()


def test_a_commit_held_past_the_timeout_on_a_serial_line_lands_and_reconcile_learns_it(tmp_path):
    """On a pty nothing closes when ithcli gives up: a COMMIT held on the line past its
    timeout still reaches the pump, before the next run's bytes. ithcli must have said
    unconfirmed (8), never failed, and reconcile must find it applied."""
    w = Worker(0, tmp_path / "w", 0.3, link="pty").start()
    try:
        assert w.proxy is not None and w.proxy.url.startswith("/dev/")
        plan = {"layer": "proxy", "write": "bolus",
                "fault": {"kind": "delay", "direction": "to_pump", "target": "commit", "delay": 1.0}}
        r = w.session(1, 1, plan)
        assert r["fault"]["fault"]["fired"], r
        assert (r["exit"], r["outcome"]) == (8, "unconfirmed"), r
        assert r["reconcile"]["applied"] is True and r["truth"] == "new" and r["violations"] == [], r
        # and the line still works for the next session
        assert w.session(2, 1, {"layer": "none", "write": "program"})["exit"] == 0
    finally:
        w.stop()


def test_the_checks_catch_a_wrong_verdict(tmp_path, monkeypatch):
    """The campaign is only proof if it fails on a lie: make ithcli's verdict wrong and see (in
    process: the checks are Worker.session's, whatever runs the pump and ithcli)."""
    w = LoopWorker(0, tmp_path / "w", 0.3).start()
    try:
        real_cli = w.cli
        drop = {"layer": "emulator", "name": "drop_commit_reply", "count": 1}
        mismatch = {"layer": "emulator", "name": "mismatch_on_commit", "count": 1}
        cases = [(3, dict(drop, write=kind), "new") for kind in SWEEP_KINDS]  # really 8 (unconfirmed)
        cases += [(0, dict(mismatch, write=kind), "other") for kind in ("program", "refill")]  # really 7
        for lie, plan, truth in cases:
            def lying_cli(*args, lie=lie):
                rc, out, err = real_cli(*args)
                return (lie, out, err) if args[0] != "reconcile" else (rc, out, err)

            monkeypatch.setattr(w, "cli", lying_cli)
            r = w.session(1, 1, plan)
            assert r["truth"] == truth
            assert r["violations"], r
            monkeypatch.setattr(w, "cli", real_cli)
            w.cli("reconcile")
            assert w.session(2, 1, {"layer": "none", "write": plan["write"]})["violations"] == []
    finally:
        w.stop()


#: what classify reads of a status (the reservoir and the bolus) on top of any valid one
STATUS = bodies.Status(
    serial_number="C1", model=PumpModel.PERISTALTIC_40, firmware=bodies.Firmware(1, 0, 0), pump_time=0,
    drug=Drug(1), concentration_ng_per_ml=10_000_000, mode=InfusionMode.CONTINUOUS,
    daily_dose_ng_per_day=2_000_000, daily_volume_nl_per_day=200_000, current_rate_nl_per_day=200_000,
    reservoir_ul=30_000, capacity_ul=40_000, low_reservoir_alarm_ul=2_000, battery_state=BatteryState.OK,
    battery_percent=90, eri_at=0, replace_by=0, alarms=Alarm(0), mri_mode=MriMode.OFF, mri_auto_exit_at=0,
    last_txid=0, last_programmed_at=0, bolus_remaining_ng=0, event_count=0, auth_failures=0,
    catheter=NO_CATHETER, ptm=PTM_OFF, ptm_use=PTM_UNUSED, patient=NO_PATIENT)


def _therapy(dose=2_000_000, conc=10_000_000, reservoir=30_000, bolus=0, start=0, rate=None):
    rate = rate_for_dose(dose, conc) if rate is None else rate
    program = bodies.Program(mode=InfusionMode.CONTINUOUS, drug=Drug(1), concentration_ng_per_ml=conc,
                             daily_dose_ng_per_day=dose, daily_volume_nl_per_day=rate,
                             steps=(bodies.DeliveredStep(start, dose, rate),))
    return dataclasses.replace(STATUS, reservoir_ul=reservoir, bolus_remaining_ng=bolus), program


@pytest.mark.parametrize("write, after, expected", [
    (Write("program", (), dose_ng=2_500_000), _therapy(dose=2_500_000), "new"),
    (Write("program", (), dose_ng=2_500_000), _therapy(dose=2_750_000), "other"),  # a lying pump
    (Write("program", (), dose_ng=2_500_000), _therapy(dose=2_500_000, reservoir=29_000), "other"),
    (Write("program", (), dose_ng=2_500_000), _therapy(dose=2_500_000, start=60), "other"),
    (Write("program", (), dose_ng=2_500_000), _therapy(dose=2_500_000, rate=260_000), "other"),  # wrong pump rate
    (Write("refill", (), reservoir_ul=35_000, concentration_ng_per_ml=20_000_000),
     _therapy(conc=20_000_000, reservoir=35_000), "new"),
    (Write("refill", (), reservoir_ul=35_000, concentration_ng_per_ml=20_000_000),
     _therapy(conc=10_000_000, reservoir=35_000), "other"),  # the fill without the new concentration
    (Write("refill", (), reservoir_ul=35_000, concentration_ng_per_ml=20_000_000),
     _therapy(conc=20_000_000, reservoir=35_000, rate=200_000), "other"),  # the old flow kept: twice the dose
    (Write("refill", (), reservoir_ul=35_000, concentration_ng_per_ml=20_000_000),
     _therapy(dose=2_200_000, conc=20_000_000, reservoir=35_000), "other"),  # the dose not kept
    (Write("bolus", (), dose_ng=300_000), _therapy(bolus=300_000), "new"),
    (Write("bolus", (), dose_ng=300_000), _therapy(bolus=600_000), "other"),  # applied twice
    (Write("bolus", (), dose_ng=300_000), _therapy(dose=2_500_000, bolus=300_000), "other"),
    (Write("bolus", (), dose_ng=300_000), _therapy(), "old"),
])
def test_the_oracle_tells_old_new_and_anything_else_apart(write, after, expected):
    assert classify(write, _therapy(), after) == expected


def test_after_a_cut_the_pty_proxy_never_hands_out_the_dead_device_path(tmp_path):
    """Found by the 100,000-session run (1 session): the cut closes the pty first and the
    emulator connection after; a run started in between was given the closed path."""
    class SlowToClose(socket.socket):
        def close(self):  # widen the window between the pty's close and the thread's end
            time.sleep(0.5)
            super().close()

    class Proxy(PtyFaultProxy):
        def _upstream(self):
            sock = super()._upstream()
            return SlowToClose(fileno=sock.detach())

    emulator = EmulatorProcess(tmp_path / "pump", ["--time-scale", "1e-9"]).start()
    proxy = Proxy(emulator.address)
    try:
        first = proxy.url
        proxy.arm([Fault(kind="cut", direction="to_pump", target="any", offset=3)])
        fd = os.open(first, os.O_RDWR | os.O_NOCTTY)
        os.write(fd, encode(Command.HELLO, bodies.HelloRequest(PROTOCOL_VERSION, security.new_nonce(), Role.READER),
                            seq=1))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the cut: the line hangs up
            try:
                if not os.read(fd, 100):
                    break
            except OSError:
                break
        os.close(fd)
        second = proxy.url  # asked at once, while the old line is still closing
        fd = os.open(second, os.O_RDWR | os.O_NOCTTY)  # a live device, not the dead one
        os.close(fd)
    finally:
        proxy.close()
        emulator.stop()
        emulator.cleanup()
