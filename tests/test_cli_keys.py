"""Keys and sessions from the CLI's side: pairing, roles, refusals (exit 11)."""
from __future__ import annotations

import json
import os
import stat

import pytest
from cli_harness import assert_one_line_error, run_cli
from emulator_harness import REPO, STARTER

from ithcli import emulator_process
from protocol import security


def fresh_store(tmp_path):
    store = tmp_path / "keys"
    return {"ITHCLI_KEY_STORE": str(store), "ITHCLI_STATE_DIR": str(tmp_path / "state")}, store


def test_without_a_key_for_the_pump_nothing_is_read(start_emulator, tmp_path):
    emu = start_emulator()
    env, _ = fresh_store(tmp_path)
    result = run_cli("--port", emu.url, "--json", "interrogate", env=env)
    assert_one_line_error(result, 11, "ithcli keys pair")
    assert "EMU" not in result.stdout.replace("ithcli keys pair", "")


def test_pairing_from_the_pump_key_file_opens_a_session(start_emulator, tmp_path):
    emu = start_emulator("--serial", "PAIR-01")
    env, store = fresh_store(tmp_path)
    paired = run_cli("--json", "keys", "pair", "--from", emu.key_file, env=env)
    assert paired.code == 0, paired.stderr
    assert paired.json()["serial_number"] == "PAIR-01"
    assert stat.S_IMODE(os.stat(paired.json()["key_store_file"]).st_mode) == 0o600
    result = run_cli("--port", emu.url, "--json", "interrogate", env=env)
    assert result.code == 0, result.stderr
    assert result.json()["serial_number"] == "PAIR-01"


def test_a_reader_key_reads_but_cannot_program(start_emulator, tmp_path):
    emu = start_emulator("--serial", "READ-01", "--drug", "baclofen", "--concentration", "2000 mcg/mL",
                         "--flow", "0.25 mL/day")
    env, _ = fresh_store(tmp_path)
    assert run_cli("keys", "pair", "--from", emu.key_file, "--role", "reader", env=env).code == 0
    assert run_cli("--port", emu.url, "interrogate", env=env).code == 0
    result = run_cli("--port", emu.url, "program", "--dose", "550 mcg/day", "--yes", env=env)
    assert_one_line_error(result, 11, "clinician key")
    after = run_cli("--port", emu.url, "--json", "interrogate", env=env).json()
    assert after["daily_dose"] == {"value": 500, "unit": "mcg/day"}


def test_a_group_readable_key_file_is_refused(start_emulator, tmp_path):
    emu = start_emulator()
    env, store = fresh_store(tmp_path)
    assert run_cli("keys", "pair", "--from", emu.key_file, env=env).code == 0
    (key_file,) = store.glob("*.json")
    os.chmod(key_file, 0o644)
    assert_one_line_error(run_cli("--port", emu.url, "interrogate", env=env), 11, "readable by group or others")


def test_a_wrong_key_for_the_same_serial_cannot_open_a_session(start_emulator, tmp_path):
    emu = start_emulator("--serial", "WRONG-1")
    env, store = fresh_store(tmp_path)
    other = tmp_path / "other.json"
    made = run_cli("keys", "provision", "--serial", "WRONG-1", "--pump-key-file", str(other), env=env)
    assert made.code == 0, made.stderr
    # the store now has keys for WRONG-1, but not the ones this pump holds
    assert_one_line_error(run_cli("--port", emu.url, "interrogate", env=env), 11, "no session")


def test_provisioned_keys_serve_an_emulator_started_with_them(start_emulator, tmp_path):
    env, _ = fresh_store(tmp_path)
    pump_keys = tmp_path / "pump-keys.json"
    made = run_cli("--json", "keys", "provision", "--serial", "PROV-9", "--pump-key-file", str(pump_keys), env=env)
    assert made.code == 0, made.stderr
    assert stat.S_IMODE(os.stat(pump_keys).st_mode) == 0o600
    emu = start_emulator("--serial", "PROV-9", "--key-file", str(pump_keys))
    result = run_cli("--port", emu.url, "--json", "interrogate", env=env)
    assert result.code == 0, result.stderr
    assert result.json()["serial_number"] == "PROV-9"


def test_keys_list_shows_key_ids_never_keys(start_emulator, tmp_path):
    emu = start_emulator("--serial", "LIST-1")
    env, _ = fresh_store(tmp_path)
    run_cli("keys", "pair", "--from", emu.key_file, env=env)
    listed = run_cli("--json", "keys", "list", env=env)
    assert listed.code == 0
    rows = listed.json()["keys"]
    assert {r["role"] for r in rows} == {"reader", "clinician"}
    secret = json.load(open(emu.key_file))["keys"]["clinician"]
    assert secret not in listed.stdout


def test_keys_provision_refuses_to_overwrite_a_pump_key_file(tmp_path):
    env, _ = fresh_store(tmp_path)
    target = tmp_path / "exists.json"
    target.write_text("{}")
    assert_one_line_error(run_cli("keys", "provision", "--serial", "X-1", "--pump-key-file", str(target), env=env),
                          2, "refusing to overwrite")


def _start_ward(pumps: int) -> emulator_process.WardProcess:
    return emulator_process.start_ward(pumps=pumps, starter=STARTER, cwd=str(REPO))


def test_pairing_a_ward_is_all_or_nothing(tmp_path):
    env, store = fresh_store(tmp_path)
    ward = _start_ward(3)
    try:
        clash = ward.pumps[1]
        other = tmp_path / "other.json"  # another key for the same serial, paired first
        other.write_text(json.dumps({"format": "ithcli-pump-keys", "version": 1, "serial": clash.serial,
                                     "keys": {"clinician": security.new_key().hex()}}))
        os.chmod(other, 0o600)
        assert run_cli("keys", "pair", "--from", str(other), env=env).code == 0
        result = run_cli("keys", "pair", "--from", ward.manifest_path, env=env)
        assert_one_line_error(result, 2, clash.serial, "--replace")
        assert len(list(store.glob("*.json"))) == 1  # not one of the others was stored
        replaced = run_cli("keys", "pair", "--from", ward.manifest_path, "--replace", env=env)
        assert replaced.code == 0, replaced.stderr
        assert len(list(store.glob("*.json"))) == 3
        result = run_cli("--port", clash.url, "--json", "interrogate", env=env)
        assert result.code == 0 and result.json()["serial_number"] == clash.serial, result.stderr
    finally:
        ward.stop()


@pytest.mark.parametrize("text, fragment", [
    ('{"format": "ith-ward-manifest", "version": 1, "pid": "x", "pumps": []}', "'pid'"),
    ('{"format": "ith-ward-manifest", "version": 1, "pid": 1, "pumps": [{"serial": "A", "url": "/dev/null", '
     '"key_file": "gone.json", "control": "c.sock", "state": "s.json", "model": "m", "drug": "d"}]}', "gone.json"),
    ('{"format": "ith-ward-manifest", "version": 2, "pid": 1, "pumps": []}', "version 1"),
    ('{"format": "ith-ward-manifest", "version": 1, "pid": 1, "pumps": []}', "non-empty list"),
    ('{"format": "ith-ward-manifest", "version": 1, "pid": 1, "pumps": [{"serial": "A"}]}', "pump 1: 'url'"),
])
def test_a_bad_manifest_is_one_line(tmp_path, text, fragment):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    assert_one_line_error(run_cli("keys", "pair", "--from", str(path)), 2, fragment)


def test_a_missing_manifest_is_one_line(tmp_path):
    assert_one_line_error(run_cli("keys", "pair", "--from", str(tmp_path / "gone.json")), 2, "no such file")


def test_pairing_a_ward_as_a_reader_stores_only_reader_keys(tmp_path):
    env, store = fresh_store(tmp_path)
    ward = _start_ward(2)
    try:
        paired = run_cli("--json", "keys", "pair", "--from", ward.manifest_path, "--role", "reader", env=env)
        assert paired.code == 0, paired.stderr
        assert [row["roles"] for row in paired.json()["paired"]] == [["reader"], ["reader"]]
        for pump in ward.pumps:
            stored = json.loads((store / f"{pump.serial}.json").read_text())
            assert stored["keys"] == {"reader": pump.keys()["reader"].hex()}
        assert run_cli("--port", ward.pumps[1].url, "interrogate", env=env).code == 0
    finally:
        ward.stop()
