"""The fault campaign (ithcli_campaign), short enough for CI; docs/reliability.md has the long one.

Real processes only: ith-emulator and ithcli run as subprocesses, the fault proxy
sits between them, and a separate fault-free session reads the pump's truth.
"""
from __future__ import annotations

import pytest

from ithcli_campaign.proxy import KINDS, TO_CLI, TO_PUMP
from ithcli_campaign.runner import EMULATOR_FAULTS, Worker, run_campaign

CI_SESSIONS = 200
CI_SEED = 20260701


@pytest.mark.slow
def test_short_campaign_finds_no_wrong_verdict(tmp_path):
    summary = run_campaign(CI_SESSIONS, seed=CI_SEED, workers=2, timeout=0.3, sweep=True)
    data = summary.as_dict()
    assert data["violations"] == [], data["violations"][:5]
    # the cut sweep reached every byte offset of the COMMIT frame and of its reply, and past the end
    for direction in (TO_PUMP, TO_CLI):
        length = data["commit_frame_len"][direction]
        assert set(range(length + 1)) <= set(data["cut_offsets"][direction]), direction
    # every fault was exercised, and every kind of verdict was reached
    fired = {name.split(":")[1] for name in data["faults_fired"] if name != "none"}
    assert set(KINDS) | set(EMULATOR_FAULTS) <= fired, fired
    assert {0, 8} <= set(data["exits"]) and set(data["exits"]) - {0, 8}
    assert data["reconciled"].get("applied") and data["reconciled"].get("not applied")


def test_the_checks_catch_a_wrong_verdict(tmp_path):
    """The campaign is only proof if it fails on a lie: make ithcli's verdict wrong and see."""
    w = Worker(0, tmp_path / "w", 0.3).start()
    try:
        real_cli = w.cli
        cases = [(3, {"layer": "emulator", "name": "drop_commit_reply", "count": 1}, "new"),  # really 8
                 (0, {"layer": "emulator", "name": "mismatch_on_commit", "count": 1}, "other")]  # really 7
        for lie, plan, truth in cases:
            def lying_cli(*args, lie=lie):
                rc, out, err = real_cli(*args)
                return (lie, out, err) if args[0] == "program" else (rc, out, err)

            w.cli = lying_cli
            r = w.session(1, 1, plan)
            assert r["truth"] == truth
            assert r["violations"], r
            w.cli = real_cli
            w.cli("reconcile")
            assert w.session(2, 1, {"layer": "none"})["violations"] == []
    finally:
        w.stop()
