"""Typed bodies (protocol/bodies.py): generated from messages.py and kept so, one class per
Struct with its fields in wire order, every message round-tripping through them, and the
codec refusing a body of the wrong shape."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import construct as c
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codec import SAMPLES, SETTINGS, raw_frame, strategy_for

from protocol import Command, Drug, EncodeError, InfusionMode, ProtocolError, bodies, codec, messages
from protocol.constants import AUTH_TRAILER_SIZE

ROOT = Path(__file__).resolve().parent.parent
CLASS_OF = {id(getattr(messages, cls.STRUCT)): cls for cls in bodies.ALL}


def test_checked_in_bodies_are_what_the_generator_makes_now():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_bodies
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert (ROOT / "protocol" / "bodies.py").read_text() == gen_bodies.generate(), \
        "protocol/bodies.py is stale: run tools/gen_bodies.py"
    assert (ROOT / "protocol" / "bodies.py").read_text().startswith(gen_bodies.HEADER)
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_bodies.py"), "--check"], check=False)
    assert check.returncode == 0


def _named(struct_):
    return [sc for sc in struct_.subcons if sc.name]


def test_one_class_per_struct_with_its_fields_in_wire_order():
    assert set(bodies.BODIES) == set(messages.PAYLOADS)
    for k, struct_ in messages.PAYLOADS.items():
        assert bodies.BODIES[k] is CLASS_OF[id(struct_)]
    for cls in bodies.ALL:
        struct_ = getattr(messages, cls.STRUCT)
        assert dataclasses.is_dataclass(cls)
        assert [f.name for f in dataclasses.fields(cls)] == [sc.name for sc in _named(struct_)]
        assert vars(cls)["__dataclass_params__"].frozen and "__slots__" in vars(cls)


def test_every_request_names_its_command_and_its_reply():
    requests = [cls for cls in bodies.ALL if issubclass(cls, bodies.Request)]
    assert sorted(cls.COMMAND for cls in requests) == sorted(
        Command(k) for k in messages.PAYLOADS if not k & messages.RESPONSE_BIT)
    for cls in requests:
        assert bodies.BODIES[messages.key(cls.COMMAND, False)] is cls
        assert cls.REPLY is bodies.BODIES[messages.key(cls.COMMAND, True)]


# --- every message round-trips as a dataclass ------------------------------------------


def body_strategy(con) -> st.SearchStrategy:
    """Bodies drawn from the Construct definitions, built as the generated dataclasses."""
    con = con.subcon if isinstance(con, c.Renamed) else con
    if isinstance(con, c.Struct):
        cls = CLASS_OF[id(con)]
        return st.fixed_dictionaries({sc.name: body_strategy(sc) for sc in _named(con)}).map(lambda d: cls(**d))
    if isinstance(con, c.FocusedSeq):  # PrefixedArray
        element = con.subcons[1].subcon.subcon
        return st.lists(body_strategy(element), max_size=messages.MAX_LOG_PAGE).map(tuple)
    return strategy_for(con)


@st.composite
def typed_messages(draw):
    k = draw(st.sampled_from(sorted(messages.PAYLOADS)))
    return (Command(k & ~messages.RESPONSE_BIT), bool(k & messages.RESPONSE_BIT),
            draw(body_strategy(messages.PAYLOADS[k])), draw(st.integers(0, 0xFFFF)),
            draw(st.none() | st.binary(min_size=AUTH_TRAILER_SIZE, max_size=AUTH_TRAILER_SIZE)))


@SETTINGS
@given(typed_messages())
def test_encode_then_decode_gives_an_equal_dataclass(m):
    command, response, body, seq, auth = m
    data = codec.encode(command, body, seq=seq, response=response, auth=auth)
    decoded = codec.decode(raw_frame(data))
    assert decoded.body == body and type(decoded.body) is type(body)
    assert codec.decode_declarative(data) == decoded
    assert hash(decoded.body) == hash(body)  # frozen, tuples for arrays: usable as keys
    assert codec.from_fields(command, bodies.as_dict(body), response=response) == body
    assert codec.encode(command, decoded.body, seq=seq, response=response, auth=auth) == data


@pytest.mark.parametrize("k", sorted(SAMPLES), ids=lambda k: f"{k:02x}")
def test_dict_and_dataclass_build_the_same_bytes(k):
    body = codec.from_fields(k & 0x7F, SAMPLES[k], response=bool(k & 0x80))
    assert codec.build_payload(k & 0x7F, body, response=bool(k & 0x80)) == \
        codec.build_fields(k & 0x7F, SAMPLES[k], response=bool(k & 0x80))


# --- the codec refuses a body of the wrong shape ----------------------------------------


def _status() -> bodies.Status:
    body = codec.from_fields(Command.INTERROGATE, SAMPLES[0x82], response=True)
    assert isinstance(body, bodies.Status)
    return body


def test_encode_refuses_another_class_for_the_message():
    with pytest.raises(EncodeError, match="expected a Status, got InterrogateRequest"):
        codec.build_payload(Command.INTERROGATE, bodies.InterrogateRequest(), response=True)
    with pytest.raises(EncodeError, match="expected a InterrogateRequest, got ReadProgramRequest"):
        codec.encode(Command.INTERROGATE, bodies.ReadProgramRequest(), seq=1)
    with pytest.raises(EncodeError, match="got dict"):
        codec.build_payload(Command.INTERROGATE, SAMPLES[0x82], response=True)  # type: ignore[arg-type]


def test_encode_refuses_wrong_groups_lists_and_bytes():
    status = _status()
    with pytest.raises(EncodeError, match="firmware: expected a Firmware, got dict"):
        codec.build_payload(Command.INTERROGATE, dataclasses.replace(
            status, firmware={"major": 1}), response=True)  # type: ignore[arg-type]  # a dict for a group: refused
    request = bodies.PrepareProgramRequest(1, 0, InfusionMode.CONTINUOUS, Drug.MORPHINE, 1000,
                                           (bodies.ProgramStep(0, 1000),))
    codec.build_payload(Command.PREPARE_PROGRAM, request)
    with pytest.raises(EncodeError, match="steps: expected a tuple, got list"):
        codec.build_payload(Command.PREPARE_PROGRAM, dataclasses.replace(
            request, steps=list(request.steps)))  # type: ignore[arg-type]  # a list for the tuple: refused
    with pytest.raises(EncodeError, match=r"steps\[0\]: expected a ProgramStep, got DeliveredStep"):
        codec.build_payload(Command.PREPARE_PROGRAM,
                            dataclasses.replace(request, steps=(  # type: ignore[arg-type]  # another class: refused
                                bodies.DeliveredStep(0, 1000, 1),)))
    with pytest.raises(EncodeError, match="proof: expected exactly 32 bytes"):
        codec.build_payload(Command.AUTH, bodies.AuthResponse(bytes(31)), response=True)
    with pytest.raises(EncodeError, match="expected exactly 32 bytes"):
        codec.build_payload(Command.AUTH, bodies.AuthResponse(bytearray(32)), response=True)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):  # values are checked by the Struct, as for a dict
        codec.build_payload(Command.INTERROGATE, dataclasses.replace(status, battery_percent=101), response=True)


def test_expect_and_reply_to_narrow_or_refuse():
    status = _status()
    assert bodies.expect(status, bodies.Status) is status
    assert bodies.reply_to(bodies.InterrogateRequest(), status) is status
    with pytest.raises(bodies.WrongBody) as refused:
        bodies.expect(status, bodies.Prepared)
    assert isinstance(refused.value, ProtocolError)
    with pytest.raises(bodies.WrongBody):
        bodies.reply_to(bodies.ReadProgramRequest(), status)


def test_as_dict_gives_plain_data_in_wire_order():
    plain = bodies.as_dict(_status())
    assert list(plain) == [sc.name for sc in _named(messages.Status)]
    assert plain["firmware"] == {"major": 1, "minor": 2, "patch": 3}
    log = codec.from_fields(Command.READ_LOG, SAMPLES[0x83], response=True)
    assert isinstance(bodies.as_dict(log)["events"], list)
    assert bodies.as_dict(log)["events"][0] == SAMPLES[0x83]["events"][0]
