"""Run the real `ithcli` as a subprocess, the way a user or a script does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, input: str | None = None) -> CliResult:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    full_env["COLUMNS"] = "120"
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "ithcli", *args],
        capture_output=True,
        text=True,
        env=full_env,
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
