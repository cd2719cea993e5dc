"""ith-emulator --baud N: replies paced like a serial line (10 bits a byte). Only what
it does is tested here; how fast is bench/link.py's job (no timing assertions)."""
from __future__ import annotations

import pytest
from emulator_harness import RawClient, run_emulator

from protocol import Command


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_a_paced_pump_answers_whole_frames(start_emulator, transport):
    emu = start_emulator("--baud", "115200", transport=transport, time_scale=1e-9)
    with RawClient(emu.url, keys=emu.keys) as c:
        for _ in range(3):
            assert c.request(Command.INTERROGATE).body.serial_number == emu.serial
        assert c.request(Command.READ_LOG, {"first_index": 0, "max_count": 28}).body.events
        assert c.dropped == []  # byte by byte, nothing torn or garbled


@pytest.mark.parametrize("value", ["0", "299", "10000001", "fast", "9600.5"])
def test_bad_baud_rates_are_refused(tmp_path, value):
    proc = run_emulator("--key-file", tmp_path / "k.json", "--baud", value, timeout=30)
    assert proc.returncode == 2
    assert "--baud" in proc.stderr and "Traceback" not in proc.stderr
