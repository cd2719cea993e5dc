"""Run the real `ithcli` as a separate process, the way a user or a script does.

By default each run is a child forked from a warm ithcli (ithcli_campaign/warm.py: a
process that has imported ithcli once, as the campaign does): its own process, exit
code, stdout, stderr and environment, without paying Python's start-up and imports
each time. ITHCLI_TEST_SPAWN=1 starts a fresh `python -m ithcli` for every run instead
(so does any run given non-empty stdin); tests that are about the start-up itself, a
terminal or signals start their own processes.
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ithcli_campaign.warm import HUNG, WarmCli

# never touch the real ~/.local/state or ~/.config from tests: throwaway defaults
_DEFAULT_STATE_DIR = tempfile.mkdtemp(prefix="ithcli-test-state-")
DEFAULT_KEY_STORE = tempfile.mkdtemp(prefix="ithcli-test-keys-")
_trusted = itertools.count(1)
SPAWN = os.environ.get("ITHCLI_TEST_SPAWN", "") == "1"


def trust(emu) -> None:
    """Pair the test key store with an emulator: copy its key file in, owner-only.

    Keys are found by the id the pump announces, so many emulators (even with the
    same serial) can be paired at once.
    """
    data = Path(emu.key_file).read_bytes()
    target = Path(DEFAULT_KEY_STORE) / f"pump-{next(_trusted)}.json"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def console_script(name: str, module: str) -> list[str]:
    """The installed console script `name` (beside this interpreter, or on PATH), or else this
    interpreter running `module` (what the script runs): never a reason to skip a test."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    exe = shutil.which(name, path=path)
    return [exe] if exe else [sys.executable, "-m", module]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def cli_env(env: dict | None = None) -> dict:
    """The environment ithcli runs in under test: no ITHCLI_* from outside, throwaway state."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    full_env["COLUMNS"] = "120"
    full_env["ITHCLI_STATE_DIR"] = _DEFAULT_STATE_DIR
    full_env["ITHCLI_KEY_STORE"] = DEFAULT_KEY_STORE
    full_env.update(env or {})
    return full_env


#: imported once by every warm ithcli besides every module of ithcli itself, so no child
#: imports (and compiles) them again: what the commands draw, parse and link with
PRELOAD = ("rich.console", "rich.table", "rich.panel", "rich.live", "rich._emoji_codes",
           "serial.urlhandler.protocol_socket", "cryptography.hazmat.primitives.ciphers.aead",
           "tomllib", "importlib.resources", "importlib.readers", "importlib.resources.readers", "zipfile",
           "secrets", "unicodedata", "encodings.idna", "base64", "shlex")
_WARM_PREAMBLE = f"""
import gc, importlib, pkgutil, runpy
import ithcli
for info in pkgutil.walk_packages(ithcli.__path__, "ithcli."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
for name in {PRELOAD!r}:
    importlib.import_module(name)
gc.freeze()  # what every child inherits: its collector leaves it alone (no copy-on-write for nothing)
runpy.run_module("ithcli_campaign.warm", run_name="__main__")
"""


class _WarmCli(WarmCli):
    """ithcli_campaign.warm.WarmCli whose process has imported all of ithcli and PRELOAD."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "warm.stderr", "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", _WARM_PREAMBLE], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err)
        self._buf = b""


# warm ithcli processes not running a command now (one command at a time each)
_idle: list[WarmCli] = []
_idle_lock = threading.Lock()


def _warm_run(args: list[str], env: dict, timeout: float) -> tuple[int, str, str]:
    with _idle_lock:
        warm = _idle.pop() if _idle else None
    if warm is None:
        warm = _WarmCli(Path(tempfile.mkdtemp(prefix="ithcli-warm-")))
    try:
        code, out, err = warm.run(args, env, timeout)
    except BaseException:
        warm.close()
        raise
    with _idle_lock:
        _idle.append(warm)
    if code == HUNG:
        raise subprocess.TimeoutExpired(["ithcli", *args], timeout, out, err)
    return code, out, err


@atexit.register
def _close_warm() -> None:
    with _idle_lock:
        while _idle:
            _idle.pop().close()


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, input: str | None = None) -> CliResult:
    if SPAWN or input:
        proc = subprocess.run(
            [sys.executable, "-m", "ithcli", *args],
            capture_output=True,
            text=True,
            env=cli_env(env),
            timeout=timeout,
            input=input,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
    # stdin is at end of file either way: /dev/null for a warm child, an empty pipe for input=""
    return CliResult(*_warm_run(list(args), cli_env(env), timeout))


def run_cli_on_terminal(*args: str, columns: int, env: dict | None = None, timeout: float = 60) -> CliResult:
    """run_cli with stdout on a pseudo-terminal `columns` wide (its window size and COLUMNS, with
    TERM set, as a person's terminal): stdout is what the terminal received, escape sequences and
    all. A warm child opens the pty's slave by its path as its stdout; this process reads the master."""
    import fcntl
    import pty
    import struct
    import termios
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)  # the bytes as written: no \r added to each \n
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every slave closed
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    full_env = cli_env({"TERM": "xterm-256color", **(env or {}), "COLUMNS": str(columns)})
    with _idle_lock:
        warm = _idle.pop() if _idle else None
    if warm is None:
        warm = _WarmCli(Path(tempfile.mkdtemp(prefix="ithcli-warm-")))
    err = warm.workdir / "cli.stderr"
    try:
        warm._stdin.write(json.dumps({"argv": list(args), "env": full_env, "stdout": os.ttyname(slave),
                                      "stderr": str(err)}).encode() + b"\n")
        warm._stdin.flush()
        warm._reply(60.0)  # its pid
        code = warm._reply(timeout)["exit"]
    except BaseException:
        warm.close()
        raise
    finally:
        # everything the child wrote is in the pty: let the reader take it all before the hang-up
        for _ in range(1000):
            if not struct.unpack("i", fcntl.ioctl(master, termios.FIONREAD, b"\0\0\0\0"))[0]:
                break
            threading.Event().wait(0.01)
        os.close(slave)  # the child's copy is closed already: the reader sees the end
        reader.join(timeout=10)
        os.close(master)
    with _idle_lock:
        _idle.append(warm)
    return CliResult(code, b"".join(received).decode(errors="replace"), err.read_text(errors="replace"))


def assert_one_line_error(result: CliResult, code: int, *fragments: str) -> None:
    """A failure is one clear line on stderr with the documented code, never a traceback."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ithcli: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


class Cli:
    """run_cli bound to one test's own state dir and audit log (so journals never leak)."""

    def __init__(self, state_dir, port: str | None = None, operator: str = "test-operator"):
        self.state_dir = str(state_dir)
        self.port = port
        self.operator = operator

    @property
    def audit_path(self) -> str:
        return os.path.join(self.state_dir, "audit.jsonl")

    def __call__(self, *args: str, env: dict | None = None, **kw) -> CliResult:
        base = {"ITHCLI_STATE_DIR": self.state_dir, "ITHCLI_OPERATOR": self.operator}
        if self.port:
            base["ITHCLI_PORT"] = self.port
        return run_cli(*args, env={**base, **(env or {})}, **kw)
