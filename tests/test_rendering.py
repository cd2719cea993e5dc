"""Every command's output for people, at 60, 80 and 120 columns on a terminal and in a pipe,
against a real emulator: a number is never on one line and its unit on the next, a time never
apart from its zone, no number or time folded in two, and nothing is cut to "…" (on a terminal
a word wider than its column folds; off one, a line is as long as it needs).

One emulator serves every command (the pump is set up once: a patient recorded, a program
change in the audit log, a pre-MRI snapshot); each command runs once per width through the
warm ithcli (tests/cli_harness.py), on a real pseudo-terminal for the terminal widths.
"""
from __future__ import annotations

import re

import cli_harness
import emulator_harness
import pytest

from ithcli.output import glued
from protocol.units import BASE_UNIT, UNITS

WIDTHS = (60, 80, 120)
#: units a value may be split from: protocol's, and the others ithcli shows beside numbers
_UNIT_WORDS = sorted({u for per in UNITS.values() for u in per} | set(BASE_UNIT.values())
                     | {"%", "cm", "mm", "T", "T/m", "days"}, key=len, reverse=True)
_UNIT = re.compile(r"\s*(?:" + "|".join(re.escape(u) for u in _UNIT_WORDS) + r")(?![\w/])")
_ENDS_IN_NUMBER = re.compile(r"(?<![\w.:-])\d+(?:\.\d+)?\s*$")
#: a number or time folded to fit its column: "11:33:" above "02 UTC", "11:33" above ":02 UTC"
_FOLDED = (re.compile(r"\d[.:]$"), re.compile(r"\d")), (re.compile(r"\d$"), re.compile(r"[.:]\d"))
_ENDS_IN_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2})?\s*$")
_STARTS_WITH_ZONE = re.compile(r"\s*(?:[A-Z]{2,5}|[+-]\d{2}:\d{2})(?![\w:])")
#: SGR (colour, bold) is dropped; any other control sequence (a live view's cursor moves) ends a line
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
_BORDERS = "│┃║|"


def screen_lines(output: str) -> list[str]:
    return _CONTROL.sub("\n", _SGR.sub("", output)).split("\n")


def cells(line: str) -> list[tuple[int, str]]:
    """A line cut at a table's vertical borders: (column where the cell starts, its text)."""
    out, start = [], 0
    for i, ch in enumerate(line):
        if ch in _BORDERS:
            out.append((start, line[start:i]))
            start = i + 1
    out.append((start, line[start:]))
    return out


def splits(output: str) -> list[str]:
    """Every place a value is broken over two lines: a number and its unit, a time and its zone, a
    number or time folded in two; in plain text or inside one table cell (the same column on both
    lines)."""
    found = []
    lines = screen_lines(output)
    for upper, lower in zip(lines, lines[1:], strict=False):
        below = dict(cells(lower))
        for start, text in cells(upper):
            if start not in below or not text.strip():
                continue
            after = below[start]
            if ((_ENDS_IN_NUMBER.search(text) and _UNIT.match(after))
                    or (_ENDS_IN_TIME.search(text) and _STARTS_WITH_ZONE.match(after))
                    or any(end.search(text.rstrip()) and start.match(after.lstrip()) for end, start in _FOLDED)):
                found.append(f"{upper.rstrip()!r} / {lower.rstrip()!r}")
    return found


# --- the checker itself: it must catch what the issue saw ---------------------------------
def test_the_checker_finds_a_value_split_from_its_unit_in_text_and_in_a_table_cell():
    assert splits("Flow 0.275\nmL/day now")
    assert splits("│ dead space 0.408 │ x │\n│ mL, primed       │   │")
    assert splits("│ 2026-12-02 11:27:16 │\n│  UTC                │")
    assert splits("│ 2027-02-20 11:33: │\n│ 02 UTC            │")
    assert splits("│ 2027-03-02 11:33 │\n│ :02 UTC          │")
    # not a split: the unit is in another column, or the number is part of a word or a date
    assert not splits("│ 0.408 │ b │\n│ x     │ mL │")
    assert not splits("Flow 0.275 mL/day\nmL is the unit")
    assert not splits("firmware 1.0.0\nmL")
    assert not splits("txid 12\nnext")
    assert not splits("│ a │ 2026-12-02 │\n│   │ 11:40:00 UTC │")  # a date above its time reads whole


def test_values_are_glued_and_written_with_ordinary_spaces():
    """Unit: the layout's token is one word for rich, the output an ordinary space."""
    from rich.console import Console  # noqa: F401  (rich is what ithcli draws with)

    from ithcli.output import GLUE

    text = glued("dead space 0.408 mL at 2026-12-02 11:40:00 CET, 19 T/m, 72 %, txid 5")
    assert "0.408" + GLUE + "mL" in text and "2026-12-02 11:40:00" + GLUE + "CET" in text
    assert "19" + GLUE + "T/m" in text and "72" + GLUE + "%" in text and "txid 5" in text


def test_the_console_folds_on_a_narrow_terminal_and_never_wraps_or_cuts_in_a_pipe():
    """Unit: ithcli's console, on a 30-column terminal and in a pipe told COLUMNS=30."""
    import io

    from rich.panel import Panel
    from rich.table import Table

    from ithcli.output import Titled, _console_class

    console = _console_class()
    instruction = "enter needs --confirm-withdrawal-risk at 0.275 mL/day"
    table = Table("Item", "What to do")
    table.add_row("Drug", instruction)
    title = "Pump EMU-4M2Q8ZXA  peristaltic-40  firmware 1.0.0  EMULATED"
    terminal = io.StringIO()
    on_terminal = console(file=terminal, force_terminal=True, width=30, color_system=None, highlight=False)
    on_terminal.print(table)
    on_terminal.print(Titled("body", title))
    drawn = terminal.getvalue()
    assert "…" not in drawn and not splits(drawn) and all(len(line) <= 30 for line in drawn.splitlines())
    # too wide for the border: the title is said whole above the panel, wrapped at its words
    assert all(word in drawn for word in title.split()) and "╭──────" in drawn
    assert on_terminal.layout_width == 30
    pipe = io.StringIO()
    piped = console(file=pipe, width=30, highlight=False)
    piped.print(table)
    piped.print(Panel("body", title=title))
    assert instruction in pipe.getvalue() and title in pipe.getvalue() and "…" not in pipe.getvalue()
    assert piped.layout_width is None
    small = io.StringIO()
    console(file=small, width=30, highlight=False).print(Panel("body"))
    assert all(len(line) == 30 for line in small.getvalue().splitlines())  # at least COLUMNS wide, as before


# --- every command, against one pump ------------------------------------------------------
@pytest.fixture(scope="module")
def pump(tmp_path_factory):
    """(the emulator, its environment for ithcli, the batch plan): a morphine pump with a patient
    recorded, one program change in the audit log and a pre-MRI snapshot."""
    tmp = tmp_path_factory.mktemp("rendering")
    emu = emulator_harness.start_emulator(tmp, "--time-scale", "1e-9", "--flow", "0.275 mL/day")
    cli_harness.trust(emu)
    env = {"ITHCLI_PORT": emu.url, "ITHCLI_STATE_DIR": str(tmp / "state"), "ITHCLI_OPERATOR": "test-operator",
           "ITHCLI_TZ": "Europe/Paris"}
    for args in (("patient", "set", "--id", "MRN-0042117", "--initials", "AB", "--yes"),
                 ("program", "--dose", "3 mg/day", "--yes"),
                 ("mri", "checklist")):
        result = cli_harness.run_cli(*args, env=env)
        assert result.code == 0, (args, result.stderr)
    plan = tmp / "plan.toml"
    plan.write_text(f'[plan]\nversion = 1\nname = "rendering"\n\n[[target]]\nport = "{emu.url}"\n'
                    f'serial = "{emu.serial}"\ndrug = "morphine"\n\n[[step]]\naction = "interrogate"\n\n'
                    '[[step]]\naction = "program"\ndose = "3.3 mg/day"\n')
    yield emu, env, plan
    emu.stop()


#: each command once, and the exit code its run here ends with (9: a write shown, then not confirmed)
COMMANDS = [
    (("interrogate",), 0),
    (("monitor", "--count", "1"), 0),
    (("forecast", "--next-visit", "2027-01-20"), 0),
    (("log",), 0),
    (("report",), 0),
    (("program", "--dose", "3.3 mg/day"), 9),
    (("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--no-bridge"), 9),
    (("bolus", "--dose", "0.25 mg", "--over", "30min"), 9),
    (("catheter", "correct", "--length", "75 cm", "--dry-run"), 0),
    (("mri", "checklist", "--field", "3T"), 0),
    (("mri", "verify"), 0),
    (("clock", "show"), 0),
    (("ptm", "show"), 0),
    (("patient", "show"), 0),
    (("keys", "list"), 0),
    (("audit", "verify"), 0),
    (("batch", "run", "PLAN", "--dry-run"), 0),
]


@pytest.mark.parametrize("args,code", COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_no_value_is_split_and_nothing_is_cut(pump, args, code):
    emu, env, plan = pump
    args = tuple(str(plan) if a == "PLAN" else a for a in args)
    runs = {f"terminal {w}": cli_harness.run_cli_on_terminal(*args, columns=w, env=env) for w in WIDTHS}
    # a pipe with a narrow COLUMNS: still nothing wrapped into a cell's next line, nothing cut
    runs["pipe"] = cli_harness.run_cli(*args, env={**env, "COLUMNS": "60"})
    for where, result in runs.items():
        assert result.code == code, (where, result.code, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stdout.strip(), (where, result.stderr)
        assert not splits(result.stdout), (where, splits(result.stdout), result.stdout)
        assert "…" not in result.stdout, (where, result.stdout)
    piped = runs["pipe"].stdout
    assert "\x1b[" not in piped  # no colour or cursor codes off a terminal
    if args[0] == "mri" and args[1] == "checklist":
        # the instruction the issue saw cut: whole, on one line
        assert any("enter needs --confirm-withdrawal-risk" in line for line in piped.splitlines()), piped
    if args[0] == "keys":  # each key file's path whole on its row
        assert re.search(re.escape(cli_harness.DEFAULT_KEY_STORE) + r"/pump-\d+\.json", piped), piped
    if args[0] == "batch":
        assert emu.url in piped, piped  # the port, whole


# --- point 11 of issue 19: what the words say ------------------------------------------------
def test_the_program_question_says_the_dose_once(pump):
    """"2.5 mg/day a day?" said the day twice: the dose is a 24-hour total already."""
    _, env, _ = pump
    asked = cli_harness.run_cli("program", "--dose", "3.3 mg/day", env=env)
    assert asked.code == 9
    assert "to continuous, 3.3 mg/day (24-hour total)?" in asked.stderr and "a day?" not in asked.stderr


def test_the_pump_refuses_a_second_mri_enter_with_a_date_not_epoch_seconds():
    """The emulator's refusal named its automatic exit as a raw epoch ("automatic exit at
    1796181374"); now a date on its own clock."""
    from loopback import based

    from emulator.pump import Pump, Refusal
    from protocol import Drug, bodies

    pump = Pump.new(model="peristaltic-40", serial="T1", drug=Drug.MORPHINE, concentration_ng_per_ml=10_000_000,
                    reservoir_ul=18_000, flow_nl_per_day=200_000, low_reservoir_alarm_ul=2_000,
                    battery_seconds=365 * 86_400, start_time=1_893_456_000)  # 2030-01-01T00:00:00Z
    pump.prepare(based(pump, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=4 * 3600)))
    pump.commit(1)
    with pytest.raises(Refusal) as refusal:
        pump.prepare(based(pump, bodies.PrepareMriEnterRequest(txid=2, based_on_txid=0, auto_exit_s=3600)))
    assert "automatic exit at 2030-01-01T04:00:00+00:00" in refusal.value.detail
    assert not re.search(r"\d{9,}", refusal.value.detail)


def test_mri_exit_says_what_the_pump_delivers_after_it(tmp_path_factory):
    """Leaving MRI-safe mode restores the program: "delivery restored" when it runs; on a pump
    emptied for the scan (valve-gated: it must be) delivery stays stopped, never "restored"."""
    tmp = tmp_path_factory.mktemp("mri-exit")
    running = emulator_harness.start_emulator(tmp, "--time-scale", "1e-9")
    emptied = emulator_harness.start_emulator(tmp, "--time-scale", "1e-9", "--model", "valve-gated-20")
    try:
        def scan(emu, *exit_args: str):
            env = {"ITHCLI_PORT": emu.url, "ITHCLI_STATE_DIR": str(tmp / emu.serial)}
            for args in (("mri", "checklist", "--field", "1.5T"),
                         ("mri", "enter", "--field", "1.5T", "--confirm-withdrawal-risk", "--yes")):
                result = cli_harness.run_cli(*args, env=env)
                assert result.code == 0, (args, result.stderr)
            result = cli_harness.run_cli(*exit_args, "mri", "exit", "--yes", env=env)
            assert result.code == 0, result.stderr
            return result

        cli_harness.trust(running)
        cli_harness.trust(emptied)
        said = scan(running)
        assert "delivery restored" in said.stdout
        env = {"ITHCLI_PORT": emptied.url, "ITHCLI_STATE_DIR": str(tmp / emptied.serial)}
        assert cli_harness.run_cli("empty", "--confirm-withdrawal-risk", "--yes", env=env).code == 0
        said = scan(emptied)
        assert "delivery stays STOPPED" in said.stdout and "restored" not in said.stdout
        as_json = scan(emptied, "--json")
        assert as_json.json()["delivery"] == "stopped" and as_json.json()["mode"] == "stopped"
    finally:
        running.stop()
        emptied.stop()
