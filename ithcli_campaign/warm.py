"""A warm ithcli: one process that has imported ithcli forks a fresh child per run.

Starting Python and importing ithcli costs ~95 ms of the ~140 ms CPU an `ithcli program`
run takes, which is what limits a long campaign (100,000 sessions). This is the
forkserver pattern: `python -m ithcli_campaign.warm` imports ithcli once, then for
each request forks a child that runs `ithcli.cli.main(argv)` with its own stdout and
stderr files, environment and exit code, exactly as the console script would after
its imports. The campaign runner itself imports nothing of ithcli but its emulator
launcher: it talks to this process over a pipe, one JSON line each way.

Request (stdin):  {"argv": [...], "env": {...}, "stdout": PATH, "stderr": PATH}
Replies (stdout): {"pid": N}  then  {"exit": CODE}   (CODE < 0: killed by signal -CODE)
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ithcli.emulator_process import stop_process

from .pump import CampaignError

HUNG = -1  # what WarmCli.run returns for a child that outlived its timeout


def _serve() -> None:
    import ithcli.cli  # everything a write session needs, imported once
    import ithcli.commands.bolus
    import ithcli.commands.catheter
    import ithcli.commands.clock
    import ithcli.commands.program
    import ithcli.commands.ptm
    import ithcli.commands.reconcile
    import ithcli.commands.refill  # noqa: F401  (imported to load it, as the ones above)
    from protocol import codec

    codec.warm_up()
    requests = sys.stdin.buffer
    replies = sys.stdout.buffer
    for line in requests:
        req = json.loads(line)
        replies.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)  # never returns
        replies.write(json.dumps({"pid": pid}).encode() + b"\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        replies.write(json.dumps({"exit": code}).encode() + b"\n")
        replies.flush()


def _child(req: dict) -> None:
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = ["ithcli", *req["argv"]]
        from ithcli.cli import main

        try:
            main(req["argv"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the launcher's own failure: make it visible as a traceback
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class WarmCli:
    """The campaign's handle on one warm ithcli process (one run at a time)."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "warm.stderr", "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "ithcli_campaign.warm"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err)
        self._buf = b""

    # properties, not attributes set here: a subclass may start its own process (tests/cli_harness.py)
    @property
    def _stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None  # opened with PIPE
        return self.proc.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None  # opened with PIPE
        return self.proc.stdout

    def run(self, argv: list[str], env: dict, timeout: float) -> tuple[int, str, str]:
        out, err = self.workdir / "cli.stdout", self.workdir / "cli.stderr"
        req = {"argv": argv, "env": env, "stdout": str(out), "stderr": str(err)}
        self._stdin.write(json.dumps(req).encode() + b"\n")
        self._stdin.flush()
        pid = self._reply(60.0)["pid"]
        try:
            code = self._reply(timeout)["exit"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(60.0)
            code = HUNG
        return code, out.read_text(errors="replace"), err.read_text(errors="replace")

    def _reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self._stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise CampaignError(f"the warm ithcli died: {(self.workdir / 'warm.stderr').read_text()[-500:]}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self._stdin.close()  # end of requests: it exits
            stop_process(self.proc)  # killed if it has not within STOP_TIMEOUT
        self._stdout.close()


if __name__ == "__main__":
    _serve()
