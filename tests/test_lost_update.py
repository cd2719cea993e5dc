"""No lost updates: a change is committed only against the state it was checked against.

Every PREPARE carries based_on_txid (the last_txid ithcli read); the pump refuses it
CHANGED_SINCE_READ when another write landed in between (docs/protocol.md, "Two-phase
writes"). Deterministic in process through the real handler, and end to end: a second
programmer's change slipped between a real ithcli's read and its PREPARE, the PREPARE
held in the fault proxy until the other change is verified (a "hold" fault, released by
the test: the order never depends on how fast the machine is). tests/test_race.py runs the two at once, many times.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cli_harness import cli_env, run_cli, trust
from loopback import Loopback, new_pump, open_session

from ithcli_campaign.proxy import TO_PUMP, Fault, FaultProxy
from ithcli_campaign.pump import TruthClient
from protocol import ErrorReason, EventType, InfusionMode, bodies
from protocol.session import Refused, Reply

FROZEN = 1e-9


def _prepare(pump_link, client, txid, based_on, dose):
    body = bodies.PrepareProgramRequest(txid=txid, based_on_txid=based_on, mode=InfusionMode.CONTINUOUS,
                                        drug=pump_link.pump.drug,
                                        concentration_ng_per_ml=pump_link.pump.concentration_ng_per_ml,
                                        steps=(bodies.ProgramStep(0, dose),))
    return client.receive_data(pump_link.send(client.request(body)))[0]


def _commit(pump_link, client, txid):
    return client.receive_data(pump_link.send(client.request(bodies.CommitRequest(txid))))[0]


def test_read_then_another_commit_then_prepare_is_refused_and_a_fresh_read_works():
    pump = new_pump()
    a_link, b_link = Loopback(pump), Loopback(pump)
    a, b = open_session(a_link), open_session(b_link)
    [status] = a.receive_data(a_link.send(a.request(bodies.InterrogateRequest())))  # A reads
    assert isinstance(status, Reply), status
    read = bodies.expect(status.body, bodies.Status).last_txid
    assert isinstance(_prepare(b_link, b, 10, read, 3_000_000), Reply)  # B changes the pump
    assert isinstance(_commit(b_link, b, 10), Reply)
    refused = _prepare(a_link, a, 11, read, 4_000_000)  # A's change, checked against the old state
    assert isinstance(refused, Refused) and refused.reason == ErrorReason.CHANGED_SINCE_READ
    assert "applied txid 10" in refused.detail
    assert pump.pending is None and pump.program.daily_dose_ng() == 3_000_000
    assert isinstance(_prepare(a_link, a, 12, pump.last_txid, 4_000_000), Reply)  # from the new state
    assert isinstance(_commit(a_link, a, 12), Reply) and pump.program.daily_dose_ng() == 4_000_000


def hold_prepare() -> Fault:
    """Hold this programmer's PREPARE on its way to the pump until the proxy's release(): it has read
    the pump, nothing more. A fixed delay would make the interleaving depend on how fast the
    machine is; a hold does not."""
    return Fault("hold", direction=TO_PUMP, target="prepare")


def address(emu) -> tuple[str, int]:
    host, _, port = emu.url.removeprefix("socket://").rpartition(":")
    return host, int(port)


def audit(state_dir: Path) -> list[dict]:
    path = Path(state_dir) / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def slip_a_change_in(emu, first_env: dict, second_env: dict) -> tuple[int, str, str, int]:
    """The first programmer (first_env) reads the pump and asks for 3 mg/day; its PREPARE is held
    until the second programmer's change to 2.5 mg/day is verified, then let go. The first's exit
    code, stdout and stderr, and the second's txid (tests/test_fhir.py charts the same refusal)."""
    proxy = FaultProxy(address(emu))
    first = None
    try:
        proxy.arm([hold_prepare()])
        first = subprocess.Popen([sys.executable, "-m", "ithcli", "--port", proxy.url, "--timeout", "30", "--json",
                                  "program", "--dose", "3 mg/day", "--yes"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=first_env)
        deadline = time.monotonic() + 30  # a guard against a hang, not a measured time
        while not proxy.holding():
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = run_cli("--port", emu.url, "--json", "program", "--dose", "2.5 mg/day", "--yes", env=second_env)
        assert second.code == 0, second.stderr
        assert second.json()["verified"] is True
        proxy.release()
        out, err = first.communicate(timeout=60)
        return first.returncode, out, err, second.json()["txid"]
    finally:
        proxy.close()
        if first is not None and first.poll() is None:
            first.kill()
            first.communicate()


def test_a_change_slipped_in_between_read_and_prepare_is_refused_and_shown(start_emulator, tmp_path):
    emu = start_emulator(transport="tcp", time_scale=FROZEN)
    trust(emu)
    first_env = cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "first"), "ITHCLI_OPERATOR": "first"})
    second_env = {"ITHCLI_STATE_DIR": str(tmp_path / "second"), "ITHCLI_OPERATOR": "second"}
    truth = TruthClient(address(emu), emu.keys["reader"])
    log_start = truth.status().event_count
    returncode, out, err, second_txid = slip_a_change_in(emu, first_env, second_env)
    assert returncode == 5, err
    assert "Traceback" not in err and err.startswith("ithcli: error: ") and len(err.splitlines()) == 1, err
    error = json.loads(out)["error"]
    assert error["exit_code"] == 5
    assert "changed by someone else since ithcli read it" in error["message"]
    assert "Nothing was committed" in error["message"] and "daily dose 2 mg/day -> 2.5 mg/day" in error["message"]
    assert json.loads(out)["outcome"] == "not-committed"
    # the pump: only the second change was applied, and it stands
    applied = [e.arg1 for e in truth.events_since(log_start) if e.type == EventType.TX_APPLIED]
    assert applied == [second_txid]
    after = run_cli("--port", emu.url, "--json", "interrogate", env=second_env).json()
    assert after["daily_dose"] == {"value": 2.5, "unit": "mg/day"}
    truth.close()
    # the first programmer's own records: its PREPARE was checked against the old state and
    # refused; no COMMIT went out, nothing is pending, nothing is recorded as verified
    records = audit(tmp_path / "first")
    prepares = [r for r in records if r.get("command") == "PREPARE_PROGRAM"]
    assert len(prepares) == 1 and prepares[0]["request"]["based_on_txid"] == 0
    assert not [r for r in records if r.get("command") == "COMMIT" or r.get("event") == "verified"]
    assert not list((tmp_path / "first" / "pending").glob("*.json"))
    again = run_cli("--port", emu.url, "--json", "program", "--dose", "3 mg/day", "--yes",
                    env={"ITHCLI_STATE_DIR": str(tmp_path / "first"), "ITHCLI_OPERATOR": "first"})
    assert again.code == 0, again.stderr  # a fresh run works from the new state
    assert again.json()["verified"] is True
