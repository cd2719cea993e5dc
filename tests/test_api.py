"""The library API: docs/api.md's examples run as written, and what a script relies on
(typed results with units, typed errors carrying their exit code and what would permit
them) holds against a real emulator process."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ithcli import api
from ithcli.errors import ExitCode

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    """The API's defaults, as the command line's, come from ITHCLI_*: point them at tmp."""
    monkeypatch.setenv("ITHCLI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ITHCLI_KEY_STORE", str(tmp_path / "keys"))
    monkeypatch.delenv("ITHCLI_AUDIT_LOG", raising=False)
    monkeypatch.delenv("ITHCLI_DRUG_LIBRARY", raising=False)
    return tmp_path / "state"


def test_the_doc_has_examples_for_reading_writing_refusals_and_mri():
    assert len(EXAMPLES) >= 6
    joined = "\n".join(EXAMPLES)
    for call in ("status()", "program()", "log()", "set_program(", "check_program(", "apply(", "SafetyError",
                 "mri_enter(", "mri_exit("):
        assert call in joined, call


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example-{i + 1}" for i in range(len(EXAMPLES))])
def test_the_docs_examples_run_as_written(example, private_state, capsys):
    exec(compile(example, str(DOC), "exec"), {"__name__": "docs_api_example"})


def test_a_write_through_the_api_is_audited_and_journalled_like_the_cli(private_state, start_emulator):
    emu = start_emulator(transport="tcp")
    import shutil

    keys = private_state.parent / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copy(emu.key_file, keys / "pump.json")
    (keys / "pump.json").chmod(0o600)
    with api.open_pump(emu.url, operator="dr-roe") as pump:
        before = pump.status()
        assert before.daily_dose == api.Quantity(before.daily_dose.value, "mg/day")
        result = pump.set_program(dose="2.2 mg/day")
        assert result.outcome == "verified" and result.verified
        assert str(pump.program().daily_dose) == "2.2 mg/day"
    audit = [json.loads(line) for line in (private_state / "audit.jsonl").read_text().splitlines()]
    assert [e["txid"] for e in audit if e["event"] == "verified"] == [result.txid]
    assert {e["operator"] for e in audit} == {"dr-roe"}
    assert not list((private_state / "pending").glob("*.json"))  # nothing left unconfirmed


def test_errors_carry_their_exit_code_and_nothing_is_sent(private_state):
    with api.open_pump("emulator", operator="dr-roe") as pump:
        with pytest.raises(api.SafetyError) as unit:
            pump.set_program(dose="2200 mcg/day")  # morphine is dosed in mg/day: a 1000x slip
        assert unit.value.exit_code == ExitCode.SAFETY and "mg/day" in unit.value.message
        with pytest.raises(api.UsageError):
            pump.set_program(dose="2.2 mg/day", confirm={"tenfould"})
        with pytest.raises(api.UsageError):
            pump.set_program(dose="2.2 mg/day", overrides={"RISE": "x"})
        assert str(pump.status().daily_dose) == "2 mg/day"
    with pytest.raises(api.UsageError):
        api.open_pump("emulator", operator=" ")


def test_a_change_written_for_another_drug_is_refused_before_any_check(private_state):
    with api.open_pump("emulator", operator="dr-roe") as pump:  # morphine
        with pytest.raises(api.SafetyError, match="holds morphine, but this change was written for hydromorphone"):
            pump.set_program(dose="0.4 mg/day", expect_drug="hydromorphone")
        assert pump.set_program(dose="2.2 mg/day", expect_drug="morphine").outcome == "verified"
