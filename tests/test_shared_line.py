"""One serial line shared with an attacker (docs/security.md, "One shared serial line").

A pty is one connection for its whole life, so whatever is injected on it is on the
programmer's own connection: wrong AUTHs run up that connection's back-off. ithcli
then waits once (the pump says how long) and gets in; it never gives up at once.
A second programmer on the same line is refused at once instead (exit 3), since the
two would steal each other's replies: ithcli holds the port exclusively while it runs.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

from cli_harness import cli_env, run_cli, trust

import protocol
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
            os.write(fd, protocol.encode(protocol.Command.AUTH,
                                         protocol.bodies.AuthRequest(Role.CLINICIAN, security.new_nonce() * 2),
                                         seq=(attacker.seq + 1) % 0x10000))  # seq wraps at 16 bits
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
    assert result.json()["serial_number"] == emu.serial
    # the attacker's four and ithcli's one rate-limited attempt, all counted pump-wide
    assert emu.control("state")["auth_failures"] == 5


def read_until(stream, marker: str, proc: subprocess.Popen, timeout: float = 30) -> str:
    """What a process wrote on `stream` (a pipe) up to and including `marker`, which may end
    without a newline (a prompt)."""
    fd, seen = stream.fileno(), b""
    deadline = time.monotonic() + timeout  # a guard against a hang, never a measured time
    while marker.encode() not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, (seen, proc.poll())
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            seen += os.read(fd, 4096)
    return seen.decode()


def test_a_second_ithcli_on_the_same_port_is_told_it_is_in_use_at_once(start_emulator, tmp_path):
    """Two programmers on one serial line would steal each other's replies: the second one is
    refused at once (exit 3, one line, nothing sent) while the first goes on undisturbed. The
    first holds the port at its confirmation prompt until the test answers it, so the second
    can only have been refused while the first held the port, never after waiting for it."""
    emu = start_emulator(transport="pty", time_scale=FROZEN)
    trust(emu)
    first_env = cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "first"), "ITHCLI_OPERATOR": "first"})
    second_env = {"ITHCLI_STATE_DIR": str(tmp_path / "second"), "ITHCLI_OPERATOR": "second"}
    first = subprocess.Popen([sys.executable, "-m", "ithcli", "--port", emu.url, "program", "--dose", "2.5 mg/day"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=first_env)
    try:
        asked = read_until(first.stderr, "[y/N]: ", first)  # it has read the pump and holds the port
        assert emu.serial in asked, asked  # the question about this pump: it is waiting for its operator
        for args in (("--json", "interrogate"), ("--json", "program", "--dose", "3 mg/day", "--yes")):
            second = run_cli("--port", emu.url, *args, env=second_env)
            assert second.code == 3, (second.code, second.stdout, second.stderr)
            assert "Traceback" not in second.stderr
            lines = second.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("ithcli: error: port "), second.stderr
            error = second.json()["error"]
            assert error["exit_code"] == 3 and "is in use by another program" in error["message"]
            assert "wait for the other command to finish" in error["message"]
            assert first.poll() is None  # refused while the first still holds the port
        out, err = first.communicate(b"y\n", timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert b"VERIFIED" in out
    # nothing of the second's reached the pump: no exchange in its audit log; the first's change stands
    audit = tmp_path / "second" / "audit.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    assert not [r for r in records if r.get("event") == "exchange"], records
    after = run_cli("--port", emu.url, "--json", "interrogate", env=second_env)
    assert after.code == 0, after.stderr
    assert after.json()["daily_dose"] == {"value": 2.5, "unit": "mg/day"}
