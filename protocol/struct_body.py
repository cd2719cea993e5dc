"""A message body's parse and build as generated Python over struct.Struct runs.

The declarative Structs of messages.py stay the single definition; this module reads
them once per message and writes two small functions: `parse(payload) -> (fields,
used)` and `build(fields) -> payload`. Consecutive fixed-size fields become one
struct.Struct run (a Status is one unpack_from); the adapters' checks are written
inline: Fixed ranges, Code members, Flags bits, exactly as units.py words them.
Compiled Construct spent ~7 us parsing and ~15 us building an 80-byte body, most of
it in one Python call per field; a run costs one call. tests/test_struct_body.py
requires both paths to agree on every message, valid or not.

Only the shapes messages.py uses are known here (integers, the three unit adapters,
Bytes(n), PaddedString, PascalString, PrefixedArray of a Struct, nested Structs): a
message with anything else is refused when its functions are made (Unsupported), and
tests/test_struct_body.py makes them for every message, so a new shape is taught here.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import construct as c

from .units import Code, Fixed, Flags, RangeError

Parse = Callable[[bytes], tuple[dict[str, Any], int]]
Build = Callable[[dict[str, Any]], bytes]


class ShortPayload(ValueError):
    """The payload ends before the fields its layout needs."""


class Unsupported(TypeError):
    """A Construct this module does not translate: a programming error, found by the tests."""


def _leaf(con: c.Construct) -> tuple[str, Any] | None:
    """(kind, detail) of a field this module knows, or None for a nested Struct."""
    if isinstance(con, (Fixed, Code, Flags)) and isinstance(con.subcon, c.FormatField):
        return type(con).__name__.lower(), con
    if isinstance(con, c.FormatField):
        return "int", con
    if isinstance(con, c.Bytes) and isinstance(con.length, int):
        return "bytes", con.length
    if isinstance(con, c.StringEncoded):
        inner = con.subcon
        if (isinstance(inner, c.FixedSized) and isinstance(inner.length, int)
                and isinstance(inner.subcon, c.NullStripped) and inner.subcon.pad == b"\x00"
                and inner.subcon.subcon is c.GreedyBytes):
            return "padded", (inner.length, con.encoding)
        if (isinstance(inner, c.Prefixed) and isinstance(inner.lengthfield, c.FormatField)
                and inner.subcon is c.GreedyBytes):
            return "pascal", (inner.lengthfield, con.encoding)
    if isinstance(con, c.FocusedSeq) and con.parsebuildfrom == "items" and len(con.subcons) == 2:
        count, items = con.subcons
        if (count.name == "count" and isinstance(count.subcon, c.Rebuild)
                and isinstance(count.subcon.subcon, c.FormatField) and items.name == "items"
                and isinstance(items.subcon, c.Array) and isinstance(items.subcon.subcon, c.Struct)):
            return "array", (count.subcon.subcon, items.subcon.subcon)
    if isinstance(con, c.Struct):
        return None
    raise Unsupported(type(con).__name__)


def _fields(struct_: c.Struct) -> list[tuple[str, c.Construct]]:
    out = []
    for sc in struct_.subcons:
        if not isinstance(sc, c.Renamed) or not sc.name:
            raise Unsupported("an unnamed field")
        out.append((sc.name, sc.subcon))
    return out


class _Writer:
    """Lines of one generated function, and the objects its code refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {"_Range": RangeError, "_Short": ShortPayload}
        self._n = 0

    def name(self, prefix: str, obj: Any = None) -> str:
        self._n += 1
        name = f"{prefix}{self._n}"
        if obj is not None:
            self.env[name] = obj
        return name

    def source(self, header: str) -> str:
        return header + "\n" + "\n".join(self.lines) + "\n"


class _ParseWriter(_Writer):
    """parse(buf): pending fixed fields are unpacked together when a variable one or the end comes."""

    def __init__(self) -> None:
        super().__init__()
        self.run: list[tuple[str, str]] = []  # (format code, variable), not unpacked yet
        self.after: list[str] = []  # the checks of the run's fields, written after its unpack

    def flush(self, pad: str) -> None:
        if not self.run:
            return
        fmt = ">" + "".join(code for code, _ in self.run)
        run = self.name("_S", struct.Struct(fmt))
        size = struct.calcsize(fmt)
        names = ", ".join(v for _, v in self.run)
        self.lines += [f"{pad}if n - off < {size}:",
                       f"{pad}    raise _Short(f'wanted {size} bytes at offset {{off}}, found {{n - off}}')",
                       f"{pad}({names},) = {run}.unpack_from(buf, off)",
                       f"{pad}off += {size}"]
        self.lines += [pad + line for line in self.after]
        self.run, self.after = [], []

    def group(self, struct_: c.Struct, pad: str) -> str:
        """Write the fields of struct_; return the expression of its dict."""
        items = []
        for field, con in _fields(struct_):
            items.append(f"{field!r}: {self.field(con, pad)}")
        return "{" + ", ".join(items) + "}"

    def field(self, con: c.Construct, pad: str) -> str:
        leaf = _leaf(con)
        if leaf is None:
            return self.group(con, pad)
        kind, detail = leaf
        v = self.name("v")
        if kind in ("int", "fixed", "code", "flags"):
            fmt = (detail if kind == "int" else detail.subcon).fmtstr
            self.run.append((fmt.lstrip("<>=!"), v))
            if not fmt.startswith(">") and struct.calcsize(fmt) > 1:
                raise Unsupported(f"format {fmt}")
            self.after += self._check(kind, detail, v)
            return v
        if kind == "bytes":
            self.run.append((f"{detail}s", v))
            return v
        if kind == "padded":
            length, encoding = detail
            self.run.append((f"{length}s", v))
            self.after.append(f"{v} = {v}.rstrip(b'\\x00').decode({encoding!r})")
            return v
        self.flush(pad)
        if kind == "pascal":
            lengthfield, encoding = detail
            k = self._count(lengthfield, pad)
            self.lines += [f"{pad}if n - off < {k}:",
                           f"{pad}    raise _Short(f'wanted {{{k}}} bytes at offset {{off}}, found {{n - off}}')",
                           f"{pad}{v} = buf[off:off + {k}].decode({encoding!r})",
                           f"{pad}off += {k}"]
            return v
        countfield, element = detail
        k = self._count(countfield, pad)
        self.lines += [f"{pad}{v} = []", f"{pad}for _ in range({k}):"]
        entry = self.group(element, pad + "    ")
        self.flush(pad + "    ")
        self.lines.append(f"{pad}    {v}.append({entry})")
        return v

    def _count(self, field: c.FormatField, pad: str) -> str:
        k = self.name("k")
        self.run.append((field.fmtstr.lstrip("<>=!"), k))
        self.flush(pad)
        return k

    def _check(self, kind: str, adapter: Any, v: str) -> list[str]:
        """The adapter's parse check, worded as units.py words it."""
        if kind == "fixed":
            lo, hi, unit = adapter.minimum, adapter.maximum, adapter.unit
            return [f"if not {lo} <= {v} <= {hi}:",
                    f"    raise _Range(str({v}) + {f' {unit} is outside {lo}..{hi} {unit}'!r})"]
        if kind == "code":
            members = self.name("_members", {m.value: m for m in adapter.enum})
            return [f"{v} = {members}.get({v}, {v})",
                    f"if {v}.__class__ is int:",
                    f"    raise _Range({f'unknown {adapter.enum.__name__} code '!r} + str({v}))"]
        if kind == "flags":
            flags = self.name("_flags", adapter.enum)
            return [f"if {v} & {~adapter.known}:",
                    f"    raise _Range({f'unknown {adapter.enum.__name__} bits '!r} + hex({v} & {~adapter.known}))",
                    f"{v} = {flags}({v})"]
        return []


class _BuildWriter(_Writer):
    """build(d): each field checked as the declarative adapter checks it, fixed runs packed together."""

    def __init__(self) -> None:
        super().__init__()
        self.run: list[tuple[str, str]] = []
        self.parts = self.name("out")

    def flush(self, pad: str) -> None:
        if not self.run:
            return
        fmt = ">" + "".join(code for code, _ in self.run)
        run = self.name("_S", struct.Struct(fmt))
        self.lines.append(f"{pad}{self.parts}.append({run}.pack({', '.join(v for _, v in self.run)}))")
        self.run = []

    def group(self, struct_: c.Struct, source: str, pad: str) -> None:
        for field, con in _fields(struct_):
            self.field(con, f"{source}[{field!r}]", pad)

    def field(self, con: c.Construct, source: str, pad: str) -> None:
        leaf = _leaf(con)
        if leaf is None:
            g = self.name("g")
            self.lines.append(f"{pad}{g} = {source}")
            self.group(con, g, pad)
            return
        kind, detail = leaf
        v = self.name("v")
        self.lines.append(f"{pad}{v} = {source}")
        if kind == "int":
            self.run.append((detail.fmtstr.lstrip("<>=!"), v))
        elif kind in ("fixed", "code", "flags"):
            if kind == "fixed":
                self.lines += self._fixed(detail, v, pad)
            else:  # the adapter's own _encode: names, bools and unknown codes refused as declared
                encode = self.name("_encode", detail._encode)
                self.lines.append(f"{pad}{v} = {encode}({v}, None, '(building)')")
            self.run.append((detail.subcon.fmtstr.lstrip("<>=!"), v))
        elif kind == "bytes":
            self.lines += [f"{pad}if {v}.__class__ is bytearray:", f"{pad}    {v} = bytes({v})",
                           f"{pad}if {v}.__class__ is not bytes or len({v}) != {detail}:",
                           f"{pad}    raise _Range('expected exactly {detail} bytes')"]
            self.run.append((f"{detail}s", v))
        elif kind == "padded":
            length, encoding = detail
            self.lines += self._text(v, encoding, pad)
            self.lines += [f"{pad}if len({v}) > {length}:",
                           f"{pad}    raise _Range(str(len({v})) + ' bytes of text where {length} fit')"]
            self.run.append((f"{length}s", v))
        elif kind == "pascal":
            lengthfield, encoding = detail
            self.lines += self._text(v, encoding, pad)
            self.run.append((lengthfield.fmtstr.lstrip("<>=!"), f"len({v})"))
            self.flush(pad)
            self.lines.append(f"{pad}{self.parts}.append({v})")
        else:
            countfield, element = detail
            self.lines += [f"{pad}if not isinstance({v}, (list, tuple)):",
                           f"{pad}    raise _Range('expected a list')"]
            self.run.append((countfield.fmtstr.lstrip("<>=!"), f"len({v})"))
            self.flush(pad)
            e = self.name("e")
            self.lines.append(f"{pad}for {e} in {v}:")
            self.group(element, e, pad + "    ")
            self.flush(pad + "    ")

    @staticmethod
    def _fixed(adapter: Fixed, v: str, pad: str) -> list[str]:
        lo, hi, unit = adapter.minimum, adapter.maximum, adapter.unit
        return [f"{pad}if {v}.__class__ is not int and (not isinstance({v}, int) or isinstance({v}, bool)):",
                f"{pad}    raise _Range(repr({v}) + {f' is not an integer number of {unit}'!r})",
                f"{pad}if not {lo} <= {v} <= {hi}:",
                f"{pad}    raise _Range(str({v}) + {f' {unit} is outside {lo}..{hi} {unit}'!r})"]

    @staticmethod
    def _text(v: str, encoding: str, pad: str) -> list[str]:
        return [f"{pad}if not isinstance({v}, str):",
                f"{pad}    raise _Range('expected text, got ' + type({v}).__name__)",
                f"{pad}{v} = {v}.encode({encoding!r})"]


def _define(writer: _Writer, header: str, name: str) -> Any:
    namespace = dict(writer.env)
    exec(compile(writer.source(header), f"<struct_body {name}>", "exec"), namespace)
    return namespace[name]


def parser(struct_: c.Struct) -> Parse:
    """parse(payload) -> (the Struct's fields as dicts and lists, bytes used)."""
    writer = _ParseWriter()
    expr = writer.group(struct_, "    ")
    writer.flush("    ")
    writer.lines.append(f"    return {expr}, off")
    parse: Parse = _define(writer, "def parse(buf):\n    n = len(buf)\n    off = 0", "parse")
    return parse


def builder(struct_: c.Struct) -> Build:
    """build(fields) -> payload, every field checked."""
    writer = _BuildWriter()
    writer.group(struct_, "d", "    ")
    writer.flush("    ")
    writer.lines.append(f"    return b''.join({writer.parts})")
    build: Build = _define(writer, f"def build(d):\n    {writer.parts} = []", "build")
    return build
