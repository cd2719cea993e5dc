"""Codec: frames per second for parse (sync, length and CRC in plain Python, then the
body parser protocol/struct_body.py generates) and build of one ~80-byte frame, and
where decode spends its time (compiled Construct, which the codec used before, beside it).

    python bench/codec.py [--n 20000]

The baseline (ratio 1.00) is the declarative (interpreted) Construct parse of the
same frame, measured in the same run; the goal is at least 50,000 frames/s each.
"""
from __future__ import annotations

import argparse
import io  # noqa: F401  (the timed statements below use it)
import struct
import timeit

from _common import table

from protocol import Command, EventType, Priority, bodies, codec, crc, framing
from protocol.framing import RawFrame, parse_frame


def frame() -> tuple[int, bodies.ReadLogResponse, bool, bytes]:
    """READ_LOG reply with three events: a fixed-layout frame of 88 bytes (the nearest
    realistic message to 80 bytes; PREPARE_PROGRAM's reply with 2 steps is 73)."""
    events = tuple(bodies.Event(i, 1_700_000_000, EventType.REFILL, Priority.NONE, 20_000, 25_000_000)
                   for i in range(3))
    body = bodies.ReadLogResponse(oldest_index=0, event_count=3, events=events)
    return Command.READ_LOG, body, True, codec.encode(Command.READ_LOG, body, seq=1, response=True)


def per_op(stmt, n: int, env: dict) -> float:
    return min(timeit.repeat(stmt, number=n, repeat=5, globals=env)) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    command, body, response, data = frame()
    raw = parse_frame(data)[1]
    assert isinstance(raw, RawFrame), raw
    compiled = codec._payload_struct(command, response).compile()  # what the codec used before struct_body
    parse, _ = codec._decoder(command, response)
    parsed, _ = parse(raw.payload)
    fields = codec._fields_of(codec._payload_struct(command, response), body, "")
    hand = struct.Struct(">IIB" + "IQBBII" * 3)
    env = dict(globals(), data=data, raw=raw, body=body, command=command, compiled=compiled, parsed=parsed,
               hand=hand, crc=crc, parse=parse, fields=fields, build=codec._builder(command, response))
    t_decl = per_op("codec.decode_declarative(data)", n // 10, env)
    rows = [(f"parse, declarative Frame ({len(data)} B; baseline)", f"{t_decl * 1e6:.1f}", f"{1 / t_decl:,.0f}",
             "1.00", "")]
    # the default install's CRC is pure Python; with google-crc32c installed, both are measured
    crcs = [("python", crc.crc32c_pure)] + ([("c", crc.crc32c_c)] if crc.crc32c_c else [])
    for name, impl in crcs:
        framing.crc32c = impl  # type: ignore[attr-defined]  # swaps framing's own crc32c to time each one
        t_parse = per_op("codec.decode(parse_frame(data)[1])", n, env)
        t_build = per_op("codec.encode(command, body, seq=1, response=True)", n, env)
        rows += [
            (f"parse: parse_frame + decode ({name} CRC)", f"{t_parse * 1e6:.1f}", f"{1 / t_parse:,.0f}",
             f"{t_decl / t_parse:.2f}", ">= 50,000/s"),
            (f"build: encode ({name} CRC)", f"{t_build * 1e6:.1f}", f"{1 / t_build:,.0f}",
             f"{t_decl / t_build:.2f}", ">= 50,000/s"),
        ]
    framing.crc32c = crc.crc32c  # type: ignore[attr-defined]  # puts framing's own crc32c back
    table("codec (us per frame, frames/s, speed-up against the declarative parse)",
          rows, ("what", "us", "frames/s", "x decl", "goal"))

    parts = [
        ("crc32c, pure Python", "crc.crc32c_pure(data[2:-4])"),
        ("parse_frame (sync, header, CRC)", "parse_frame(data)"),
        ("decode (all)", "codec.decode(raw)"),
        ("  generated body parse (struct_body)", "parse(raw.payload)"),
        ("  (compiled Construct body parse, before)", "compiled.parse_stream(io.BytesIO(raw.payload))"),
        ("  body dataclass from the parsed fields", "bodies.ReadLogResponse._parsed(parsed)"),
        ("build_payload", "codec.build_payload(command, body, response=True)"),
        ("  body dataclass to the Struct's fields", "codec._fields_of(codec._payload_struct(command, True), body, '')"),
        ("  generated body build (struct_body)", "build(fields)"),
        ("  (compiled Construct body build, before)", "compiled.build(fields)"),
        ("hand-written struct.unpack of the body (floor)", "hand.unpack(raw.payload)"),
    ]
    if crc.crc32c_c:
        parts.insert(1, ("crc32c, C (google-crc32c)", "crc.crc32c_c(data[2:-4])"))
    table("where the time goes (us per call)", [(name, f"{per_op(stmt, n, env) * 1e6:.2f}") for name, stmt in parts],
          ("part", "us"))


if __name__ == "__main__":
    main()
