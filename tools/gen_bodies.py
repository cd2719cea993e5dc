"""Generate protocol/bodies.py, the typed message bodies, from protocol/messages.py.

    python tools/gen_bodies.py            # rewrite protocol/bodies.py
    python tools/gen_bodies.py --check    # exit 1 when the checked-in file is stale

One frozen dataclass per Struct of messages.py that a payload uses (each payload
Struct and every Struct nested in one), named as in messages.py, fields in wire
order. Each class is written out as dataclass(frozen=True, slots=True) would make it
(__slots__, __init__, __repr__, __eq__, __hash__; pickling in Fields) and decorated with
dataclass(frozen=True, init=False, repr=False, eq=False), which adds only the fields,
the frozen __setattr__/__delattr__ and __match_args__: the methods are compiled into the
.pyc instead of exec'd at every import (docs/performance.md, "Importing protocol"). So
__dataclass_params__ says init/repr/eq False although the class has all three.
Field types follow the adapters of protocol/units.py: Code -> its IntEnum,
Flags -> its IntFlag, Fixed and plain integers -> int, Bytes -> bytes, strings -> str,
a nested Struct -> its dataclass, a PrefixedArray -> tuple[element, ...]. Any other
construct stops the generator (extend _field_type): nothing is guessed.
tests/test_bodies.py fails when the checked-in file differs from this output.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import construct as c

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol import messages  # (after the path is set: runs from a checkout too)
from protocol.constants import Command
from protocol.units import Code, Fixed, Flags

TARGET = Path(__file__).resolve().parent.parent / "protocol" / "bodies.py"
HEADER = "# generated, do not edit; run tools/gen_bodies.py"

PREAMBLE = '''"""Typed message bodies: one frozen dataclass per Struct of protocol/messages.py.

The layouts, units and ranges are messages.py's; the codec checks every value when
it builds a payload and decodes every payload into these classes. A request class
names its command (COMMAND) and the class of its reply (REPLY), so a caller that
sends an InterrogateRequest gets a Status back, typed (reply_to()).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from .constants import (
{enums}
)
from .errors import MessageError
from .messages import key


class Fields:
    """Every generated class: a payload or a group of fields nested in one."""

    __slots__ = ()
    #: the name of its Struct in protocol/messages.py
    STRUCT: ClassVar[str]

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        """From the codec's parsed fields, already checked by the Struct (generated per class)."""
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        """Its fields by name for the codec to build, groups and arrays as they are (generated)."""
        raise NotImplementedError

    # pickle and copy, as dataclass(frozen=True, slots=True) gives them
    def __getstate__(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]  # type: ignore[arg-type]  # a dataclass

    def __setstate__(self, state: list[Any]) -> None:
        for f, value in zip(fields(self), state, strict=False):  # type: ignore[arg-type]  # a dataclass
            object.__setattr__(self, f.name, value)


class Body(Fields):
    """A whole message payload (Message.body)."""

    __slots__ = ()


R = TypeVar("R", bound=Body)
B = TypeVar("B", bound=Body)


class Request(Body, Generic[R]):
    """A request's payload; R is the payload of the reply it gets."""

    __slots__ = ()
    COMMAND: ClassVar[Command]
    REPLY: ClassVar[type[Body]]


class WrongBody(MessageError):
    """A message carries another payload than the one asked for."""

    kind = "wrong-body"


def expect(body: Body, cls: type[B]) -> B:
    """`body` as `cls`, or WrongBody: the typed way to read a decoded message's body."""
    if isinstance(body, cls) and type(body) is cls:  # exactly cls: no subclass passes for it
        return body
    raise WrongBody(f"expected a {{cls.__name__}} body, got {{type(body).__name__}}")


def reply_to(request: Request[R], body: Body) -> R:
    """The reply `body` to `request` as its reply class, or WrongBody."""
    return cast(R, expect(body, request.REPLY))


def as_dict(value: Fields) -> dict[str, Any]:
    """A body as plain data (groups as dicts, arrays as lists), for logs and JSON files."""
    out: dict[str, Any] = {{}}
    for f in fields(value):  # type: ignore[arg-type]  # every generated class is a dataclass
        item = getattr(value, f.name)
        if isinstance(item, Fields):
            item = as_dict(item)
        elif isinstance(item, tuple):
            item = [as_dict(x) if isinstance(x, Fields) else x for x in item]
        out[f.name] = item
    return out
'''


def _inner(sc: c.Construct) -> c.Construct:
    return sc.subcon if isinstance(sc, c.Renamed) else sc


def _struct_names() -> dict[int, str]:
    """id(Struct) -> its name in messages.py."""
    return {id(v): k for k, v in vars(messages).items() if isinstance(v, c.Struct)}


class _Gen:
    def __init__(self) -> None:
        self.names = _struct_names()
        self.enums: set[str] = {"Command"}
        self.groups: list[c.Struct] = []  # nested Structs, dependencies first

    def name(self, struct_: c.Struct) -> str:
        try:
            return self.names[id(struct_)]
        except KeyError:
            raise SystemExit(f"a Struct without a name in messages.py: {struct_}") from None

    def _element(self, con: c.Construct) -> c.Construct | None:
        """The element of a PrefixedArray (a FocusedSeq of a count and an Array), else None."""
        if isinstance(con, c.FocusedSeq):
            array = _inner(con.subcons[-1])
            if isinstance(array, c.Array):
                return array.subcon
        return None

    def field_type(self, con: c.Construct) -> tuple[str, str]:
        """(annotation, comment) of one field; SystemExit for a construct not mapped here."""
        con = _inner(con)
        if isinstance(con, Fixed):
            return "int", f"{con.unit}, {con.minimum}..{con.maximum}"
        if isinstance(con, (Code, Flags)):
            self.enums.add(con.enum.__name__)
            return con.enum.__name__, ""
        if isinstance(con, c.FormatField) and con.fmtstr[-1] in "BHILQ":
            return "int", f"0..{2 ** (8 * con.sizeof()) - 1}"
        if isinstance(con, c.StringEncoded):
            return "str", con.encoding
        if isinstance(con, c.Bytes) and isinstance(con.length, int):
            return "bytes", f"exactly {con.length} bytes"
        if isinstance(con, c.Struct):
            self.add_group(con)
            return self.name(con), ""
        element = self._element(con)
        if isinstance(element, c.Struct):
            self.add_group(element)
            return f"tuple[{self.name(element)}, ...]", ""
        raise SystemExit(f"no body type for {type(con).__name__}: extend tools/gen_bodies.py")

    def add_group(self, struct_: c.Struct) -> None:
        if any(g is struct_ for g in self.groups):
            return
        for sc in struct_.subcons:  # dependencies first
            if sc.name:
                self.field_type(sc)
        self.groups.append(struct_)

    def fields(self, struct_: c.Struct) -> list[tuple[str, str, str]]:
        return [(sc.name, *self.field_type(sc)) for sc in struct_.subcons if sc.name]

    def parsed_arg(self, struct_: c.Struct, name: str) -> str:
        con = _inner(next(sc for sc in struct_.subcons if sc.name == name))
        if isinstance(con, c.Struct):
            return f'{self.name(con)}._parsed(d["{name}"])'
        element = self._element(con)
        if isinstance(element, c.Struct):
            return f'tuple([{self.name(element)}._parsed(x) for x in d["{name}"]])'
        return f'd["{name}"]'

    def cls(self, struct_: c.Struct, base: str, doc: str, extra: list[str]) -> str:
        name = self.name(struct_)
        fields = self.fields(struct_)
        lines = ["", "", "@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below",
                 f"class {name}({base}):", f'    """{doc}"""', ""]
        slots = _tuple([f'"{f}"' for f, _, _ in fields], "")
        lines += _wrapped_tuple(slots, 4, "__slots__ = ")
        lines += [f'    STRUCT: ClassVar[str] = "{name}"', *extra]
        if fields:
            lines.append("")
        for field, annotation, comment in fields:
            lines.append(f"    {field}: {annotation}" + (f"  # {comment}" if comment else ""))
        lines += _methods(name, fields)
        lines += ["", "    @classmethod", "    def _parsed(cls, d: Any) -> Self:"]
        args = [self.parsed_arg(struct_, f) for f, _, _ in fields]
        one_line = f"        return cls({', '.join(args)})"
        if len(one_line) <= 120:
            lines.append(one_line)
        else:
            lines += ["        return cls("] + [f"            {a}," for a in args] + ["        )"]
        items = ", ".join(f'"{f}": self.{f}' for f, _, _ in fields)
        lines += ["", "    def _fields(self) -> dict[str, Any]:"]
        one_line = f"        return {{{items}}}"
        if len(one_line) <= 120:
            lines.append(one_line)
        else:
            lines += ["        return {"] + [f'            "{f}": self.{f},' for f, _, _ in fields] + ["        }"]
        return "\n".join(lines) + "\n"


def _methods(name: str, fields: list[tuple[str, str, str]]) -> list[str]:
    """__init__, __repr__, __eq__ and __hash__ as dataclass(frozen=True) writes them."""
    names = [f for f, _, _ in fields]
    head = "    def __init__(self" + "".join(f", {f}: {a}" for f, a, _ in fields) + ") -> None:"
    lines = ["", head] if len(head) <= 120 else (
        ["", "    def __init__(", "        self,"] + [f"        {f}: {a}," for f, a, _ in fields] + ["    ) -> None:"])
    lines += [f'        object.__setattr__(self, "{f}", {f})' for f in names] or ["        pass"]
    lines += ["", "    def __repr__(self) -> str:"]
    shown = [f"{f}={{self.{f}!r}}" + (", " if i < len(names) - 1 else "") for i, f in enumerate(names)]
    one = '        return f"{type(self).__qualname__}(' + "".join(shown) + ')"'
    if len(one) <= 120:
        lines.append(one)
    else:
        pieces = _packed(['{type(self).__qualname__}(', *shown], width=120 - 20)
        lines.append('        return (f"' + pieces[0] + '"')
        lines += ['                f"' + p + '"' for p in pieces[1:-1]]
        lines.append('                f"' + pieces[-1] + ')")')
    mine, theirs = _tuple(names, "self"), _tuple(names, "other")
    lines += ["", "    def __eq__(self, other: object) -> bool:",
              f"        if isinstance(other, {name}) and other.__class__ is self.__class__:"]
    one = f"            return {mine} == {theirs}" if names else "            return True"
    if len(one) <= 120:
        lines.append(one)
    else:
        lines += ["            return ("] + _wrapped_tuple(mine, 16, "") + _wrapped_tuple(theirs, 16, "== ")
        lines.append("            )")
    lines += ["        return NotImplemented", "", "    def __hash__(self) -> int:"]
    one = f"        return hash({mine})"
    lines += [one] if len(one) <= 120 else ["        return hash("] + _wrapped_tuple(mine, 12, "") + ["        )"]
    return lines


def _tuple(names: list[str], owner: str) -> str:
    """(owner.a, owner.b), (owner.a,) or (); owner "": the names alone."""
    items = [f"{owner}.{f}" if owner else f for f in names]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _packed(pieces: list[str], width: int) -> list[str]:
    """pieces joined into lines of at most `width` characters (a piece is never split)."""
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece.rstrip()) > width:
            lines.append("")
        lines[-1] += piece
    return lines


def _wrapped_tuple(text: str, indent: int, prefix: str) -> list[str]:
    """A tuple's text over lines of at most 120 columns, broken after its commas."""
    pad = " " * indent
    pieces = [p + "," for p in text.split(",")[:-1]] + [text.split(",")[-1]]
    lines = _packed([p if i == 0 else p for i, p in enumerate(pieces)], width=120 - indent - len(prefix) - 1)
    return [pad + prefix + lines[0].rstrip()] + [pad + " " * (len(prefix) + 1) + line.strip() for line in lines[1:]]


def _wrapped(doc: str) -> str:
    """A docstring that fits ruff's 120 columns at class-body indent."""
    return "\n    ".join(textwrap.wrap(doc, 108))


def _command_name(k: int) -> tuple[str, bool]:
    return Command(k & ~messages.RESPONSE_BIT).name, bool(k & messages.RESPONSE_BIT)


def generate() -> str:
    gen = _Gen()
    payload_structs = list(dict.fromkeys(id(s) for s in messages.PAYLOADS.values()))
    by_id = {id(s): s for s in messages.PAYLOADS.values()}
    # every payload's fields first: that collects the nested groups (and the enums)
    for i in payload_structs:
        gen.fields(by_id[i])
    payloads: list[str] = []
    emitted: set[int] = set()
    for k, struct_ in messages.PAYLOADS.items():
        command, response = _command_name(k)
        if id(struct_) in emitted:
            continue
        emitted.add(id(struct_))
        if response:
            users = [_command_name(k2)[0] for k2, s in messages.PAYLOADS.items() if s is struct_ and k2 & 0x80]
            doc = ("The ERROR reply (to any request)." if users == ["ERROR"]
                   else _wrapped(f"The reply to {', '.join(users)}."))
            payloads.append(gen.cls(struct_, "Body", doc, []))
        else:
            reply = gen.name(messages.PAYLOADS[messages.key(Command[command], True)])
            extra = [f"    COMMAND: ClassVar[Command] = Command.{command}",
                     f"    REPLY: ClassVar[type[Body]] = {reply}"]
            payloads.append(gen.cls(struct_, f"Request[{reply}]", f"The {command} request.", extra))
    # replies are defined before the requests that name them
    payloads.sort(key=lambda text: "(Request[" in text)
    groups = [gen.cls(g, "Fields", "A group of fields nested in a payload.", []) for g in gen.groups]
    table = ["", "", "#: message key (messages.key(command, response)) -> its body class",
             "BODIES: dict[int, type[Body]] = {"]
    for k, struct_ in messages.PAYLOADS.items():
        command, response = _command_name(k)
        table.append(f"    key(Command.{command}, {response}): {gen.name(struct_)},")
    table += ["}", "", "#: every generated class, payloads and nested groups",
              "ALL: tuple[type[Fields], ...] = ("]
    table += [f"    {gen.name(g)}," for g in gen.groups]
    table += [f"    {name}," for name in dict.fromkeys(gen.name(by_id[i]) for i in payload_structs)]
    table.append(")")
    enums = "".join(f"    {e},\n" for e in sorted(gen.enums)).rstrip("\n")
    return (f"{HEADER}\n" + PREAMBLE.format(enums=enums) + "".join(groups) + "".join(payloads)
            + "\n".join(table) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when protocol/bodies.py is stale")
    text = generate()
    if ap.parse_args().check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run tools/gen_bodies.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
