"""A pinned pump, and emulators that never collide (issue 19, part C).

- `--expect-serial SERIAL` (env ITHCLI_EXPECT_SERIAL, api `expect_serial=`): another pump
  answering is refused at the session's opening, after the handshake and before any request;
  what reached the pump is read from a fault proxy in front of it (no fault armed: it only
  records the frames), not from ithcli's own account.
- A session never goes on with another pump than the one it first opened with: `monitor`
  after a reconnect names the new pump and stops (exit 11).
- `ith-emulator` without --serial picks a unique serial and says it; two such pumps pair into
  one key store.
- A dead port says what it waits for, then fails in one line; a port that cannot be opened
  says why once.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import emulator_harness
import peers
import pytest
from cli_harness import Cli, assert_one_line_error, cli_env, run_cli

from emulator.__main__ import NEW_SERIAL_ALPHABET, new_serial
from emulator.pump import valid_serial
from ithcli import api
from ithcli.errors import ExitCode
from ithcli.link import _open_why, _why
from ithcli_campaign.proxy import TO_PUMP
from protocol import Command
from protocol.messages import SERIAL_LEN

FROZEN = ("--time-scale", "1e-9")
HANDSHAKE = [Command.HELLO, Command.AUTH]


def sent_to_pump(proxy) -> list[Command]:
    """The requests that went through the proxy to the pump, in order."""
    return [Command(command) for direction, command, _ in proxy.frames if direction == TO_PUMP]


def address(proxy) -> tuple[str, int]:
    """(host, port) a proxy listens on: another proxy's upstream."""
    host, _, port = proxy.url.removeprefix("socket://").rpartition(":")
    return host, int(port)


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("ithcli: error: "), result.stderr
    return lines[-1]


@pytest.fixture
def two_pumps(start_emulator):
    """Two emulators started without --serial (each picks its own), both paired in the test key store."""
    a = start_emulator(*FROZEN, transport="tcp")
    b = start_emulator(*FROZEN, transport="tcp")
    assert a.serial != b.serial
    return a, b


# --- --expect-serial --------------------------------------------------------------------------


def test_a_read_from_another_pump_is_refused_after_the_handshake_with_nothing_sent(two_pumps, tmp_path):
    a, b = two_pumps
    proxy = peers.proxy_to(a)
    try:
        cli = Cli(tmp_path / "state", port=proxy.url)
        result = cli("--expect-serial", b.serial, "--json", "interrogate")
        assert_one_line_error(result, ExitCode.AUTH, f"pump {a.serial} answers on {proxy.url}, not {b.serial}",
                              "--expect-serial", "Nothing was sent")
        error = result.json()
        assert error["error"]["kind"] == "wrong-pump" and error["error"]["exit_code"] == 11
        assert (error["expected_serial"], error["serial_number"], error["port"]) == (b.serial, a.serial, proxy.url)
        assert sent_to_pump(proxy) == HANDSHAKE  # the key named the pump: no INTERROGATE followed
    finally:
        proxy.close()
    audit = [json.loads(line) for line in open(cli.audit_path)]
    refusals = [e for e in audit if e["event"] == "wrong-pump"]
    assert [(e["expected_serial"], e["serial_number"], e["operator"]) for e in refusals] == \
        [(b.serial, a.serial, cli.operator)]
    assert [e["command"] for e in audit if e["event"] == "exchange"] == ["HELLO", "AUTH"]


def test_a_write_to_another_pump_is_refused_with_nothing_sent_and_nothing_journalled(two_pumps, tmp_path):
    a, b = two_pumps
    proxy = peers.proxy_to(a)
    try:
        cli = Cli(tmp_path / "state", port=proxy.url)
        result = cli("--expect-serial", b.serial, "program", "--dose", "2.4 mg/day", "--yes")
        assert_one_line_error(result, ExitCode.AUTH, a.serial, b.serial, "Nothing was sent")
        assert sent_to_pump(proxy) == HANDSHAKE
        assert not list((tmp_path / "state").glob("pending/*"))  # no write was begun
    finally:
        proxy.close()
    assert run_cli("--port", a.url, "--json", "interrogate").json()["daily_dose"] == {"value": 2, "unit": "mg/day"}


def test_the_pump_meant_is_read_and_written_as_before(two_pumps, tmp_path):
    a, _ = two_pumps
    proxy = peers.proxy_to(a)
    try:
        cli = Cli(tmp_path / "state", port=proxy.url)
        read = cli("--expect-serial", a.serial, "--json", "interrogate")
        assert read.code == 0, read.stderr
        assert read.json()["serial_number"] == a.serial
        assert Command.INTERROGATE in sent_to_pump(proxy)
        write = cli("--expect-serial", a.serial, "--json", "program", "--dose", "2.4 mg/day", "--yes")
        assert write.code == 0, write.stderr
        assert write.json()["outcome"] == "verified"
        assert Command.COMMIT in sent_to_pump(proxy)
    finally:
        proxy.close()


def test_the_environment_variable_pins_the_pump_too(two_pumps, tmp_path):
    a, b = two_pumps
    cli = Cli(tmp_path / "state", port=a.url)
    refused = cli("interrogate", env={"ITHCLI_EXPECT_SERIAL": b.serial})
    assert_one_line_error(refused, ExitCode.AUTH, a.serial, b.serial)
    accepted = cli("--json", "interrogate", env={"ITHCLI_EXPECT_SERIAL": a.serial})
    assert accepted.code == 0, accepted.stderr
    assert accepted.json()["serial_number"] == a.serial


def test_a_pump_whose_key_the_store_lacks_is_not_the_one_expected(start_emulator, tmp_path):
    """The expected pump's keys are in the store and the pump on the port announces none of them:
    it is not that pump as the store knows it (its own serial cannot be known without its key)."""
    known = start_emulator(*FROZEN, transport="tcp")
    stranger = emulator_harness.start_emulator(tmp_path, *FROZEN, transport="tcp")  # never paired
    try:
        result = run_cli("--port", stranger.url, "--expect-serial", known.serial, "--json", "interrogate")
        assert_one_line_error(result, ExitCode.AUTH, f"is not {known.serial} (--expect-serial)",
                              "announces no key", "Nothing was sent")
        assert result.json()["serial_number"] is None
    finally:
        stranger.stop()


def test_port_emulator_is_pinned_by_the_serial_it_is_given():
    pinned = {"ITHCLI_EMULATOR_ARGS": "--serial PIN-0001"}
    assert run_cli("--port", "emulator", "--expect-serial", "PIN-0001", "interrogate", env=pinned).code == 0
    refused = run_cli("--port", "emulator", "--expect-serial", "PIN-0002", "interrogate", env=pinned)
    assert_one_line_error(refused, ExitCode.AUTH, "pump PIN-0001 answers on /dev/pts/", "not PIN-0002")


def test_the_api_takes_expect_serial(two_pumps, tmp_path, monkeypatch):
    import cli_harness

    a, b = two_pumps
    monkeypatch.setenv("ITHCLI_KEY_STORE", cli_harness.DEFAULT_KEY_STORE)
    monkeypatch.setenv("ITHCLI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ITHCLI_EXPECT_SERIAL", raising=False)
    with api.open_pump(a.url, operator="dr-roe", expect_serial=b.serial) as pump:
        with pytest.raises(api.WrongPump) as refused:
            pump.status()
        assert (refused.value.expected, refused.value.found) == (b.serial, a.serial)
        assert refused.value.exit_code == ExitCode.AUTH
    with api.open_pump(a.url, operator="dr-roe", expect_serial=a.serial) as pump:
        assert pump.status().serial_number == a.serial


def test_a_session_never_goes_on_with_another_pump(two_pumps, tmp_path, monkeypatch):
    """Through the API: a Pump read from one pump, reconnected to a port where another answers now."""
    import cli_harness

    a, b = two_pumps
    monkeypatch.setenv("ITHCLI_KEY_STORE", cli_harness.DEFAULT_KEY_STORE)
    monkeypatch.setenv("ITHCLI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ITHCLI_EXPECT_SERIAL", raising=False)
    to_b = peers.proxy_to(b)
    line = peers.proxy_to(a)  # the port the script uses: pump A behind it first, then B
    try:
        with api.open_pump(line.url, operator="dr-roe") as pump:
            assert pump.status().serial_number == a.serial
            line.upstream = address(to_b)
            pump.disconnect()
            with pytest.raises(api.WrongPump) as changed:
                pump.status()
        assert changed.value.message.startswith(f"a different pump ({b.serial}) now answers on {line.url}; "
                                                f"it was {a.serial}")
        assert sent_to_pump(to_b) == HANDSHAKE
    finally:
        line.close()
        to_b.close()


# --- monitor: a changed pump named for what it is ---------------------------------------------


def _monitor_until_it_stops(port: str, switch) -> tuple[int, list[dict], str]:
    """Run `ithcli --json monitor` on `port`; after its first reading call switch(); return its
    exit code, its JSON lines and its stderr."""
    env = cli_env({"ITHCLI_OPERATOR": "t"})
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", "--port", port, "--json", "monitor", "--interval",
                             "0.2", "--max-failures", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.communicate(timeout=30)
        switch()
        rest, err = proc.communicate(timeout=60)  # a guard against a hang: it must end by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, [json.loads(line) for line in [first, *rest.splitlines()] if line.strip()], err


def test_monitor_names_a_different_pump_that_now_answers_and_stops(two_pumps):
    a, b = two_pumps
    to_b = peers.proxy_to(b)  # records what reaches pump B
    line = peers.proxy_to(a)  # the monitored port

    def swap() -> None:  # the line now leads to B, and A goes away: the monitor reconnects
        line.upstream = address(to_b)
        a.stop()

    try:
        code, readings, err = _monitor_until_it_stops(line.url, swap)
    finally:
        line.close()
        to_b.close()
    assert code == ExitCode.AUTH, (readings, err)
    assert readings[0]["ok"] and readings[0]["serial_number"] == a.serial
    assert all(r.get("serial_number") != b.serial for r in readings if r.get("ok")), readings  # never shown as A
    last = readings[-1]
    assert last["error"]["kind"] == "wrong-pump"
    assert (last["expected_serial"], last["serial_number"]) == (a.serial, b.serial)
    said = err.strip().splitlines()[-1]
    assert said == (f"ithcli: error: monitor stopped: a different pump ({b.serial}) now answers on {line.url}; "
                     f"it was {a.serial}. Nothing was sent to it"), err
    assert sent_to_pump(to_b) == HANDSHAKE  # nothing read from B


def test_monitor_stops_on_a_pump_whose_key_it_lacks(start_emulator, tmp_path):
    a = start_emulator(*FROZEN, transport="tcp")
    stranger = emulator_harness.start_emulator(tmp_path, *FROZEN, transport="tcp")  # never paired
    to_stranger = peers.proxy_to(stranger)
    line = peers.proxy_to(a)

    def swap() -> None:
        line.upstream = address(to_stranger)
        a.stop()

    try:
        code, readings, err = _monitor_until_it_stops(line.url, swap)
    finally:
        line.close()
        to_stranger.close()
        stranger.stop()
    assert code == ExitCode.AUTH, (readings, err)
    assert readings[-1]["error"]["kind"] == "wrong-pump" and readings[-1]["serial_number"] is None
    assert f"a different pump now answers on {line.url}; it was {a.serial}" in err.strip().splitlines()[-1]
    assert set(sent_to_pump(to_stranger)) == {Command.HELLO}  # its key id is unknown: no AUTH, no request


# --- ith-emulator picks a unique serial -------------------------------------------------------


def test_emulators_without_serial_differ_say_their_serial_and_pair_into_one_store(start_emulator, tmp_path):
    a = start_emulator(*FROZEN, transport="tcp")
    b = start_emulator(*FROZEN, transport="pty")
    assert a.serial != b.serial
    for emu in (a, b):
        assert re.fullmatch(r"EMU-[A-Z2-9]{8}", emu.serial), emu.serial
        assert json.loads(open(emu.key_file).read())["serial"] == emu.serial
        assert f"no --serial given: this pump is {emu.serial}" in emu.stderr()
    store = {"ITHCLI_KEY_STORE": str(tmp_path / "one-store"), "ITHCLI_STATE_DIR": str(tmp_path / "state")}
    for emu in (a, b):
        paired = run_cli("--json", "keys", "pair", "--from", emu.key_file, env=store)
        assert paired.code == 0, paired.stderr
        assert paired.json()["serial_number"] == emu.serial
    for emu in (a, b):
        read = run_cli("--port", emu.url, "--json", "interrogate", env=store)
        assert read.code == 0, read.stderr
        assert read.json()["serial_number"] == emu.serial


def test_an_emulator_started_again_with_its_key_file_is_the_same_pump(start_emulator, tmp_path):
    first = start_emulator(*FROZEN, transport="tcp", key_file=tmp_path / "pump.json")
    serial = first.serial
    first.stop()
    again = start_emulator(*FROZEN, transport="tcp", key_file=tmp_path / "pump.json")
    assert again.serial == serial
    read = run_cli("--port", again.url, "--json", "interrogate")
    assert read.code == 0, read.stderr
    assert read.json()["serial_number"] == serial


def test_a_given_serial_is_kept_and_nothing_is_said_about_it(start_emulator):
    emu = start_emulator("--serial", "GIVEN-7", *FROZEN, transport="tcp")
    assert emu.serial == "GIVEN-7"
    assert "no --serial given" not in emu.stderr()


def test_new_serials_fit_the_protocol_and_avoid_look_alikes():
    assert not set("IO01") & set(NEW_SERIAL_ALPHABET)
    drawn = {new_serial() for _ in range(2000)}
    assert len(drawn) == 2000
    assert all(valid_serial(s) and len(s) <= SERIAL_LEN for s in drawn)


# --- a dead port, a port that does not open ---------------------------------------------------


def test_a_dead_port_says_what_it_waits_for_then_fails_in_one_line():
    master, slave = os.openpty()  # a serial line with nothing on its other end
    try:
        port = os.ttyname(slave)
        result = run_cli("--port", port, "--timeout", "0.5", "interrogate")
    finally:
        os.close(slave)
        os.close(master)
    assert result.code == ExitCode.LINK, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr
    assert lines[0] == (f"ithcli: waiting for a pump to answer on {port}: nothing has come back to HELLO in 0.5 s; "
                        "asking again, up to 1 s more")
    assert lines[1] == (f"ithcli: error: no reply from the pump on {port} to HELLO after 3 attempts of 0.5 s: "
                        "nothing at all came back (is a pump on this port, and switched on?)")


@pytest.mark.parametrize("port, why", [
    ("/dev/ttyITH-NO-SUCH", "no such device (`ithcli ports` lists this computer's serial ports)"),
    ("/dev/null", "not a serial device"),
])
def test_a_port_that_does_not_open_says_why_once(port, why):
    result = run_cli("--port", port, "interrogate")
    assert_one_line_error(result, ExitCode.LINK)
    assert error_line(result) == f"ithcli: error: cannot open port {port}: {why}"


def test_a_refused_tcp_port_says_why_once():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{s.getsockname()[1]}"
    s.close()  # nothing listens there now
    result = run_cli("--port", url, "interrogate")
    assert_one_line_error(result, ExitCode.LINK)
    assert error_line(result) == f"ithcli: error: cannot open port {url}: connection refused (nothing listens there)"


def test_pyserials_repeated_reasons_are_said_once():
    import serial

    try:
        try:
            raise FileNotFoundError(2, "No such file or directory")
        except FileNotFoundError as inner:
            raise serial.SerialException(2, f"could not open port /dev/x: {inner}") from inner
    except serial.SerialException as exc:
        assert _open_why(exc) == "no such device (`ithcli ports` lists this computer's serial ports)"
    nested = serial.SerialException("could not open port /dev/x: could not open port /dev/x: [Errno 5] boom")
    assert _why(nested) == "boom"
    assert _why(OSError("the device hung up")) == "the device hung up"
