"""Batch plans over a ward: one `ith-emulator --pumps N` process, 50 pumps, on ptys and on TCP.

The plan takes its targets from the ward's manifest (targets_from), the key store is paired
from it (`keys pair --from`), and `ithcli batch run` drives every pump from one thread.
Each pump's state is read back with the raw protocol (not through ithcli): what the pump
really holds and what it really applied (TX_APPLIED in its own log).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import Cli
from emulator_harness import REPO, STARTER, RawClient, read_log
from emulator_harness import status as pump_status

from ithcli import emulator_process
from ithcli.audit import AuditLog
from ithcli.ward_manifest import WardPump
from protocol import EventType

PUMPS = 50
FROZEN = ("--time-scale", "1e-9")  # the pump clocks move only when a test says so
#: the ward's pumps: morphine 10 mg/mL at 0.2 mL/day, so 2 mg/day
PROGRAM = '''[[step]]
action = "program"
dose = "2.5 mg/day"

[[step]]
action = "assert"
check = "daily_dose.value == 2.5"
'''


@pytest.fixture(params=["pty", "tcp"])
def ward(request, tmp_path):
    listen = ["--listen", "127.0.0.1:0"] if request.param == "tcp" else []
    started = emulator_process.start_ward([*listen, *FROZEN], pumps=PUMPS, ward_dir=str(tmp_path / "ward"),
                                          starter=STARTER, cwd=str(REPO))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def cli(tmp_path, ward):
    cli = Cli(tmp_path / "state")
    store = {"ITHCLI_KEY_STORE": str(tmp_path / "keys")}
    paired = cli("keys", "pair", "--from", ward.manifest_path, env=store)
    assert paired.code == 0, paired.stderr
    return lambda *args: cli(*args, env=store)


def write_plan(path: Path, manifest: str, steps: str = PROGRAM) -> Path:
    path.write_text(f'[plan]\nversion = 1\nname = "ward"\ntargets_from = "{manifest}"\n\n{steps}')
    return path


def applied(pump: WardPump) -> list[int]:
    """The txids the pump's own log says it applied."""
    with RawClient(pump.url, keys=pump.keys()) as client:
        total = pump_status(client).event_count
        return [e.arg1 for e in read_log(client) if e.type == EventType.TX_APPLIED and e.index < total]


def dose_ng(pump: WardPump) -> int:
    with RawClient(pump.url, keys=pump.keys()) as client:
        dose: int = pump_status(client).daily_dose_ng_per_day
        return dose


def by_serial(result) -> dict[str, dict]:
    return {t["serial_number"]: t for t in result.json()["targets"]}


def test_a_write_plan_over_a_ward_is_applied_and_read_back_on_every_pump(ward, cli, tmp_path):
    plan = write_plan(tmp_path / "plan.toml", ward.manifest_path)
    result = cli("--json", "batch", "run", str(plan), "--yes", "--jobs", "16")
    assert result.code == 0, result.stderr
    targets = by_serial(result)
    assert sorted(targets) == sorted(p.serial for p in ward.pumps)  # every pump of the manifest, once
    assert result.json()["summary"] == {"ok": PUMPS}
    for pump in ward.pumps:
        program, check = targets[pump.serial]["steps"]
        assert (program["outcome"], program["detail"]) == ("confirmed", "verified by read-back")
        assert check["outcome"] == "confirmed"
        assert applied(pump) == [program["txid"]]  # the pump's own log: this write, once
        assert dose_ng(pump) == 2_500_000
    # the journal says so too, one confirmed program step a pump
    records = [json.loads(line) for line in (tmp_path / "plan.journal.jsonl").read_text().splitlines()]
    assert sorted(r["serial"] for r in records if r["state"] == "confirmed") == sorted(p.serial for p in ward.pumps)
    # the audit log: one unbroken chain, every pump's exchanges in the order they happened (reads are
    # written a runner turn at a time, writes at once: neither may be lost or overtake the other)
    log = AuditLog(tmp_path / "state" / "audit.jsonl")
    _, problems = log.verify()
    assert problems == []
    sequences: dict[str, list[str]] = {}
    for entry in log.records():
        if entry["event"] == "exchange" and entry["command"] in ("HELLO", "AUTH"):
            assert entry["request"] == {"role": "CLINICIAN"}  # a write plan's one session a pump, by name
        if entry["event"] == "exchange":
            # by port: HELLO and AUTH come before the pump has said its serial number
            sequences.setdefault(entry["port"], []).append(f"{entry['command']} {entry['outcome']}")
    assert sorted(sequences) == sorted(p.url for p in ward.pumps)
    first = sequences[ward.pumps[0].url]
    assert all(seq == first for seq in sequences.values())
    commands = [step.split()[0] for step in first]
    assert commands[:3] == ["HELLO", "AUTH", "INTERROGATE"]  # preflight reads before anything is written
    prepare, commit = commands.index("PREPARE_PROGRAM"), commands.index("COMMIT")
    assert prepare < commit < len(commands) - 1 and "INTERROGATE" in commands[commit:]  # read back after
    assert all(step.endswith(" ok") for step in first)


def test_a_fault_on_one_pump_stops_the_run_and_a_resume_finishes_the_rest_sending_nothing_twice(ward, cli, tmp_path):
    faulty = ward.pumps[PUMPS // 2]
    ward.control(faulty.serial, "fault", name="drop_commit_reply")  # applied, but its reply never comes
    plan = write_plan(tmp_path / "plan.toml", ward.manifest_path)
    # one pump at a time: the pumps before the faulty one are done when it fails, the rest queued
    first = cli("--json", "--timeout", "0.5", "batch", "run", str(plan), "--yes", "--jobs", "1")
    assert first.code == 8, first.stderr  # something is unconfirmed
    targets = by_serial(first)
    assert targets[faulty.serial]["outcome"] == "unconfirmed"
    done, stopped = ward.pumps[:PUMPS // 2], ward.pumps[PUMPS // 2 + 1:]
    assert {targets[p.serial]["outcome"] for p in done} == {"ok"}
    assert {targets[p.serial]["outcome"] for p in stopped} == {"stopped"}  # the run stopped at the failure
    assert {s["outcome"] for p in stopped for s in targets[p.serial]["steps"]} == {"not-run"}
    for pump in done:  # as reported: written and verified
        assert len(applied(pump)) == 1 and dose_ng(pump) == 2_500_000
    for pump in stopped:  # as reported: nothing sent
        assert applied(pump) == [] and dose_ng(pump) == 2_000_000
    assert len(applied(faulty)) == 1  # it did land: only its reply was lost

    ward.control(faulty.serial, "fault", name="drop_commit_reply", count=0)
    second = cli("--json", "batch", "run", str(plan), "--yes", "--jobs", "4")
    assert second.code == 0, second.stderr
    steps = {serial: t["steps"][0]["outcome"] for serial, t in by_serial(second).items()}
    assert steps[faulty.serial] == "resumed"  # settled by reading the pump, not sent again
    assert {steps[p.serial] for p in done} == {"skipped"}
    assert {steps[p.serial] for p in stopped} == {"confirmed"}
    for pump in ward.pumps:  # every pump written exactly once over both runs
        assert len(applied(pump)) == 1 and dose_ng(pump) == 2_500_000


def test_with_continue_on_error_a_fault_on_one_pump_leaves_the_others_done(ward, cli, tmp_path):
    faulty = ward.pumps[3]
    ward.control(faulty.serial, "fault", name="drop_commit_reply")
    plan = write_plan(tmp_path / "plan.toml", ward.manifest_path)
    result = cli("--json", "--timeout", "0.5", "batch", "run", str(plan), "--yes", "--continue-on-error",
                 "--jobs", "16")
    assert result.code == 8, result.stderr
    targets = by_serial(result)
    assert result.json()["summary"] == {"ok": PUMPS - 1, "unconfirmed": 1}
    assert targets[faulty.serial]["outcome"] == "unconfirmed"
    assert "COMMIT" in targets[faulty.serial]["detail"] and "NOT re-sent" in targets[faulty.serial]["detail"]
    for pump in ward.pumps:
        assert len(applied(pump)) == 1


def test_a_plan_naming_a_missing_manifest_is_one_line_and_touches_no_pump(ward, cli, tmp_path):
    plan = write_plan(tmp_path / "plan.toml", "no-such-ward.json")
    result = cli("--json", "batch", "run", str(plan), "--yes")
    assert result.code == 2
    error = result.json()["error"]["message"]
    assert "\n" not in error and "no-such-ward.json" in error and "targets_from" in error
    assert all(applied(p) == [] for p in ward.pumps[:3])


def test_a_second_ctrl_c_ends_the_commit_in_flight_unconfirmed_and_a_resume_settles_it(ward, cli, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from cli_harness import cli_env

    stuck = ward.pumps[0]
    ward.control(stuck.serial, "fault", name="drop_commit_reply")  # applied; its reply never comes
    plan = write_plan(tmp_path / "plan.toml", ward.manifest_path)
    journal = tmp_path / "plan.journal.jsonl"
    env = cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "state"), "ITHCLI_KEY_STORE": str(tmp_path / "keys")})
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", "--json", "--timeout", "60", "batch", "run", str(plan),
                             "--yes", "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(REPO))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.exists() and '"sent"' in journal.read_text()):
        time.sleep(0.02)
    time.sleep(0.2)  # the COMMIT is out; its reply would take the whole 60 s timeout
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # the first: nothing new starts; the pump in flight goes on waiting
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # the second: the pending exchange is given up
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 20  # not the 60 s reply timeout
    last = {}
    for line in journal.read_text().splitlines():
        record = json.loads(line)
        last[(record["serial"], record["step"])] = record["state"]
    assert last[(stuck.serial, 1)] == "unconfirmed"  # never left "sent", never re-sent
    assert [serial for serial, _ in last] == [stuck.serial]  # no other pump was started
    assert len(applied(stuck)) == 1

    ward.control(stuck.serial, "fault", name="drop_commit_reply", count=0)
    again = cli("--json", "batch", "run", str(plan), "--yes", "--jobs", "8")
    assert again.code == 0, again.stderr
    assert by_serial(again)[stuck.serial]["steps"][0]["outcome"] == "resumed"
    assert all(len(applied(p)) == 1 for p in ward.pumps)
