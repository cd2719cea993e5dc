"""No lost updates: a change is committed only against the state it was checked against.

Every PREPARE carries based_on_txid (the last_txid ithcli read); the pump refuses it
CHANGED_SINCE_READ when another write landed in between (docs/protocol.md, "Two-phase
writes"). Deterministic in process through the real handler, and end to end: a second
programmer's change slipped between a real ithcli's read and its PREPARE.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from cli_harness import cli_env, run_cli, trust
from ithcli_campaign.proxy import TO_PUMP, Fault, FaultProxy
from loopback import Loopback, new_pump, open_session
from protocol import Command, ErrorReason, InfusionMode
from protocol.session import Refused, Reply

FROZEN = 1e-9


def _prepare(pump_link, client, txid, based_on, dose):
    body = {"txid": txid, "based_on_txid": based_on, "mode": InfusionMode.CONTINUOUS,
            "drug": pump_link.pump.drug, "concentration_ng_per_ml": pump_link.pump.concentration_ng_per_ml,
            "steps": [{"start_minute": 0, "dose_ng_per_day": dose}]}
    return client.receive_data(pump_link.send(client.request(Command.PREPARE_PROGRAM, body)))[0]


def _commit(pump_link, client, txid):
    return client.receive_data(pump_link.send(client.request(Command.COMMIT, {"txid": txid})))[0]


def test_read_then_another_commit_then_prepare_is_refused_and_a_fresh_read_works():
    pump = new_pump()
    a_link, b_link = Loopback(pump), Loopback(pump)
    a, b = open_session(a_link), open_session(b_link)
    read = a.receive_data(a_link.send(a.request(Command.INTERROGATE)))[0].body["last_txid"]  # A reads
    assert isinstance(_prepare(b_link, b, 10, read, 3_000_000), Reply)  # B changes the pump
    assert isinstance(_commit(b_link, b, 10), Reply)
    refused = _prepare(a_link, a, 11, read, 4_000_000)  # A's change, checked against the old state
    assert isinstance(refused, Refused) and refused.reason == ErrorReason.CHANGED_SINCE_READ
    assert "applied txid 10" in refused.detail
    assert pump.pending is None and pump.program.daily_dose_ng() == 3_000_000
    assert isinstance(_prepare(a_link, a, 12, pump.last_txid, 4_000_000), Reply)  # from the new state
    assert isinstance(_commit(a_link, a, 12), Reply) and pump.program.daily_dose_ng() == 4_000_000


def test_a_change_slipped_in_between_read_and_prepare_is_refused_and_shown(start_emulator):
    emu = start_emulator(transport="tcp", time_scale=FROZEN)
    trust(emu)
    host, port = emu.url.removeprefix("socket://").split(":")
    proxy = FaultProxy((host, int(port)))
    try:
        # the first programmer's PREPARE is held 2 s on its way: long enough for another to commit
        proxy.arm([Fault("delay", direction=TO_PUMP, target="prepare", delay=2.0)])
        first = subprocess.Popen([sys.executable, "-m", "ithcli", "--port", proxy.url, "--json", "program",
                                  "--dose", "3 mg/day", "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=cli_env())
        deadline = time.monotonic() + 20
        while not any(f.fired for f in proxy._faults):  # the PREPARE is now held
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = run_cli("--port", emu.url, "--json", "program", "--dose", "2.5 mg/day", "--yes")
        assert second.code == 0, second.stderr
        out, err = first.communicate(timeout=30)
    finally:
        proxy.close()
    assert first.returncode == 5, err
    error = json.loads(out)["error"]
    assert "changed by someone else since ithcli read it" in error["message"]
    assert "Nothing was committed" in error["message"] and "daily dose 2 mg/day -> 2.5 mg/day" in error["message"]
    after = run_cli("--port", emu.url, "--json", "interrogate").json()
    assert after["daily_dose"] == {"value": 2.5, "unit": "mg/day"}  # the second change stands
    again = run_cli("--port", emu.url, "--json", "program", "--dose", "3 mg/day", "--yes")
    assert again.code == 0, again.stderr  # a fresh run works from the new state
