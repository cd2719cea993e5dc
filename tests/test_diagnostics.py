"""Diagnostics through `logging` (issue 17): one logger per module under "ithcli".

The command line shows them on stderr from its -v count (none but warnings without -v, as
before), stdout stays clean for --json; a script using ithcli.api sees nothing unless it
configures logging, and then sees ithcli's records like any library's.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import cli_harness
import pytest
from cli_harness import run_cli

from ithcli.app import App, Settings, log_level
from ithcli.cli import _diagnostics_on_stderr


def _lines(stderr: str) -> list[str]:
    return stderr.splitlines()


# --- the command line ---------------------------------------------------------------------

def test_v_shows_the_port_and_session_on_stderr_and_json_alone_on_stdout(start_emulator):
    emu = start_emulator(transport="tcp")
    result = run_cli("--port", emu.url, "-v", "--json", "interrogate")
    assert result.code == 0, result.stderr
    status = json.loads(result.stdout)  # nothing but the JSON object on stdout
    assert "ithcli:" not in result.stdout
    lines = _lines(result.stderr)
    assert f"ithcli: opening {emu.url}" in lines
    assert f"ithcli: reader session open with {status['serial_number']} on {emu.url}" in lines
    assert all(line.startswith("ithcli: ") for line in lines), lines
    assert not any(line.startswith("ithcli: -> ") for line in lines), "frame dumps are for -vv"


def test_vv_adds_every_frame_in_hex(start_emulator):
    emu = start_emulator(transport="tcp")
    result = run_cli("--port", emu.url, "-vv", "--json", "interrogate")
    assert result.code == 0, result.stderr
    json.loads(result.stdout)
    lines = _lines(result.stderr)
    assert any(line.startswith("ithcli: -> INTERROGATE seq=") for line in lines), lines
    assert any(line.startswith("ithcli: <- ") for line in lines), lines
    assert f"ithcli: opening {emu.url}" in lines


@pytest.mark.parametrize("as_json", [True, False])
def test_without_v_nothing_on_stderr(start_emulator, as_json):
    emu = start_emulator(transport="tcp")
    result = run_cli("--port", emu.url, *(["--json"] if as_json else []), "interrogate")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    if as_json:
        json.loads(result.stdout)


def test_errors_keep_their_one_line_with_or_without_v():
    for verbose in ([], ["-v"]):
        result = run_cli("--port", "socket://127.0.0.1:9", "--timeout", "0.1", *verbose, "interrogate")
        assert result.code == 3, result.stderr
        errors = [line for line in _lines(result.stderr) if line.startswith("ithcli: error: ")]
        assert len(errors) == 1 and _lines(result.stderr)[-1] == errors[0], result.stderr
        if not verbose:
            assert len(_lines(result.stderr)) == 1, result.stderr


# --- the levels and the handler, in-process -------------------------------------------------

def test_a_diagnostic_shows_exactly_when_the_v_count_reaches_its_level(capsys):
    app = App(Settings(port=None, timeout=1.0, json=True, verbose=0))
    for verbose in range(4):
        undo = _diagnostics_on_stderr(verbose)
        try:
            for level in range(4):
                app.diag(f"level {level}", level=level)
        finally:
            undo()
        out, err = capsys.readouterr()
        assert out == ""
        assert err == "".join(f"ithcli: level {level}\n" for level in range(verbose + 1)), (verbose, err)


def test_the_command_line_leaves_logging_as_it_found_it():
    logger = logging.getLogger("ithcli")
    before = (list(logger.handlers), logger.level, logger.propagate)
    undo = _diagnostics_on_stderr(2)
    assert logger.level == logging.DEBUG and not logger.propagate
    undo()
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_levels_map_onto_logging():
    assert [log_level(n) for n in range(4)] == [logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG - 1]
    assert log_level(99) >= 1  # never NOTSET (which would mean "ask the parent")


def test_app_diag_logs_on_the_calling_modules_logger(caplog):
    """operations.py, writes.py, mri.py and the commands still call app.diag: their records
    carry their own module's logger name."""
    caplog.set_level(logging.DEBUG, logger="ithcli")
    app = App(Settings(port=None, timeout=1.0, json=True, verbose=0))
    exec("app.diag('from writes', level=0)", {"__name__": "ithcli.writes", "app": app})
    app.diag("from a test", level=2)  # not an ithcli module: ithcli.app's logger
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("ithcli.writes", logging.WARNING, "from writes") in records
    assert ("ithcli.app", logging.DEBUG, "from a test") in records


# --- a script using the library ---------------------------------------------------------------

_SCRIPT = textwrap.dedent("""
    import logging, sys
    from ithcli import api
    from ithcli.app import App, Settings

    if sys.argv[2] == "attach":
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    with api.open_pump(sys.argv[1], operator="dr-roe") as pump:
        status = pump.status()
    App(Settings(port=None, timeout=1.0, json=True, verbose=0)).diag("a warning", level=0)  # shown today without -v
    print(status.serial_number)
""")


def _script(tmp_path, url: str, mode: str) -> subprocess.CompletedProcess[str]:
    env = cli_harness.cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "state")})
    return subprocess.run([sys.executable, "-c", _SCRIPT, url, mode], capture_output=True, text=True, env=env,
                          timeout=60)


def test_a_library_user_sees_nothing_on_stderr_by_default(start_emulator, tmp_path):
    emu = start_emulator(transport="tcp")
    proc = _script(tmp_path, emu.url, "quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.strip()  # the serial: the script did read the pump


def test_a_library_user_who_configures_logging_gets_the_records(start_emulator, tmp_path):
    emu = start_emulator(transport="tcp")
    proc = _script(tmp_path, emu.url, "attach")
    assert proc.returncode == 0, proc.stderr
    serial = proc.stdout.strip()
    lines = _lines(proc.stderr)
    assert f"ithcli.app INFO opening {emu.url}" in lines
    assert f"ithcli.app INFO reader session open with {serial} on {emu.url}" in lines
    assert "ithcli.app WARNING a warning" in lines
    assert not any(" DEBUG " in line for line in lines)  # INFO asked for: no frame dumps
