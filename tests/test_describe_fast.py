"""The cheaper forms of what every read and every audit entry computes give exactly what the
plain forms gave: the alarm list, the ISO times, the dates moved by the skew, the plain data of
an entry and its canonical JSON. Each plain form is kept here as the reference."""
from __future__ import annotations

import dataclasses
import json
import random
import time
from datetime import UTC, datetime
from enum import Enum, IntEnum
from typing import Any

import pytest
from test_views_unit import _raw_status

from ithcli import audit, audit_chain, calendar, output, status
from protocol import ALARM_PRIORITY, Alarm, Drug, InfusionMode

T0 = 1_900_000_000


def _alarms_reference(flags: Alarm) -> list[dict[str, str]]:
    """The alarm view as it was: every member tested with IntFlag's &, then sorted by priority."""
    alarms = [{"name": status.alarm_name(a), "priority": ALARM_PRIORITY[a].name.lower()} for a in Alarm if flags & a]
    alarms.sort(key=lambda a: ("high", "medium", "low").index(a["priority"]))
    return alarms


def test_the_alarm_view_lists_every_set_of_bits_as_before():
    every = 0
    for a in Alarm:
        every |= int(a)
    seen = set()
    for bits in range(every + 1):
        if bits & ~every:
            continue
        view = status._alarms_view(Alarm(bits))
        assert view == _alarms_reference(Alarm(bits)), bin(bits)
        seen.add(len(view))
    assert seen == set(range(len(list(Alarm)) + 1))  # from none to all of them


def test_iso_of_whole_seconds_is_datetimes_text():
    rng = random.Random(13)
    edges = [1, -1, 59, 86_399, 86_400, T0, 2**31 - 1, 2**32 - 1, 951_782_400,  # 2000-02-29
             -30_610_224_000, 253_402_300_799]  # the first and last second of four-digit years
    for ts in edges + [rng.randrange(-2**33, 2**34) for _ in range(5000)]:
        assert calendar.iso(ts) == datetime.fromtimestamp(ts, tz=UTC).isoformat(), ts
    assert calendar.iso(T0 + 0.25) == datetime.fromtimestamp(T0 + 0.25, tz=UTC).isoformat()  # a fraction, as before
    assert str(calendar.iso(T0 + 0.25)).endswith(".250000+00:00")
    assert calendar.iso(True) == datetime.fromtimestamp(1, tz=UTC).isoformat()
    assert calendar.iso(0) is None and calendar.iso(None) is None


@pytest.mark.parametrize("skew", [0, 299, -300, 301, -301, 2 * 86_400, -7 * 86_400, T0])
def test_dates_moved_once_for_a_view_are_the_dates_moved_one_at_a_time(skew):
    on_calendar = calendar.calendar_iso(skew)
    for ts in (None, 0, 1, T0, T0 + 12_345, skew, 2**32 - 1):  # ts == skew: moved to 0, the "unknown"
        assert on_calendar(ts) == calendar.iso(calendar.to_calendar(ts, skew)), ts


def test_interrogate_describes_a_pump_with_alarms_and_a_skewed_clock():
    from ithcli import druglib

    raw = dataclasses.replace(_raw_status(), alarms=Alarm.RESET | Alarm.LOW_RESERVOIR | Alarm.EOS,
                              mri_auto_exit_at=T0 + 3600)
    view = status.describe(raw, druglib.load(None), read_at=raw.pump_time - 3 * 86_400, port="p", emulated=True)
    assert [a["name"] for a in view["alarms"]] == ["eos", "low_reservoir", "reset"]  # high, medium, low
    assert view["mri_auto_exit_at"] == datetime.fromtimestamp(T0 + 3600 - 3 * 86_400, tz=UTC).isoformat()
    assert view["pump_time"] == datetime.fromtimestamp(raw.pump_time, tz=UTC).isoformat()  # its own clock


class _Colour(IntEnum):
    RED = 1


class _Tag(str):
    """A text whose str() is not itself: an entry's keys are what str() makes of them."""

    def __str__(self) -> str:
        return f"tag:{super().__str__()}"


def _jsonable_reference(value: Any) -> Any:
    """jsonable as it was: a call for every value, leaves included."""
    if type(value) in output._PLAIN:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable_reference(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable_reference(v) for v in value]
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    from protocol import bodies

    if isinstance(value, bodies.Fields):
        slots: Any = type(value).__slots__  # the generated classes' fields, in declared order
        return {name: _jsonable_reference(getattr(value, name)) for name in slots}
    return value


def test_plain_data_of_an_entry_is_as_before():
    raw = dataclasses.replace(_raw_status(), alarms=Alarm.ERI | Alarm.RESET)
    record = {"event": "exchange", "response": raw, _Tag("a"): (1, b"\x01\xff", [_Colour.RED, None, 2.5]),
              3: {"nested": {"drug": Drug.BACLOFEN, "mode": InfusionMode.FLEX, "flag": True}}, "set": {1}}
    plain = output.jsonable(record)
    assert plain == _jsonable_reference(record)
    assert list(plain) == ["event", "response", "tag:a", "3", "set"]  # keys as str() made them
    assert plain["response"]["alarms"] == "ERI|RESET"


def test_canonical_json_and_lines_are_json_dumps_text():
    entry = {"b": [1, "é", None], "a": {"z": 1.5, "y": "x"}, "t": datetime(2030, 1, 1, tzinfo=UTC)}
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    assert audit_chain.canonical(entry) == text.encode()
    assert audit_chain.line_of(entry) == (text + "\n").encode()


def test_an_entrys_time_is_its_utc_second_whatever_was_asked_before():
    rng = random.Random(7)
    stamps = [T0, T0 + 0.999, T0 + 1, T0 + 0.5, T0 - 0.5, -0.5, 0.0, 1e10 + 0.1]
    stamps += [rng.uniform(0, 4e9) for _ in range(2000)]
    for epoch in stamps:
        assert audit._iso(epoch) == time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch)), epoch
