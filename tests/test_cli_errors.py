"""Every failure: one clear line on stderr, the documented exit code, no traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import peers
import pytest
from cli_harness import assert_one_line_error, cli_env, run_cli

from ithcli_campaign.proxy import TO_CLI, Fault


def test_no_port_names_the_option_and_the_env_var():
    result = run_cli("interrogate")
    assert_one_line_error(result, 3, "--port", "ITHCLI_PORT")


def test_no_port_with_json_prints_an_error_object():
    result = run_cli("--json", "interrogate")
    assert result.code == 3
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "link" and error["exit_code"] == 3
    assert "--port" in error["message"]


def test_missing_device_path():
    result = run_cli("--port", "/dev/ttyDOES-NOT-EXIST", "interrogate")
    assert_one_line_error(result, 3, "/dev/ttyDOES-NOT-EXIST")


def test_nothing_listening_on_a_tcp_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = run_cli("--port", f"socket://127.0.0.1:{port}", "interrogate")
    assert_one_line_error(result, 3, "cannot open port")


def test_a_silent_device_is_a_link_error_after_bounded_retries():
    peer = peers.Peer(peers.silent)
    try:
        result = run_cli("--port", peer.url, "--timeout", "0.1", "interrogate")  # a peer that never answers right
    finally:
        peer.close()
    assert_one_line_error(result, 3, "no reply", "3 attempts")
    # three HELLOs were sent, and nothing else
    frames = [f for f in __import__("protocol").FrameDecoder().feed(bytes(peer.received))
              if hasattr(f, "command")]
    assert len(frames) == 3


def test_garbage_on_the_wire_is_a_protocol_error():
    peer = peers.Peer(peers.garbage())
    try:
        result = run_cli("--port", peer.url, "--timeout", "0.1", "interrogate")  # a peer that never answers right
    finally:
        peer.close()
    assert_one_line_error(result, 4, "no valid reply")


def test_an_error_frame_is_reported_as_rejected():
    import protocol

    peer = peers.Peer(peers.rejecting(protocol.ErrorReason.INVALID_STATE, detail="not today"))
    try:
        result = run_cli("--port", peer.url, "interrogate")
    finally:
        peer.close()
    assert_one_line_error(result, 5, "invalid_state", "not today")


def test_a_corrupted_reply_is_retried_and_the_read_succeeds(start_emulator):
    emu = start_emulator(transport="tcp")
    # one bit of the pump's first reply flipped in its payload: the CRC no longer matches
    flip = Fault(kind="flip", direction=TO_CLI, target="any", index=0, offset=12, bit=4)
    proxy = peers.proxy_to(emu, flip)
    try:
        result = run_cli("--port", proxy.url, "--timeout", "0.5", "-v", "--json", "interrogate")
    finally:
        proxy.close()
    assert flip.fired, flip
    assert result.code == 0, result.stderr
    assert "bad-crc" in result.stderr or "CRC" in result.stderr
    assert json.loads(result.stdout)["serial_number"]


def test_a_dead_emulator_is_a_link_error(start_emulator):
    emu = start_emulator(transport="tcp")
    url = emu.url
    emu.kill()
    assert_one_line_error(run_cli("--port", url, "interrogate"), 3)


def test_bad_option_values_are_usage_errors():
    result = run_cli("--timeout", "-1", "interrogate")
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert run_cli("no-such-command").code == 2


def test_malformed_drug_library_names_file_entry_and_field(tmp_path, start_emulator):
    lib = tmp_path / "clinic.toml"
    lib.write_text('[library]\nversion = "x"\n[drugs.morphine]\ncode = "MORPHINE"\ndose_unit = "mg/hour"\n')
    emu = start_emulator()
    result = run_cli("--port", emu.url, "--drug-library", str(lib), "interrogate")
    assert_one_line_error(result, 2, str(lib), "drugs.morphine", "dose_unit")


def test_unreadable_toml_library(tmp_path, start_emulator):
    lib = tmp_path / "broken.toml"
    lib.write_text("[library\n")
    emu = start_emulator()
    assert_one_line_error(run_cli("--port", emu.url, "--drug-library", str(lib), "interrogate"), 2, "not valid TOML")


def test_help_does_not_import_construct_serial_or_rich():
    code = (
        "import sys\nsys.argv=['ithcli','--help']\nfrom ithcli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy=sorted(m for m in sys.modules if m.split('.')[0] in ('construct','serial','rich','protocol'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stderr, proc.stderr
    assert "interrogate" in proc.stdout


def test_ports_lists_serial_ports_as_json():
    result = run_cli("--json", "ports")
    assert result.code == 0, result.stderr
    assert isinstance(result.json()["ports"], list)


def test_the_lazy_command_table_matches_every_command():
    """--help lists commands from a table so it imports none of them; it must not drift."""
    import importlib

    from ithcli.cli import COMMANDS

    for name, (module, attr, short) in COMMANDS.items():
        command = getattr(importlib.import_module(f"ithcli.commands.{module}"), attr)
        assert command.name == name
        assert command.get_short_help_str(limit=55) == short, name


def _run_with_stdout_closed(*args: str) -> subprocess.CompletedProcess:
    """ithcli with a stdout whose reader has already gone (`ithcli ... | head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "ithcli", *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env=cli_env(), timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["rich", "json"])
def test_a_closed_stdout_is_a_quiet_exit_141_not_a_silent_exit_1(start_emulator, json_flag):
    # Click and rich both turn EPIPE into a bare exit 1, which this CLI documents as "a bug";
    # a read whose reader went away ends as git's does: exit 141, nothing said (writes:
    # tests/test_cli_conventions.py)
    emu = start_emulator(transport="tcp")
    proc = _run_with_stdout_closed(*json_flag, "--port", emu.url, "interrogate")
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


def test_help_into_a_closed_stdout_is_exit_141_too():
    proc = _run_with_stdout_closed("--help")
    assert proc.returncode == 141 and "Exception ignored" not in proc.stderr, proc.stderr
