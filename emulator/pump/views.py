"""What the pump shows: the protocol's Status struct, and the control channel's state."""
from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import Alarm, bodies

from .battery import BATTERY_UNIT, ERI_WARNING_S
from .delivery import NL_PER_UL

if TYPE_CHECKING:
    from .pump import Pump


def status(pump: Pump) -> bodies.Status:
    """The protocol's Status struct (protocol/messages.py)."""
    delivery, battery, mri = pump.delivery, pump.battery, pump.mri
    eri_at = pump.projected_eri()
    return bodies.Status(
        serial_number=pump.serial,
        model=pump.spec.code,
        firmware=pump.firmware,
        pump_time=pump.core.time,
        drug=delivery.drug,
        concentration_ng_per_ml=delivery.concentration_ng_per_ml,
        mode=delivery.program.mode,
        daily_dose_ng_per_day=delivery.program.daily_dose_ng(),
        daily_volume_nl_per_day=delivery.program.daily_volume_nl(),
        current_rate_nl_per_day=delivery.current_rate_nl_per_day,
        # calculated volume, rounded down: never report drug that is not there
        reservoir_ul=delivery.reservoir_nl // NL_PER_UL,
        capacity_ul=pump.spec.capacity_ul,
        low_reservoir_alarm_ul=delivery.low_reservoir_alarm_ul,
        battery_state=battery.state,
        battery_percent=battery.percent,
        eri_at=eri_at,
        replace_by=eri_at + ERI_WARNING_S,
        alarms=pump.core.alarms,
        mri_mode=mri.mode,
        mri_auto_exit_at=mri.auto_exit_at,
        last_txid=pump.transactions.last_txid,
        last_programmed_at=pump.transactions.last_programmed_at,
        bolus_remaining_ng=delivery.bolus_remaining_ng,
        event_count=pump.core.log.count,
        auth_failures=pump.routine.auth.total,
        catheter=pump.catheter.body(),
        ptm=pump.ptm.limits,
        ptm_use=pump.ptm.use(),
        patient=pump.patient.record,
    )


def describe(pump: Pump) -> dict:
    """Internal state for the test-only control channel (JSON-friendly)."""
    core, delivery, battery, mri = pump.core, pump.delivery, pump.battery, pump.mri
    transactions, routine = pump.transactions, pump.routine
    eri_at = pump.projected_eri()
    return {
        "pump_time": core.time,
        "model": pump.spec.name,
        "serial": pump.serial,
        "drug": delivery.drug.name.lower(),
        "concentration_ng_per_ml": delivery.concentration_ng_per_ml,
        "mode": delivery.program.mode.name,
        "program": delivery.program.to_dict(),
        "current_rate_nl_per_day": delivery.current_rate_nl_per_day,
        "daily_volume_nl_per_day": delivery.program.daily_volume_nl(),
        "daily_dose_ng_per_day": delivery.program.daily_dose_ng(),
        "reservoir_nl": delivery.reservoir_nl,
        "delivery_remainder": delivery.delivery_remainder,
        "delivered_nl": delivery.delivered_nl,
        "capacity_ul": pump.spec.capacity_ul,
        "low_reservoir_alarm_ul": delivery.low_reservoir_alarm_ul,
        "alarms": [a.name for a in Alarm if core.alarms & a],
        "suspended": sorted(core.suspended),
        "delivering": core.delivering,
        "battery_state": battery.state.name,
        "battery_charge": battery.charge,
        "battery_nominal_seconds": battery.charge // BATTERY_UNIT,
        "battery_percent": battery.percent,
        "eri_at": eri_at,
        "replace_by": eri_at + ERI_WARNING_S,
        "eos_at": battery.eos_time,
        "mri_mode": mri.mode.name,
        "mri_auto_exit_at": mri.auto_exit_at,
        "mri_program": mri.recorded_program.to_dict() if mri.recorded_program else None,
        **mri.describe(),
        "last_txid": transactions.last_txid,
        "last_programmed_at": transactions.last_programmed_at,
        "pending": transactions.pending.describe() if transactions.pending else None,
        "applied": [[a.txid, a.kind.name, a.applied_at] for a in transactions.applied],
        "bolus": delivery.bolus.to_dict() if delivery.bolus else None,
        "bolus_remaining_ng": delivery.bolus_remaining_ng,
        "event_count": core.log.count,
        "oldest_index": core.log.oldest_index,
        "auth_failures": routine.auth.total,
        "auth_failures_unlogged": routine.auth.unlogged,
        # sessions opened since manufacture, and those not yet counted in a SESSION_OPENED
        "sessions_opened": {r.name.lower(): s.total for r, s in routine.sessions.roles.items()},
        "sessions_unlogged": {r.name.lower(): s.unlogged for r, s in routine.sessions.roles.items()},
        # the catheter record and its column; what has left the tip (tests only: a pump cannot measure it)
        "catheter": pump.catheter.describe(),
        "patient_received_ng": pump.catheter.column.received_ng(),
        "ptm": pump.ptm.describe(),
        "clock_step_s": pump.clock_step.step_s,
        "patient": pump.patient.describe(),
    }
