"""One serial line shared with an attacker (docs/security.md, "One shared serial line").

A pty is one connection for its whole life, so whatever is injected on it is on the
programmer's own connection: wrong AUTHs run up that connection's back-off. ithcli
then waits once (the pump says how long) and gets in; it never gives up at once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import protocol
from cli_harness import cli_env, run_cli, trust
from protocol import Role, security
from protocol.session import ClientSession

FROZEN = 1e-9  # the pump clock moves only when a test advances it


def inject_wrong_auths(pty_path: str, n: int) -> None:
    """Write HELLO + a wrong AUTH n times on the line without reading anything (an attacker
    who only transmits); the pump answers each, and nobody reads those answers."""
    fd = os.open(pty_path, os.O_RDWR | os.O_NOCTTY)
    try:
        for _ in range(n):
            attacker = ClientSession()
            os.write(fd, attacker.hello(Role.CLINICIAN))
            # no HELLO reply was read, so no transcript: a keyless attacker sends any 32 bytes
            os.write(fd, protocol.encode(protocol.Command.AUTH, {"role": Role.CLINICIAN,
                                                                 "proof": security.new_nonce() * 2},
                                         seq=attacker.seq + 1))
    finally:
        os.close(fd)


def test_rate_limited_on_a_shared_line_ithcli_waits_once_and_gets_in(start_emulator):
    emu = start_emulator("--auth-backoff-cap", "1", transport="pty", time_scale=FROZEN)
    trust(emu)
    inject_wrong_auths(emu.url, 4)
    # poll (not sleep) until the pump has taken all four: ithcli drops the answers left in the pty
    deadline = time.monotonic() + 10
    while emu.control("state")["auth_failures"] < 4:
        assert time.monotonic() < deadline, "the pump never saw the injected AUTHs"
        time.sleep(0.02)
    result = run_cli("--port", emu.url, "--json", "interrogate")
    assert result.code == 0, result.stderr
    assert "asks to retry the handshake in 1 s" in result.stderr
    assert result.json()["serial_number"] == "EMU00001"
    # the attacker's four and ithcli's one rate-limited attempt, all counted pump-wide
    assert emu.control("state")["auth_failures"] == 5


def test_a_second_ithcli_on_the_same_port_is_told_it_is_in_use(start_emulator):
    """Two programmers on one serial line would steal each other's replies: the second one
    is refused at once (exit 3) while the first goes on undisturbed."""
    emu = start_emulator(transport="pty", time_scale=FROZEN)
    trust(emu)
    first = subprocess.Popen([sys.executable, "-m", "ithcli", "--port", emu.url, "--json", "monitor",
                              "--interval", "0.2", "--count", "15"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert first.stdout.readline(), "the monitor printed no first reading"  # it holds the port now
        second = run_cli("--port", emu.url, "--json", "interrogate")
        assert second.code == 3
        assert "is in use by another program" in second.json()["error"]["message"]
        assert "Traceback" not in second.stderr
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    readings = [json.loads(line) for line in out.splitlines()]
    assert len(readings) == 14 and all(r["ok"] for r in readings)
