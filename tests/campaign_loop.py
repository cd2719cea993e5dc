"""The fault campaign in process (tests/loopback.py), shared by the campaign's tests.

LoopWorker is ithcli_campaign.runner.Worker with its pump, proxy and ithcli in this process;
in_process_campaign() runs the CI campaign once per test run (200 seeded sessions and the cut
sweep) and hands every test the same summary, so checking more of it costs no more sessions.
"""
from __future__ import annotations

import functools
import json
from typing import cast

from loopback import InProcessPump, run_ithcli

from ithcli_campaign.proxy import FaultProxy
from ithcli_campaign.pump import EmulatorProcess
from ithcli_campaign.runner import EMULATOR_ARGS, Worker, run_campaign

CI_SESSIONS = 200  # in process, with the cut sweep
CI_SEED = 20260701


class LoopWorker(Worker):
    """A campaign worker whose pump, proxy and ithcli are in this process (tests/loopback.py):
    the same Worker.session, with its checks, on an InProcessPump."""

    pump: InProcessPump | None = None

    def start(self) -> LoopWorker:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.root / "ithcli-state"
        self.key_store = self.root / "keys"
        self.pump = pump = InProcessPump(*EMULATOR_ARGS)
        pump.pair(self.key_store)
        # stand-ins for the real ones: Worker.session uses only what they share (the pump's
        # control(); the proxy's arm() and disarm())
        self.emulator = cast(EmulatorProcess, pump)
        self.proxy = cast(FaultProxy, pump.line)
        self.truth = pump.truth()
        self.warm = None
        self.link = "in-process"
        return self

    def stop(self) -> None:
        if self.pump:
            self.pump.close()

    def cli(self, *args: str):
        assert self.pump is not None, "start() first"
        argv = ["--port", self.pump.url, "--timeout", str(self.timeout), "--json", *args]
        rc, stdout, stderr = run_ithcli(argv, self.env(), self.pump.clock)
        try:
            out = json.loads(stdout) if stdout.strip() else None
        except ValueError:
            out = None
        return rc, out, stderr


@functools.cache
def in_process_campaign() -> dict:
    """The CI campaign's summary (Summary.as_dict), run once per test run."""
    summary = run_campaign(CI_SESSIONS, seed=CI_SEED, workers=4, timeout=0.3, sweep=True, worker_class=LoopWorker)
    return summary.as_dict()
