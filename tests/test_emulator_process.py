"""The one emulator launcher (ithcli/emulator_process.py): every way an emulator fails to
start is one clear line from `ithcli --port emulator`, and what was started is stopped,
reaped and cleaned up whatever happened.

The failures a real emulator cannot be made to show (a garbage ready line, a hang before
it) come from small stand-in programs run in its place (emulator_process.COMMAND), with
the real ithcli running in this process (loopback.run_ithcli) so it sees the stand-in.
"""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from cli_harness import CliResult, assert_one_line_error, cli_env, run_cli
from emulator_harness import STARTER
from loopback import VirtualClock, run_ithcli

from ithcli import emulator_process
from ithcli.errors import ExitCode

# every stand-in first records its pid and arguments, then does what the test says
_RECORD = """import json, os, signal, sys, time
with open(os.environ["FAKE_EMULATOR_RECORD"], "w") as fh:
    json.dump({"pid": os.getpid(), "argv": sys.argv[1:]}, fh)
"""


@pytest.fixture
def fake_emulator(monkeypatch, tmp_path):
    """fake_emulator(code) -> record path: `python -c RECORD+code` runs in place of the emulator."""
    record = tmp_path / "fake.json"
    monkeypatch.setenv("FAKE_EMULATOR_RECORD", str(record))

    def install(code: str):
        monkeypatch.setattr(emulator_process, "COMMAND", (sys.executable, "-I", "-c", _RECORD + code))
        return record

    return install


def _ithcli_port_emulator(tmp_path) -> CliResult:
    """`ithcli --port emulator interrogate`, in this process (cli_env keeps FAKE_EMULATOR_RECORD)."""
    env = cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "state")})
    return CliResult(*run_ithcli(["--port", "emulator", "interrogate"], env, VirtualClock()))


def _assert_gone(record) -> None:
    """The stand-in was reaped (not a zombie of ours) and the launcher's private directory removed."""
    data = json.loads(record.read_text())
    with pytest.raises(ChildProcessError):
        os.waitpid(data["pid"], os.WNOHANG)
    key_file = data["argv"][data["argv"].index("--key-file") + 1]
    assert not os.path.exists(os.path.dirname(key_file)), key_file


@pytest.mark.parametrize("code, said", [
    ('print("ith-emulator: error: no free pseudo-terminal", file=sys.stderr); sys.exit(1)',
     "the emulator did not start: ith-emulator: error: no free pseudo-terminal"),
    ("sys.exit(3)", "the emulator did not start: it exited with code 3 before it was ready"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "the emulator did not start: it was killed by signal 9"),
    ('print("Welcome to the pump!", flush=True); time.sleep(60)',
     "the emulator did not start: it printed 'Welcome to the pump!' where its port URL belongs"),
    ('print("/dev/null", flush=True); time.sleep(60)',  # a URL, but no key file written
     "the emulator did not start: its key file cannot be used: key file "),
])
def test_each_way_of_not_starting_is_one_line_and_leaves_nothing_behind(fake_emulator, tmp_path, code, said):
    record = fake_emulator(code)
    assert_one_line_error(_ithcli_port_emulator(tmp_path), ExitCode.LINK, said)
    _assert_gone(record)


def test_an_emulator_that_never_says_it_is_ready_is_given_up_on(fake_emulator, monkeypatch, tmp_path):
    record = fake_emulator('print("starting...", file=sys.stderr, flush=True); time.sleep(60)')
    monkeypatch.setattr(emulator_process, "START_TIMEOUT", 0.5)
    assert_one_line_error(_ithcli_port_emulator(tmp_path), ExitCode.LINK,
                          "the emulator did not start: no port URL on its stdout within 0.5 s (it said: starting...)")
    _assert_gone(record)


def test_a_program_that_cannot_be_run_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(emulator_process, "COMMAND", (str(tmp_path / "no-such-python"), "-m", "emulator"))
    with pytest.raises(emulator_process.EmulatorStartError, match="^the emulator did not start: cannot run it: "):
        emulator_process.start(["--pty"])


def test_bad_emulator_arguments_from_the_environment_are_the_emulators_own_line():
    """End to end: the real `ithcli --port emulator` and the real emulator refusing to start."""
    result = run_cli("--port", "emulator", "interrogate", env={"ITHCLI_EMULATOR_ARGS": "--drug aspirin"})
    assert_one_line_error(result, ExitCode.LINK, "the emulator did not start: ith-emulator: error: argument "
                          "--drug: invalid choice: 'aspirin'")


def test_stop_kills_an_emulator_that_ignores_sigterm(fake_emulator):
    record = fake_emulator('signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ignoring", flush=True); '
                           "time.sleep(60)")
    emu = emulator_process.launch(["--pty"])
    stdout = emu.proc.stdout
    assert stdout is not None
    assert emulator_process.read_first_line(stdout, 10) == "ignoring"
    assert emu.stop(timeout=0.3) == -signal.SIGKILL
    assert stdout.closed
    _assert_gone(record)
    assert emu.stop() == -signal.SIGKILL  # again: nothing left to do


def test_a_started_emulator_hands_over_its_url_serial_and_keys_and_cleans_up(tmp_path):
    with emulator_process.start(["--listen", "127.0.0.1:0", "--serial", "LAUNCH-1"], control=True,
                                starter=STARTER) as emu:
        assert emu.url.startswith("socket://127.0.0.1:") and emu.address[1] > 0
        assert emu.serial == "LAUNCH-1" and set(emu.keys) == {"reader", "clinician"}
        assert emu.control("faults")["ok"]
        private = os.path.dirname(emu.key_file)
        assert emu.control_path is not None and os.path.dirname(emu.control_path) == private
    assert emu.proc.returncode == 0  # SIGTERM: a clean stop
    assert not os.path.exists(private)
