"""`ithcli patient` end to end (protocol version 5): the real ithcli against real emulator processes.
The record is written, read back, shown by interrogate, log and report, corrected, refused when it
must be, and it is where baclofen's spasticity origin comes from."""
from __future__ import annotations

import json

from cli_harness import assert_one_line_error
from test_cli_program import applied_txids, status

BACLOFEN = ("--drug", "baclofen", "--concentration", "2000 mcg/mL", "--flow", "0.25 mL/day")  # 500 mcg/day
RECORD = ("patient", "set", "--id", "MRN-0042117", "--initials", "ab", "--born", "1970-01-02",
          "--spasticity-origin", "spinal", "--yes")


def pump_patient(emu) -> dict:
    return emu.control("state")["patient"]


def test_record_show_correct_and_the_log(pump):
    emu, cli = pump(*BACLOFEN)
    shown = cli("--json", "patient", "show")
    assert shown.code == 0, shown.stderr
    assert shown.json()["patient"] is None and status(cli)["patient"] is None
    assert "Patient" in cli("interrogate").stdout and "not recorded" in cli("patient", "show").stdout

    recorded = cli("--json", *RECORD)
    assert recorded.code == 0, recorded.stderr
    out = recorded.json()
    assert out["outcome"] == "verified" and out["command"] == "patient" and out["action"] == "record"
    assert out["before"] is None
    after = out["after"]["patient"]
    assert {k: after[k] for k in ("id", "initials", "born", "spasticity_origin")} == {
        "id": "MRN-0042117", "initials": "AB", "born": "1970-01-02", "spasticity_origin": "spinal"}
    view = status(cli)["patient"]
    assert view == after and view["recorded_at"]
    human = cli("interrogate")
    assert human.code == 0 and "MRN-0042117 (AB, born 1970-01-02), spinal spasticity" in human.stdout
    assert pump_patient(emu)["patient_id"] == "MRN-0042117" and len(applied_txids(emu)) == 1

    # a second RECORD is refused, naming the recorded ID and the way to correct it; nothing is sent
    again = cli("patient", "set", "--id", "MRN-9", "--yes")
    assert_one_line_error(again, 6, "already records patient MRN-0042117", "--correct")
    assert len(applied_txids(emu)) == 1

    # a correction keeps what it is not given
    fixed = cli("--json", "patient", "set", "--correct", "--spasticity-origin", "cerebral", "--yes")
    assert fixed.code == 0, fixed.stderr
    assert fixed.json()["after"]["patient"] | {"recorded_at": None} == {
        "id": "MRN-0042117", "initials": "AB", "born": "1970-01-02", "spasticity_origin": "cerebral",
        "recorded_at": None}
    assert "(AB, born 1970-01-02), cerebral spasticity" in cli("patient", "show").stdout
    # the same again: nothing to send
    same = cli("--json", "patient", "set", "--correct", "--spasticity-origin", "cerebral", "--yes")
    assert same.code == 0 and same.json()["outcome"] == "unchanged" and len(applied_txids(emu)) == 2
    # a mistyped ID corrected, its initials cleared: the change of ID is warned about
    renamed = cli("--json", "patient", "set", "--correct", "--id", "MRN-0042171", "--initials", "", "--yes")
    assert renamed.code == 0, renamed.stderr
    assert any(w["rule"] == "patient-id-changes" for w in renamed.json()["warnings"])
    assert status(cli)["patient"]["initials"] is None and status(cli)["patient"]["id"] == "MRN-0042171"

    # the log says what changed, never who
    log = cli("--json", "log", "--type", "patient_recorded")
    assert log.code == 0, log.stderr
    texts = [e["description"] for e in log.json()["events"]]
    assert texts == ["patient recorded (spinal spasticity)",
                     "patient record corrected: spasticity origin changed (cerebral spasticity)",
                     "patient record corrected: ID, initials changed (cerebral spasticity)"]
    assert "MRN" not in log.stdout and "MRN" not in cli("log").stdout
    # and the audit log has every write, with its request
    audit = [json.loads(line) for line in open(cli.audit_path)]
    assert sum(1 for e in audit if e.get("command") == "PREPARE_PATIENT") == 3
    assert sum(1 for e in audit if e.get("event") == "verified" and e.get("kind") == "PATIENT") == 3


def test_bad_fields_are_refused_before_anything_is_sent(pump):
    emu, cli = pump(*BACLOFEN)
    before = pump_patient(emu)
    for args, fragment in [(("--id", "MRN 0042117"), "no spaces"),
                           (("--id", "X" * 25), "at most 24"),
                           (("--id", "MRN-1", "--initials", "A1"), "capital letters"),
                           (("--id", "MRN-1", "--initials", "ABCDE"), "capital letters"),
                           (("--id", "MRN-1", "--born", "02/01/1970"), "YYYY-MM-DD"),
                           (("--id", "MRN-1", "--born", "1970-02-30"), "not a calendar date"),
                           (("--id", "MRN-1", "--born", "1899-12-31"), "before 1900-01-01"),
                           (("--id", "MRN-1", "--born", "2999-01-01"), "after the pump's date"),
                           (("--initials", "AB"), "--id"),
                           (("--id", "MRN-1", "--spasticity-origin", "sideways"), "sideways")]:
        result = cli("patient", "set", *args, "--yes")
        assert result.code == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and fragment in result.stderr, (args, result.stderr)
    # a correction with no patient recorded
    assert_one_line_error(cli("patient", "set", "--correct", "--spasticity-origin", "spinal", "--yes"), 6,
                          "records no patient")
    assert applied_txids(emu) == [] and pump_patient(emu) == before


def test_the_pumps_origin_drives_baclofens_budget(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli(*RECORD).code == 0  # spinal: +30 % a day
    # +20 %: within spinal's budget, without being told the origin again
    ok = cli("--json", "program", "--dose", "600 mcg/day", "--yes")
    assert ok.code == 0, ok.stderr
    assert ok.json()["spasticity_origin"] == "spinal"
    # an origin given that contradicts the pump's record is refused, saying how to correct it
    contradiction = cli("program", "--dose", "650 mcg/day", "--yes", "--spasticity-origin", "cerebral")
    assert_one_line_error(contradiction, 6, "records the patient's spasticity as spinal",
                          "ithcli patient set --correct --spasticity-origin cerebral")
    assert cli("--json", "refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--yes",
               "--spasticity-origin", "cerebral").code == 6
    # the same as the pump's is fine (a cut: one rise a day is baclofen's most)
    assert cli("program", "--dose", "550 mcg/day", "--yes", "--spasticity-origin", "spinal").code == 0

    # cerebral on the pump: the stricter budget, named in the refusal
    emu2, cli2 = pump(*BACLOFEN)
    assert cli2("patient", "set", "--id", "MRN-7", "--spasticity-origin", "cerebral", "--yes").code == 0
    strict = cli2("program", "--dose", "600 mcg/day", "--yes")
    assert_one_line_error(strict, 6, "past the soft budget of 15 %", "the cerebral spasticity budget",
                          "RISE_24H=REASON")
    # a pump that records no origin keeps today's behaviour: the given one, kept locally
    emu3, cli3 = pump(*BACLOFEN)
    assert cli3("patient", "set", "--id", "MRN-8", "--yes").code == 0
    assert_one_line_error(cli3("program", "--dose", "600 mcg/day", "--yes"), 6, "spasticity origin not recorded")
    assert cli3("program", "--dose", "600 mcg/day", "--yes", "--spasticity-origin", "spinal").code == 0


def test_report_shows_the_patient_and_its_writes(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    assert cli(*RECORD).code == 0
    assert cli("patient", "set", "--correct", "--born", "1970-01-03", "--yes").code == 0
    live = cli("--json", "report")
    assert live.code == 0, live.stderr
    r = live.json()
    assert r["status"]["patient"]["id"] == "MRN-0042117" and r["status"]["patient"]["born"] == "1970-01-03"
    record, correct = r["changes"]
    assert (record["command"], record["outcome"], correct["command"]) == ("patient", "verified", "patient")
    assert record["request"]["action"] == "record" and "MRN-0042117" in record["request"]["patient"]
    assert record["before"]["patient"] == "not recorded" and "born 1970-01-02" in record["after"]["patient"]
    assert "born 1970-01-03" in correct["after"]["patient"]
    txt = tmp_path / "chart.txt"
    human = cli("report", "--export", str(txt))
    assert human.code == 0, human.stderr
    chart = " ".join(txt.read_text().split())
    assert "MRN-0042117 (AB, born 1970-01-03), spinal spasticity" in chart and "Change 2: patient" in chart
    # the pre-MRI checklist written for the chart names the patient too
    mri = tmp_path / "mri.txt"
    checked = cli("mri", "checklist", "--field", "1.5", "--export", str(mri))
    assert checked.code in (0, 12), checked.stderr
    assert "Patient: MRN-0042117 (AB, born 1970-01-03), spinal spasticity" in " ".join(mri.read_text().split())


def test_what_a_pump_sends_is_shown_as_text_never_as_markup_or_a_guessed_date():
    from rich.console import Console

    from ithcli.api import Patient
    from ithcli.patient import patient_text, patient_view
    from protocol import bodies
    from protocol.constants import SpasticityOrigin

    # a pump is not trusted to format the screen: an ID the rules refuse, and a birth date that is no date
    record = bodies.PatientRecord(patient_id="[red]X", initials="", birth_date=19_701_301,
                                  spasticity_origin=SpasticityOrigin.CEREBRAL, recorded_at=5)
    view = patient_view(record, "2030-01-01T00:00:00Z")
    assert view == {"id": "[red]X", "initials": None, "born": "19701301", "spasticity_origin": "cerebral",
                    "recorded_at": "2030-01-01T00:00:00Z"}
    console = Console(record=True, width=200)
    console.print(patient_text(view))
    assert console.export_text().strip() == "[red]X (born 19701301), cerebral spasticity"
    assert Patient.from_view(view).birth_date is None and Patient.from_view(None).recorded is False
