"""Shared fixtures: emulator processes on a pty and on TCP, stopped at teardown."""
from __future__ import annotations

import os
import signal
import tempfile

import cli_harness
import emulator_harness
import pytest

# A shell starts a background job (`pytest ... &`) with SIGINT ignored, and an ignored
# signal stays ignored across exec: every ithcli the tests start would then ignore the
# Ctrl-C the Ctrl-C tests send. Handling it here gives children the default again.
signal.signal(signal.SIGINT, signal.default_int_handler)

# The suite starts hundreds of Python processes (emulators, ithcli). With PYTHONDONTWRITEBYTECODE
# set, each one compiles every module it imports from source (~60 ms of each start-up). They
# share a bytecode cache instead, outside the source tree (PYTHONPYCACHEPREFIX): nothing is
# written next to the sources, and what runs is the same code.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    os.environ.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), f"ithcli-pycache-{os.getuid()}"))


@pytest.fixture
def start_emulator(tmp_path):
    """A factory: start_emulator(*args, transport=..., state_path=..., time_scale=..., key_file=...);
    each emulator gets fresh keys (emu.keys) unless key_file or --key-file says otherwise."""
    started: list[emulator_harness.EmulatorProcess] = []

    def factory(*args, **kw) -> emulator_harness.EmulatorProcess:
        emu = emulator_harness.start_emulator(tmp_path, *args, **kw)
        started.append(emu)
        cli_harness.trust(emu)  # CLI tests find its keys in the test key store
        return emu

    yield factory
    for emu in started:
        emu.stop()


@pytest.fixture(params=["pty", "tcp"])
def emulator(request, start_emulator):
    """The default pump (peristaltic-40, 18 mL morphine 10 mg/mL at 0.2 mL/day), real time."""
    return start_emulator(transport=request.param)


@pytest.fixture
def pump(start_emulator, tmp_path):
    """start(*emulator args) -> (emulator with a frozen clock, ithcli bound to its port and
    a private state dir): the pump time moves only when a test advances it."""

    def start(*args, transport="pty"):
        emu = start_emulator("--time-scale", "1e-9", *args, transport=transport)
        return emu, cli_harness.Cli(tmp_path / "state", port=emu.url)

    return start
