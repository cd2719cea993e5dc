"""The fault campaign takes the protocol-version-4 writes like the others (issue 18).

The catheter record (implant, revision, correction), the priming bolus, a refill with or
without its bridge bolus, the pump's clock (a step over 24 h too) and the patient-bolus
limits are drawn among the campaign's sessions, each judged against what the pump must show
(ithcli_campaign/oracle.py), with the patient pressing the handheld between sessions. The
campaign's summary is the one tests/test_campaign.py checks (tests/campaign_loop.py runs it
once); the oracle's own checks are shown to catch a wrong verdict for each new kind.
"""
from __future__ import annotations

import dataclasses

import pytest
from campaign_loop import LoopWorker, in_process_campaign
from test_campaign import STATUS

from ithcli_campaign.oracle import classify
from ithcli_campaign.runner import WRITE_KINDS
from ithcli_campaign.writes import Write
from protocol import Drug, InfusionMode, PumpModel, bodies
from protocol.catheter import dead_space_nl, revision_priming_nl
from protocol.constants import CatheterAction, CatheterModel
from protocol.ptm import PTM_OFF
from protocol.therapy import rate_for_dose

NEW_LABELS = ("refill:bridge", "refill:no-bridge", "catheter:implant", "catheter:revise", "catheter:correct",
              "priming", "clock:minutes", "clock:hours", "clock:days", "ptm:set", "ptm:off")


def _by_kind(verdicts: dict) -> dict:
    out: dict = {}
    for label, counts in verdicts.items():
        kind = out.setdefault(label.partition(":")[0], {})
        for verdict, n in counts.items():
            kind[verdict] = kind.get(verdict, 0) + n
    return out


def test_every_new_write_occurs_in_the_campaign_and_is_judged():
    data = in_process_campaign()
    assert data["violations"] == [], data["violations"][:5]
    verdicts = data["verdicts"]
    for label in NEW_LABELS:  # each drawn, and applied exactly as meant at least once
        assert verdicts.get(label, {}).get("truth new"), (label, verdicts.get(label))
    for kind, counts in _by_kind(verdicts).items():
        assert kind in WRITE_KINDS
        # each kind verified, and unconfirmed both ways with reconcile learning which
        assert counts.get("verified"), (kind, counts)
        assert counts.get("unconfirmed: applied") and counts.get("unconfirmed: not applied"), (kind, counts)
        assert sum(n for v, n in counts.items() if not v.startswith("truth ")) == data["writes"][kind]
    # the patient pressed the handheld between sessions: granted, and refused by the pump's rules
    activations = data["activations"]
    assert any(a.startswith("granted") for a in activations), activations
    assert any(a.startswith("refused") for a in activations), activations


def test_the_checks_catch_a_wrong_verdict_for_the_new_writes(tmp_path, monkeypatch):
    """For each new kind, ithcli made to lie both ways: an applied write (its reply dropped, really
    unconfirmed) reported failed, and one the pump never applied (reset before COMMIT) reported
    verified. The campaign must flag every one."""
    w = LoopWorker(0, tmp_path / "w", 0.3).start()
    try:
        real_cli = w.cli
        applied = {"layer": "emulator", "name": "drop_commit_reply", "count": 1}
        lost = {"layer": "emulator", "name": "reset_on_commit", "count": 1}
        # a revision first, so that priming is due for the priming sessions
        kinds = ("catheter:revise", "priming", "catheter:implant", "priming", "catheter:correct", "refill:bridge",
                 "clock:days", "clock:minutes", "ptm:set", "ptm:off")
        for number, kind in enumerate(kinds):
            for lie, plan, truth in ((3, dict(applied, write=kind), "new"), (0, dict(lost, write=kind), "old")):
                if truth == "new" and kind == "priming":  # primed by the first lie: arm it again
                    assert w.session(99, 1, {"layer": "none", "write": "catheter:revise"})["truth"] == "new"
                def lying_cli(*args, lie=lie):
                    rc, out, err = real_cli(*args)
                    return (lie, out, err) if args[0] != "reconcile" else (rc, out, err)

                monkeypatch.setattr(w, "cli", lying_cli)
                r = w.session(number, 1, plan)
                monkeypatch.setattr(w, "cli", real_cli)
                assert (r["write"]["kind"], r["truth"]) == (kind.partition(":")[0], truth), r
                assert r["violations"], r
                w.cli("reconcile")
                w.finish_bolus()
    finally:
        w.stop()


# --- the oracle, kind by kind ----------------------------------------------------------------

NOW = 1_800_000_000
CATHETER = bodies.CatheterRecord(CatheterAction.IMPLANT, CatheterModel.STANDARD, 800, 0, NOW - 3600,
                                 dead_space_nl(PumpModel.PERISTALTIC_40, CatheterModel.STANDARD, 800), 0)
REVISED = dataclasses.replace(CATHETER, action=CatheterAction.REVISION, replaced_mm=150, recorded_at=NOW,
                              priming_due_nl=revision_priming_nl(CatheterModel.STANDARD, 150))
LIMITS = bodies.PtmLimits(enabled=1, dose_ng=200_000, duration_s=600, lockout_s=3600, max_per_day=4)


def _pump(conc=10_000_000, reservoir=30_000, bolus=0, catheter=CATHETER, ptm=PTM_OFF, time=NOW):
    rate = rate_for_dose(2_000_000, conc)
    program = bodies.Program(mode=InfusionMode.CONTINUOUS, drug=Drug(1), concentration_ng_per_ml=conc,
                             daily_dose_ng_per_day=2_000_000, daily_volume_nl_per_day=rate,
                             steps=(bodies.DeliveredStep(0, 2_000_000, rate),))
    status = dataclasses.replace(STATUS, pump_time=time, reservoir_ul=reservoir, bolus_remaining_ng=bolus,
                                 catheter=catheter, ptm=ptm)
    return status, program


BRIDGE = Write("refill", (), reservoir_ul=35_000, concentration_ng_per_ml=20_000_000, variant="bridge",
               bridge_ng=4_080_000)
PRIMING = Write("priming", (), dose_ng=390_000, catheter=dataclasses.replace(REVISED, priming_due_nl=0))


@pytest.mark.parametrize("write, before, after, expected", [
    (BRIDGE, _pump(), _pump(conc=20_000_000, reservoir=35_000, bolus=4_080_000), "new"),
    (BRIDGE, _pump(), _pump(conc=20_000_000, reservoir=35_000), "other"),  # the bridge not started
    (dataclasses.replace(BRIDGE, bridge_ng=0), _pump(), _pump(conc=20_000_000, reservoir=35_000), "new"),
    (Write("catheter", (), catheter=REVISED), _pump(), _pump(catheter=REVISED), "new"),
    (Write("catheter", (), catheter=REVISED), _pump(),
     _pump(catheter=dataclasses.replace(REVISED, priming_due_nl=CATHETER.dead_space_nl)), "other"),  # whole catheter
    (PRIMING, _pump(catheter=REVISED), _pump(catheter=PRIMING.catheter, bolus=390_000), "new"),
    (PRIMING, _pump(catheter=REVISED), _pump(catheter=REVISED, bolus=390_000), "other"),  # still due after it
    (PRIMING, _pump(catheter=REVISED), _pump(catheter=PRIMING.catheter, bolus=780_000), "other"),  # twice
    (Write("clock", (), clock_to=NOW + 90_000), _pump(), _pump(time=NOW + 90_000), "new"),
    (Write("clock", (), clock_to=NOW + 90_000), _pump(), _pump(time=NOW + 180_000), "other"),  # the step twice
    (Write("ptm", (), ptm=LIMITS), _pump(), _pump(ptm=LIMITS), "new"),
    (Write("ptm", (), ptm=LIMITS), _pump(), _pump(ptm=dataclasses.replace(LIMITS, max_per_day=5)), "other"),
    (Write("ptm", (), ptm=PTM_OFF), _pump(ptm=LIMITS), _pump(ptm=LIMITS), "old"),
    (Write("program", (), dose_ng=2_000_000), _pump(), _pump(ptm=LIMITS), "other"),  # a write changed the limits
])
def test_the_oracle_knows_what_each_new_write_must_do(write, before, after, expected):
    assert classify(write, before, after) == expected
