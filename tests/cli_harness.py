"""Run the real `ithcli` as a subprocess, the way a user or a script does."""
from __future__ import annotations

import json
import os
import itertools
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# never touch the real ~/.local/state or ~/.config from tests: throwaway defaults
_DEFAULT_STATE_DIR = tempfile.mkdtemp(prefix="ithcli-test-state-")
DEFAULT_KEY_STORE = tempfile.mkdtemp(prefix="ithcli-test-keys-")
_trusted = itertools.count(1)


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


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, input: str | None = None) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "ithcli", *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=timeout,
        input=input,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


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
