"""Start-up: `ithcli --help` against a bare one-command Click app, and one
`ithcli --port URL interrogate` against a warm emulator (TCP and pty).

    python bench/startup.py [--runs 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from _common import median_run, pair, start_emulator, stop, table

BARE = '''
import click

@click.command()
@click.option("--name", default="x")
def main(name):
    """A bare one-command Click app."""

main()
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    runs = ap.parse_args().runs
    tmp = tempfile.mkdtemp(prefix="ith-bench-startup-")
    bare = os.path.join(tmp, "bare.py")
    with open(bare, "w") as fh:
        fh.write(BARE)
    py = sys.executable
    t_bare = median_run([py, bare, "--help"], runs)
    t_help = median_run([py, "-m", "ithcli", "--help"], runs)
    rows = [("bare Click app --help (baseline)", f"{t_bare * 1000:.1f}", "1.00", ""),
            ("ithcli --help", f"{t_help * 1000:.1f}", f"{t_help / t_bare:.2f}", "<= 1.10")]
    key_store = os.path.join(tmp, "keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    env.update(ITHCLI_KEY_STORE=key_store, ITHCLI_STATE_DIR=os.path.join(tmp, "state"))
    for transport in (["--listen", "127.0.0.1:0"], ["--pty"]):
        proc, url, key_file = start_emulator(*transport, "--time-scale", "1e-9", workdir=tmp)
        try:
            pair(key_file, key_store)
            t = median_run([py, "-m", "ithcli", "--port", url, "interrogate"], runs, env=env)
            tj = median_run([py, "-m", "ithcli", "--port", url, "--json", "interrogate"], runs, env=env)
        finally:
            stop(proc)
        kind = "TCP" if "socket://" in url else "pty"
        rows.append((f"ithcli interrogate, warm emulator ({kind})", f"{t * 1000:.1f}", f"{t / t_bare:.2f}", ""))
        rows.append((f"ithcli --json interrogate ({kind})", f"{tj * 1000:.1f}", f"{tj / t_bare:.2f}", ""))
    table(f"start-up (median of {runs} runs, ms; ratio against the bare Click app)", rows,
          ("what", "ms", "ratio", "goal"))


if __name__ == "__main__":
    main()
