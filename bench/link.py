"""Link: INTERROGATE round trips over a pty, in an authenticated session (AES-GCM both
ways: the real path), through ithcli's own Link and PumpClient.

    python bench/link.py [--n 200] [--baud 115200]

1. The emulator paces its replies like a UART at --baud (ith-emulator --baud N, 10
   bits a byte): the median round trip is compared with the wire time of the bytes
   at that rate (goal: within 1.1x).
2. Without pacing: the median round-trip overhead (goal: under 0.5 ms), with and
   without ithcli's audit log (one fsync'd line per exchange, on in the real CLI).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from _common import pair, start_emulator, stop, table


def measure(url: str, key_store: str, n: int, audit: bool) -> tuple[list[float], int, int]:
    from ithcli.app import PumpSession, Records, Settings

    tmp = tempfile.mkdtemp(prefix="ith-bench-link-")
    settings = Settings(port=url, timeout=5, json=True, verbose=0, audit_path=os.path.join(tmp, "audit.jsonl"),
                        state_dir=tmp, key_store_dir=key_store, operator="bench")
    app = PumpSession(settings, Records.from_settings(settings))
    client = app.client()
    if not audit:
        client.on_exchange = None
    sizes = {}
    write = client.link.write

    def spy(data: bytes) -> None:
        sizes["request"] = len(data)
        write(data)

    client.link.write = spy  # type: ignore[method-assign]  # a spy on this one link: records the request's size
    feed = client.session.decoder.feed

    def spy_feed(data: bytes):
        out = feed(data)
        for item in out:
            if hasattr(item, "raw"):
                sizes["reply"] = len(item.raw)
        return out

    client.session.decoder.feed = spy_feed  # type: ignore[method-assign]  # a spy: records the reply's size
    for _ in range(5):
        client.interrogate()  # warm
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.interrogate()
        times.append(time.perf_counter() - t)
    app.close()
    return times, sizes["request"], sizes["reply"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--baud", type=int, default=115200)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ith-bench-link-")
    key_store = os.path.join(tmp, "keys")
    rows = []

    proc, url, key_file = start_emulator("--pty", "--time-scale", "1e-9", "--baud", str(args.baud), workdir=tmp)
    try:
        pair(key_file, key_store)
        times, req, rep = measure(url, key_store, args.n, audit=False)
    finally:
        stop(proc)
    per_byte = 10 / args.baud
    wire_reply = rep * per_byte
    wire_both = (req + rep) * per_byte
    med = statistics.median(times)
    rows.append((f"wire time of the reply ({rep} B) at {args.baud} baud (baseline)", f"{wire_reply * 1e3:.3f}",
                 "1.00", ""))
    rows.append((f"wire time of request ({req} B) + reply", f"{wire_both * 1e3:.3f}",
                 f"{wire_both / wire_reply:.2f}", ""))
    rows.append(("INTERROGATE round trip, emulator paced (median)", f"{med * 1e3:.3f}", f"{med / wire_reply:.2f}",
                 "<= 1.10 x reply wire time"))
    rows.append(("  p90", f"{sorted(times)[int(len(times) * 0.9)] * 1e3:.3f}", "", ""))

    proc, url, key_file = start_emulator("--pty", "--time-scale", "1e-9", workdir=tmp)
    try:
        pair(key_file, key_store)
        fast, _, _ = measure(url, key_store, args.n, audit=False)
        audited, _, _ = measure(url, key_store, args.n, audit=True)
    finally:
        stop(proc)
    rows.append(("INTERROGATE round trip, no pacing (median)", f"{statistics.median(fast) * 1e3:.3f}", "",
                 "< 0.5 ms"))
    rows.append(("  p90", f"{sorted(fast)[int(len(fast) * 0.9)] * 1e3:.3f}", "", ""))
    rows.append(("  with the audit log (fsync per exchange), median", f"{statistics.median(audited) * 1e3:.3f}",
                 "", ""))
    table(f"link over a pty, sealed session ({args.n} round trips; ms; ratio against the reply's wire time)",
          rows, ("what", "ms", "ratio", "goal"))


if __name__ == "__main__":
    main()
