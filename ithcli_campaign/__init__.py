"""ith-campaign: prove ithcli's three write outcomes under seeded faults.

Starts ith-emulator and ithcli as subprocesses (imports neither's logic, only ithcli's
emulator launcher, ithcli/emulator_process.py: it talks to the emulator over the wire
and its control socket, and reads ithcli's exit codes and --json output), with a
fault-injecting proxy (proxy.py) between them and a fault-free authenticated
connection (pump.TruthClient) to learn the truth. runner.py runs the sessions, writes.py
draws each one's write, plans.py its faults, oracle.py judges ithcli's verdict, summary.py
counts. See docs/reliability.md.
"""
from .proxy import Fault, FaultProxy
from .runner import Summary, run_campaign

__all__ = ["Fault", "FaultProxy", "Summary", "run_campaign"]
