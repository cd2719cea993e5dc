"""Pure parts of the clinician views: forecast arithmetic against the pump model itself,
the replace-by cross-check, staleness, and the report's reconstruction from audit entries."""
from __future__ import annotations

import dataclasses
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.program import Program
from emulator.pump import Pump
from ithcli import forecast
from ithcli.status import describe, replace_by_check, replace_by_warning
from protocol import Alarm, Drug, EventType, InfusionMode, bodies

DAY = 86_400
T0 = 1_900_000_000


def _pump(volume_ul: int, steps: list[tuple[int, int]], conc=2_000_000) -> Pump:
    pump = Pump.new(model="peristaltic-20", serial="F1", drug=Drug.BACLOFEN, concentration_ng_per_ml=conc,
                    reservoir_ul=volume_ul, flow_nl_per_day=250_000, low_reservoir_alarm_ul=2_000,
                    battery_seconds=5 * 365 * DAY, start_time=T0)
    mode = InfusionMode.FLEX if len(steps) > 1 else InfusionMode.CONTINUOUS
    pump.program = Program.from_doses(mode, steps, conc)
    return pump


def _raised(pump: Pump, alarm: Alarm) -> int:
    return next(e.time for e in pump.log.events
                if e.type == EventType.ALARM_RAISED and e.arg1 == int(alarm))


@settings(max_examples=40, deadline=None)
@given(
    starts=st.lists(st.integers(1, 1439), max_size=12, unique=True),
    doses=st.lists(st.integers(100_000, 4_000_000), min_size=13, max_size=13),
    volume=st.integers(2_500, 20_000),
    offset=st.integers(0, 3 * DAY),
)
def test_forecast_alarm_and_empty_match_the_pump_model(starts, doses, volume, offset):
    """Same integer rules as the pump: from the pump's own status (whole uL, unknown
    remainder), never later than the pump and earlier by at most the time 1 uL takes."""
    steps = list(zip([0] + sorted(starts), doses, strict=False))  # as many steps as starts
    pump = _pump(volume, steps)
    pump.advance_to(T0 + offset)
    if pump.alarms & Alarm.LOW_RESERVOIR:
        return
    raw = pump.status()
    raw_program = pump.program_body()
    fc = forecast.from_pump(raw, raw_program)
    pump.advance_to(T0 + offset + 400 * DAY)
    actual_low, actual_empty = _raised(pump, Alarm.LOW_RESERVOIR), _raised(pump, Alarm.EMPTY_RESERVOIR)
    slowest = min(s.rate_nl_per_day for s in pump.program.steps)
    one_ul = -(-1000 * DAY // slowest) + 1
    assert fc.low_alarm_at is not None and fc.empty_at is not None  # it delivers: both come
    assert fc.low_alarm_at <= actual_low <= fc.low_alarm_at + one_ul
    assert fc.empty_at <= actual_empty <= fc.empty_at + one_ul


def test_forecast_is_exact_to_the_second_when_the_pump_holds_whole_microlitres():
    pump = _pump(6_000, [(0, 400_000), (480, 600_000)])  # 0.2 mL/day then 0.3 mL/day
    fc = forecast.from_pump(pump.status(), pump.program_body())
    assert fc.low_alarm_at is not None and fc.empty_at is not None
    pump.advance_to(T0 + 60 * DAY)
    # the remainder the pump does not report is taken at its largest: at most 1 nL ahead,
    # under a second at these rates, and never later
    assert 0 <= _raised(pump, Alarm.LOW_RESERVOIR) - fc.low_alarm_at <= 1
    assert 0 <= _raised(pump, Alarm.EMPTY_RESERVOIR) - fc.empty_at <= 1
    # the series: start, every UTC midnight, the alarm and the empty time; volumes only fall
    times = [t for t, _ in fc.series]
    assert times == sorted(times) and fc.low_alarm_at in times and fc.empty_at in times
    volumes = [v for _, v in fc.series]
    assert volumes == sorted(volumes, reverse=True) and volumes[-1] == 0
    rows = forecast.daily_rows(fc)
    assert sum(r["alarm"] for r in rows) == 1 and sum(r["empty"] for r in rows) == 1


def test_forecast_without_delivery_has_no_dates():
    fc = forecast.project(pump_time=T0, reservoir_ul=10_000, low_alarm_ul=2_000, steps=[])
    assert fc.low_alarm_at is None and fc.empty_at is None and fc.delivery_from is None


def test_forecast_in_mri_safe_mode_starts_draining_at_the_automatic_exit():
    steps = [(0, 1_000_000)]
    now = forecast.project(pump_time=T0, reservoir_ul=10_000, low_alarm_ul=2_000, steps=steps)
    later = forecast.project(pump_time=T0, reservoir_ul=10_000, low_alarm_ul=2_000, steps=steps,
                             delivery_from=T0 + 4 * 3600)
    assert later.low_alarm_at is not None and now.low_alarm_at is not None
    assert later.low_alarm_at - now.low_alarm_at == 4 * 3600


def test_forecast_with_the_alarm_already_active():
    fc = forecast.project(pump_time=T0, reservoir_ul=1_500, low_alarm_ul=2_000, steps=[(0, 500_000)],
                          low_alarm_active=True)
    assert fc.already_low and fc.low_alarm_at is None and fc.empty_at == T0 + 3 * DAY


def test_replace_by_check():
    eri = T0
    assert replace_by_check(eri, eri + 90 * DAY) == {"computed": eri + 90 * DAY, "mismatch": False}
    assert replace_by_check(eri, eri + 120 * DAY)["mismatch"] is True  # later than ERI + 90 days
    assert replace_by_check(eri, 0)["mismatch"] is True  # shown as unknown by the pump
    assert replace_by_check(0, 0) == {"computed": None, "mismatch": False}  # ERI not known: nothing to check


def _raw_status(**kw) -> bodies.Status:
    pump = _pump(10_000, [(0, 400_000)])
    return dataclasses.replace(pump.status(), **kw)


def test_a_replace_by_mismatch_is_shown_prominently_by_interrogate(monkeypatch):
    from rich.console import Console

    from ithcli import druglib, output
    from ithcli.commands.interrogate import render_status

    raw = _raw_status()
    raw = dataclasses.replace(raw, replace_by=raw.eri_at + 120 * DAY)  # the pump's own figure is 30 days late
    s = describe(raw, druglib.load(None), read_at=T0, port="x", emulated=False)
    assert s["battery"]["replace_by_mismatch"] is True
    warning = replace_by_warning(s["battery"])
    assert warning is not None
    assert "REPLACE-BY MISMATCH" in warning and s["battery"]["replace_by_computed"][:10] in warning

    # what ithcli draws, on a console of the test's own (ithcli.output.console is where every
    # command gets its console; rich's class itself is cached once ithcli has drawn anything)
    buf = io.StringIO()
    monkeypatch.setattr(output, "console", lambda stderr_=False: Console(file=buf, width=160, highlight=False))
    render_status(s)
    out = buf.getvalue()
    assert "MISMATCH" in out and "REPLACE-BY MISMATCH" in out


def test_a_replace_by_mismatch_reaches_the_report_and_the_monitor_line():
    from rich.console import Console

    from ithcli.commands.monitor import _LineView

    battery = {"state": "eri", "percent": 5, "eri_date": "2030-01-01T00:00:00Z",
               "replace_by": "2030-05-01T00:00:00Z", "replace_by_computed": "2030-04-01T00:00:00Z",
               "replace_by_mismatch": True}
    buf = io.StringIO()
    view = _LineView(Console(file=buf, width=200))
    view.show({"ok": True, "reading": 1, "pump_time": "2030-01-02T00:00:00Z", "reservoir_ml": 5,
               "current_rate_ml_per_day": 0.2, "active_step": None, "delivery": "running", "alarms": [],
               "alarms_raised": [], "alarms_cleared": [], "battery": battery, "age_s": 0, "stale": False,
               "link": {"round_trip_ms": 3, "corrupt_frames": 0, "retries": 0}})
    assert "REPLACE-BY MISMATCH" in buf.getvalue() and "2030-04-01" in buf.getvalue()


def test_report_statuses_survive_the_audit_logs_json():
    """An INTERROGATE reply as the audit log stores it (enum names) describes like the live one."""
    from ithcli import druglib
    from ithcli.output import jsonable
    from ithcli.report import rehydrate_status

    raw = _raw_status(alarms=Alarm.LOW_RESERVOIR | Alarm.ERI)
    lib = druglib.load(None)
    stored = jsonable(raw)
    again = rehydrate_status(stored)
    assert describe(again, lib, read_at=T0, port="p", emulated=False) == describe(
        raw, lib, read_at=T0, port="p", emulated=False)
    assert again == raw
    assert rehydrate_status(jsonable(_raw_status())).alarms == Alarm(0)


def test_monitor_marks_old_data_stale():
    from ithcli.monitor import Monitor

    mon = Monitor(None, stale_after=0.5, max_failures=3)  # type: ignore[arg-type]  # _freshness reads no pump
    import time

    assert mon._freshness(None)["stale"] is True  # no data at all is never fresh
    fresh = mon._freshness(time.monotonic())
    assert fresh["stale"] is False and fresh["age_s"] == 0
    old = mon._freshness(time.monotonic() - 2)
    assert old["stale"] is True and old["age_s"] >= 2
