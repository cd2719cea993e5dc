"""A ward: `ith-emulator --pumps N` / `--ward FILE`, many pumps served by one process, each
behaving on the wire as a pump of its own (its serial, keys, faults, resets, state file).

One ward a transport for the module (50 pumps on ptys, a mixed ward of 50 on TCP); the
restart test starts its own in a directory it keeps."""
from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from cli_harness import run_cli
from emulator_harness import REPO, STARTER, RawClient, refused, run_emulator

from emulator.__main__ import _new_pump, build_parser
from emulator.clock import PumpClock
from emulator.server import Server
from emulator.ward_loop import TICK, Loop
from ithcli import emulator_process
from ithcli.emulator_process import WardProcess
from protocol import Command, ErrorReason, security

WARD_SIZE = 50
MIXED_WARD = """
[[pump]]
count = 24

[[pump]]
model = "valve-gated-20"
drug = "baclofen"
concentration = "2000 mcg/mL"
volume = "15 mL"
flow = "0.25 mL/day"
count = 25

[[pump]]
serial = "WARD-LAST"
drug = "ziconotide"
concentration = "25 mcg/mL"
flow = "0.1 mL/day"
"""


def start_ward(*args: str, pumps: int | None = None, ward_file: str | None = None,
               ward_dir: str | None = None, stderr: str | None = None) -> WardProcess:
    return emulator_process.start_ward(list(args), pumps=pumps, ward_file=ward_file, ward_dir=ward_dir,
                                       stderr=stderr, starter=STARTER, cwd=str(REPO))


@pytest.fixture(scope="module")
def pty_ward():
    ward = start_ward("--time-scale", "1e-9", pumps=WARD_SIZE)
    yield ward
    ward.stop()


@pytest.fixture(scope="module")
def tcp_ward(tmp_path_factory):
    path = tmp_path_factory.mktemp("ward") / "ward.toml"
    path.write_text(MIXED_WARD)
    ward = start_ward("--listen", "127.0.0.1:0", "--time-scale", "1e-9", ward_file=str(path))
    yield ward
    ward.stop()


@pytest.fixture(params=["pty", "tcp"])
def ward(request) -> WardProcess:
    return request.getfixturevalue(f"{request.param}_ward")


def status(client: RawClient):
    return client.request(Command.INTERROGATE).body


def test_the_manifest_lists_every_pump_with_its_own_port_and_files(ward):
    data = json.loads(Path(ward.manifest_path).read_text())
    assert data["format"] == "ith-ward-manifest" and data["version"] == 1
    assert data["pid"] == ward.pid
    pumps = data["pumps"]
    assert len(pumps) == WARD_SIZE
    for name in ("serial", "url", "key_file", "control", "state"):
        assert len({p[name] for p in pumps}) == WARD_SIZE, name  # nothing shared between pumps
    for pump in pumps:
        assert os.path.isabs(pump["key_file"]) and os.path.isabs(pump["state"])
        assert stat.S_IMODE(os.stat(pump["key_file"]).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(pump["control"]).st_mode)
        assert json.loads(Path(pump["state"]).read_text())["pump"]["serial"] == pump["serial"]
    assert not any(name.endswith(".tmp") for name in os.listdir(os.path.dirname(ward.manifest_path)))


def test_every_pump_answers_as_itself_with_its_own_keys(ward):
    key_ids = set()
    for pump in ward.pumps:
        keys = pump.keys()
        with RawClient(pump.url, keys=keys) as client:
            hello, _ = client.hello("clinician")  # the pump announces its own key
            assert hello.body.key_id == security.key_id(keys["clinician"])
            key_ids.add(hello.body.key_id)
            client.handshake("clinician", keys["clinician"])
            assert status(client).serial_number == pump.serial
    assert len(key_ids) == WARD_SIZE


def test_a_pump_refuses_its_neighbours_key(ward):
    one, neighbour = ward.pumps[3], ward.pumps[4]
    with RawClient(one.url) as client:
        with pytest.raises(AssertionError, match="refused|proof|AUTH"):
            client.handshake("clinician", neighbour.keys()["clinician"])


def test_the_tcp_ward_is_mixed_as_its_file_says(tcp_ward):
    pumps = tcp_ward.pumps
    assert all(p.url.startswith("socket://127.0.0.1:") for p in pumps)
    assert [p.model for p in pumps] == ["peristaltic-40"] * 24 + ["valve-gated-20"] * 25 + ["peristaltic-40"]
    assert [p.drug for p in pumps] == ["morphine"] * 24 + ["baclofen"] * 25 + ["ziconotide"]
    assert pumps[-1].serial == "WARD-LAST"
    with RawClient(pumps[30].url, keys=pumps[30].keys()) as client:
        body = status(client)
        assert body.concentration_ng_per_ml == 2_000_000 and body.reservoir_ul == 15_000


def test_a_fault_on_one_pump_affects_that_pump_only(ward):
    faulty, neighbour = ward.pumps[10], ward.pumps[11]
    with RawClient(faulty.url, keys=faulty.keys()) as a, RawClient(neighbour.url, keys=neighbour.keys()) as b:
        assert ward.control(10, "fault", name="drop_reply") == {"ok": True, "armed": {"drop_reply": 1}}
        assert ward.control(neighbour.serial, "faults")["armed"] == {}
        assert status(b).serial_number == neighbour.serial  # not dropped: the fault is not its
        a.timeout = 0.5
        with pytest.raises(TimeoutError):
            status(a)
        a.timeout = 2.0
        assert status(a).serial_number == faulty.serial  # used up by the one it dropped
    assert ward.control(10, "faults")["armed"] == {}


def test_a_reset_ends_the_sessions_of_that_pump_only(ward):
    reset, neighbour = ward.pumps[20], ward.pumps[21]
    with RawClient(reset.url, keys=reset.keys()) as a, RawClient(neighbour.url, keys=neighbour.keys()) as b:
        assert ward.control(20, "reset")["ok"]
        answer = a.request(Command.INTERROGATE)
        assert answer.auth is None  # in clear: this pump lost its session key with its RAM
        refused(answer, ErrorReason.NOT_AUTHENTICATED)
        assert status(b).serial_number == neighbour.serial  # sealed, in its session still
        assert "RESET" in str(ward.control(20, "state")["alarms"])
        assert "RESET" not in str(ward.control(21, "state")["alarms"])


def test_each_pump_keeps_its_own_clock(ward):
    before = [ward.control(i, "state")["pump_time"] for i in (30, 31)]
    ward.control(30, "advance", seconds=86_400)
    after = [ward.control(i, "state")["pump_time"] for i in (30, 31)]
    assert after[0] - before[0] >= 86_400
    assert after[1] - before[1] < 60


def test_keys_pair_from_the_manifest_then_the_cli_reads_each_pump(ward, tmp_path):
    env = {"ITHCLI_KEY_STORE": str(tmp_path / "keys"), "ITHCLI_STATE_DIR": str(tmp_path / "state")}
    paired = run_cli("--json", "keys", "pair", "--from", ward.manifest_path, env=env)
    assert paired.code == 0, paired.stderr
    rows = paired.json()["paired"]
    assert [r["serial_number"] for r in rows] == [p.serial for p in ward.pumps]
    assert len(list((tmp_path / "keys").glob("*.json"))) == WARD_SIZE
    for pump in (ward.pumps[0], ward.pumps[25], ward.pumps[-1]):
        result = run_cli("--port", pump.url, "--json", "interrogate", env=env)
        assert result.code == 0, result.stderr
        assert result.json()["serial_number"] == pump.serial
    again = run_cli("keys", "pair", "--from", ward.manifest_path, env=env)  # the same keys: nothing to refuse
    assert again.code == 0, again.stderr


def test_a_restarted_ward_keeps_each_pumps_state(tmp_path):
    ward_dir = str(tmp_path / "w")
    ward = start_ward("--time-scale", "1e-9", pumps=WARD_SIZE, ward_dir=ward_dir)
    try:
        ward.control(5, "advance", seconds=10 * 86_400)  # 10 days of delivery on pump 5 only
        ward.control(6, "reset")
        before = [ward.control(i, "state") for i in range(WARD_SIZE)]
        serials = [p.serial for p in ward.pumps]
        key_files = [Path(p.key_file).read_text() for p in ward.pumps]
        # a second ward on the same files would take the control sockets of the first
        _one_line_refusal(run_emulator("--pumps", "2", "--ward-dir", ward_dir), "in use by another running ward",
                          code=1)
        assert ward.control(0, "state")["serial"] == serials[0]
    finally:
        assert ward.stop() == 0
    ward = start_ward("--time-scale", "1e-9", pumps=WARD_SIZE, ward_dir=ward_dir)
    try:
        assert [p.serial for p in ward.pumps] == serials
        assert [Path(p.key_file).read_text() for p in ward.pumps] == key_files
        after = [ward.control(i, "state") for i in range(WARD_SIZE)]
        for i, (old, new) in enumerate(zip(before, after, strict=True)):
            assert new["serial"] == old["serial"], i
            assert new["reservoir_nl"] == old["reservoir_nl"], i
            assert new["delivered_nl"] == old["delivered_nl"], i
            assert new["alarms"] == old["alarms"], i
            assert 0 <= new["pump_time"] - old["pump_time"] < 60, i
        assert after[5]["pump_time"] - after[4]["pump_time"] >= 10 * 86_400 - 60
        assert after[4]["reservoir_nl"] - after[5]["reservoir_nl"] >= 1_900_000  # 10 days at 0.2 mL/day
        assert "RESET" in str(after[6]["alarms"]) and "RESET" not in str(after[7]["alarms"])
        with RawClient(ward.pumps[5].url, keys=ward.pumps[5].keys()) as client:
            assert status(client).serial_number == serials[5]
    finally:
        ward.stop()


def _one_line_refusal(result, *fragments: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ith-emulator: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("toml, fragments", [
    ("[[pump]]\nvolume = '99 mL'\n", ("pump 1: --volume 99000 uL exceeds the peristaltic-40 capacity",)),
    ("[[pump]]\n[[pump]]\ndrug = 'coffee'\n", ("pump 2: argument --drug: invalid choice: 'coffee'",)),
    ("[[pump]]\nflow = 'fast'\n", ("pump 1: argument --flow:",)),
    ("[[pump]]\ncolour = 'red'\n", ("pump 1: unknown key 'colour'",)),
    ("[[pump]]\nserial = 'A-1'\n[[pump]]\nserial = 'A-1'\n", ("pump 2: serial 'A-1' is pump 1's too",)),
    ("[[pump]]\nserial = 'A-1'\ncount = 2\n", ("a serial belongs to one pump",)),
    ("[[pump]]\ncount = 0\n", ("'count' must be a whole number from 1",)),
    ("[pumps]\n", ("unknown table or key 'pumps'",)),
    ("pump = [", ("not TOML",)),
])
def test_a_bad_ward_file_is_one_line(tmp_path, toml, fragments):
    path = tmp_path / "ward.toml"
    path.write_text(toml)
    _one_line_refusal(run_emulator("--ward", path, "--ward-dir", tmp_path / "w"), f"--ward {path}", *fragments)


@pytest.mark.parametrize("args, fragment", [
    (("--pumps", "0"), "give 1..1200 pumps"),
    (("--pumps", "2", "--serial", "X-1"), "--serial names one pump"),
    (("--ward", "w.toml", "--serial", "X-1"), "--serial names one pump"),
    (("--pumps", "2", "--key-file", "k.json"), "--key-file is per pump in a ward"),
    (("--pumps", "2", "--ward", "w.toml"), "not allowed with argument"),
    (("--ward-dir", "somewhere"), "--ward-dir DIR needs --pumps N or --ward FILE"),
    (("--pumps", "3", "--listen", "127.0.0.1:65534"), "goes past 65535"),
    (("--ward", "/nonexistent/ward.toml"), "cannot read it"),
])
def test_bad_ward_arguments_are_one_line(args, fragment):
    _one_line_refusal(run_emulator(*args), fragment)


def _pumps_on(loop: Loop, count: int) -> list[Server]:
    parser = build_parser()
    args = parser.parse_args(["--key-file", "unused.json"])
    servers = []
    for i in range(count):
        clock = PumpClock(1_700_000_000, 1e-9)
        server = Server(_new_pump(parser, args, clock, f"UNIT-{i}"), clock, loop=loop)
        server.open_pty()
        servers.append(server)
    return servers


def test_in_a_ward_a_pump_that_fails_stops_alone(monkeypatch, caplog):
    """Unit: one pump's clock raising (a bug) stops that pump, as its own process would have
    stopped, and the loop goes on ticking the others; alone, the failure still ends the emulator."""
    def broken() -> None:
        raise RuntimeError("a bug in one pump")

    ward = Loop(isolate=True)
    failing, other = _pumps_on(ward, 2)
    monkeypatch.setattr(failing, "tick", broken)
    try:
        ward._tick_due(time.monotonic() + TICK)
        assert list(ward.servers) == [other]
        assert "pump UNIT-0 failed" in caplog.text
        assert {key.data[0] for key in ward.sel.get_map().values()} <= {None, other}  # none of its descriptors
    finally:
        ward.close()
    alone = Loop()
    (server,) = _pumps_on(alone, 1)
    monkeypatch.setattr(server, "tick", broken)
    try:
        with pytest.raises(RuntimeError):
            alone._tick_due(time.monotonic() + TICK)
    finally:
        alone.close()


def test_listen_on_a_port_gives_the_pumps_that_port_and_the_next_ones():
    for _ in range(5):  # another process may take a port in the range meanwhile: try another range
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + 2 > 65535:
            continue
        try:
            ward = start_ward("--listen", f"127.0.0.1:{base}", pumps=3)
        except emulator_process.EmulatorStartError as exc:
            assert "Address already in use" in str(exc), exc
            continue
        try:
            assert [p.url for p in ward.pumps] == [f"socket://127.0.0.1:{base + i}" for i in range(3)]
            with RawClient(ward.pumps[2].url, keys=ward.pumps[2].keys()) as client:
                assert status(client).serial_number == ward.pumps[2].serial
        finally:
            ward.stop()
        return
    pytest.fail("no free range of 3 ports found in 5 tries")
