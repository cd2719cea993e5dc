"""ith-campaign / python -m ithcli_campaign: run a fault campaign and print its summary."""
from __future__ import annotations

import argparse
import json
import sys
import time

from .pump import CampaignError
from .runner import run_campaign


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ith-campaign",
        description="Run many ithcli write sessions (program, refill with or without a bridge bolus, bolus, catheter "
        "implant/revise/correct, priming bolus, clock set, patient-bolus limits) against emulated pumps under seeded "
        "random faults (a byte-level proxy and the emulator's own faults) and check every outcome against the pump's "
        "truth. Exit 0 when no violation was found, 1 otherwise, 2 when the campaign itself could not run "
        "(e.g. an emulator did not start).")
    p.add_argument("--sessions", type=int, default=300, help="random sessions (default 300)")
    p.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    p.add_argument("--workers", type=int, default=2, help="emulators run in parallel (default 2)")
    p.add_argument("--timeout", type=float, default=0.3, help="ithcli --timeout per reply (default 0.3 s)")
    p.add_argument("--no-sweep", dest="sweep", action="store_false",
                   help="skip the cut at every byte offset of the COMMIT frame and of its reply")
    p.add_argument("--launch", choices=("warm", "spawn"), default="warm",
                   help="warm (default): fork each ithcli run from a process that has already imported "
                   "ithcli (~3x fewer CPU seconds a session); spawn: a fresh `python -m ithcli` each run")
    p.add_argument("--link", choices=("tcp", "pty", "mixed"), default="tcp",
                   help="how ithcli reaches the proxy: tcp (socket:// URL, default), pty (a device path, "
                   "as a serial adapter), or mixed (even workers tcp, odd workers pty)")
    p.add_argument("--out", metavar="FILE", help="one JSON line per session")
    p.add_argument("--workdir", metavar="DIR", help="keep emulators' and ithcli's files here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)

    last = [0.0]

    def progress(summary) -> None:
        now = time.monotonic()
        if sys.stderr.isatty() and now - last[0] > 1:
            last[0] = now
            print(f"\r{summary.sessions} sessions, {len(summary.violations)} violations", end="",
                  file=sys.stderr, flush=True)

    try:
        summary = run_campaign(args.sessions, seed=args.seed, workers=args.workers, timeout=args.timeout,
                               sweep=args.sweep, out=args.out, workdir=args.workdir, progress=progress,
                               launch=args.launch, link=args.link)
    except CampaignError as exc:  # its machinery, not a finding: one line, as ithcli reports
        print(f"ith-campaign: error: {exc}", file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        print(file=sys.stderr)
    data = summary.as_dict()
    data.update(seed=args.seed, workers=args.workers, timeout=args.timeout, launch=args.launch, link=args.link)
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    else:
        _report(data, args)
    return 1 if data["violations"] else 0


def _report(data: dict, args: argparse.Namespace) -> None:
    """The summary as text."""
    print(f"ith-campaign: {data['sessions']} sessions (seed {args.seed}, {args.workers} workers, "
          f"timeout {args.timeout} s, {args.launch} ithcli, {args.link} link) in {data['seconds']} s")
    print(f"  exit codes:   {dict(sorted(data['exits'].items()))}")
    print(f"  pump truth:   {data['truths']}")
    print(f"  reconciled:   {data['reconciled']}")
    print(f"  writes:       {data['writes']}")
    print("  verdicts per write (the pump's truth after it):")
    for label, counts in data["verdicts"].items():
        said = ", ".join(f"{v} {n}" for v, n in counts.items() if not v.startswith("truth "))
        truth = ", ".join(f"{v[6:]} {n}" for v, n in counts.items() if v.startswith("truth "))
        print(f"    {label:18} {said}  ({truth})")
    print(f"  activations:  {data['activations']}")
    print(f"  links:        {data['links']}")
    for kind, cuts in data["cut_offsets"].items():
        lengths = data["commit_frame_len"].get(kind, {})
        print(f"  cut sweep:    {kind:8} COMMIT {len(cuts['to_pump'])} offsets (frame {lengths.get('to_pump')} "
              f"bytes), reply {len(cuts['to_cli'])} offsets (frame {lengths.get('to_cli')} bytes)")
    print(f"  two faults:   {data['double_faults']} sessions (each fault also counted below)")
    print("  faults (armed/fired):")
    for name, n in data["faults"].items():
        print(f"    {name:40} {n:6} {data['faults_fired'].get(name, 0):6}")
    print(f"  violations:   {len(data['violations'])}")
    for v in data["violations"][:50]:
        print(f"    session {v['session']} exit {v['exit']} {json.dumps(v['fault'])}: {v['problem']}")


if __name__ == "__main__":
    sys.exit(main())
