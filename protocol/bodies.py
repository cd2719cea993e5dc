# generated, do not edit; run tools/gen_bodies.py
"""Typed message bodies: one frozen dataclass per Struct of protocol/messages.py.

The layouts, units and ranges are messages.py's; the codec checks every value when
it builds a payload and decodes every payload into these classes. A request class
names its command (COMMAND) and the class of its reply (REPLY), so a caller that
sends an InterrogateRequest gets a Status back, typed (reply_to()).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from .constants import (
    Alarm,
    BatteryState,
    BolusPurpose,
    CatheterAction,
    CatheterModel,
    Command,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    InfusionMode,
    MriMode,
    Priority,
    PumpModel,
    Role,
    WriteKind,
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
    raise WrongBody(f"expected a {cls.__name__} body, got {type(body).__name__}")


def reply_to(request: Request[R], body: Body) -> R:
    """The reply `body` to `request` as its reply class, or WrongBody."""
    return cast(R, expect(body, request.REPLY))


def as_dict(value: Fields) -> dict[str, Any]:
    """A body as plain data (groups as dicts, arrays as lists), for logs and JSON files."""
    out: dict[str, Any] = {}
    for f in fields(value):  # type: ignore[arg-type]  # every generated class is a dataclass
        item = getattr(value, f.name)
        if isinstance(item, Fields):
            item = as_dict(item)
        elif isinstance(item, tuple):
            item = [as_dict(x) if isinstance(x, Fields) else x for x in item]
        out[f.name] = item
    return out


@dataclass(frozen=True, slots=True)
class Firmware(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "Firmware"

    major: int  # 0..255
    minor: int  # 0..255
    patch: int  # 0..255

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["major"], d["minor"], d["patch"])

    def _fields(self) -> dict[str, Any]:
        return {"major": self.major, "minor": self.minor, "patch": self.patch}


@dataclass(frozen=True, slots=True)
class CatheterRecord(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "CatheterRecord"

    action: CatheterAction
    model: CatheterModel
    length_mm: int  # mm, 0..1500
    replaced_mm: int  # mm, 0..1500
    recorded_at: int  # s, 0..18446744073709551615
    dead_space_nl: int  # nL, 0..100000000
    priming_due_nl: int  # nL, 0..100000000

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["action"],
            d["model"],
            d["length_mm"],
            d["replaced_mm"],
            d["recorded_at"],
            d["dead_space_nl"],
            d["priming_due_nl"],
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "length_mm": self.length_mm,
            "replaced_mm": self.replaced_mm,
            "recorded_at": self.recorded_at,
            "dead_space_nl": self.dead_space_nl,
            "priming_due_nl": self.priming_due_nl,
        }


@dataclass(frozen=True, slots=True)
class PtmLimits(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "PtmLimits"

    enabled: int  # flag, 0..1
    dose_ng: int  # ng, 0..1000000000
    duration_s: int  # s, 0..86400
    lockout_s: int  # s, 0..86400
    max_per_day: int  # activations, 0..24

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["enabled"], d["dose_ng"], d["duration_s"], d["lockout_s"], d["max_per_day"])

    def _fields(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "dose_ng": self.dose_ng,
            "duration_s": self.duration_s,
            "lockout_s": self.lockout_s,
            "max_per_day": self.max_per_day,
        }


@dataclass(frozen=True, slots=True)
class PtmUse(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "PtmUse"

    granted_24h: int  # 0..255
    refused_24h: int  # 0..65535
    last_granted_at: int  # s, 0..18446744073709551615

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["granted_24h"], d["refused_24h"], d["last_granted_at"])

    def _fields(self) -> dict[str, Any]:
        return {
            "granted_24h": self.granted_24h,
            "refused_24h": self.refused_24h,
            "last_granted_at": self.last_granted_at,
        }


@dataclass(frozen=True, slots=True)
class Event(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "Event"

    index: int  # 0..4294967295
    time: int  # s, 0..18446744073709551615
    type: EventType
    priority: Priority
    arg1: int  # 0..4294967295
    arg2: int  # 0..4294967295

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["index"], d["time"], d["type"], d["priority"], d["arg1"], d["arg2"])

    def _fields(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": self.time,
            "type": self.type,
            "priority": self.priority,
            "arg1": self.arg1,
            "arg2": self.arg2,
        }


@dataclass(frozen=True, slots=True)
class DeliveredStep(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "DeliveredStep"

    start_minute: int  # min, 0..1439
    dose_ng_per_day: int  # ng/day, 0..1000000000
    rate_nl_per_day: int  # nL/day, 0..50000000

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["start_minute"], d["dose_ng_per_day"], d["rate_nl_per_day"])

    def _fields(self) -> dict[str, Any]:
        return {
            "start_minute": self.start_minute,
            "dose_ng_per_day": self.dose_ng_per_day,
            "rate_nl_per_day": self.rate_nl_per_day,
        }


@dataclass(frozen=True, slots=True)
class Program(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "Program"

    mode: InfusionMode
    drug: Drug
    concentration_ng_per_ml: int  # ng/mL, 0..100000000
    daily_dose_ng_per_day: int  # ng/day, 0..1000000000
    daily_volume_nl_per_day: int  # nL/day, 0..50000000
    steps: tuple[DeliveredStep, ...]

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["mode"],
            d["drug"],
            d["concentration_ng_per_ml"],
            d["daily_dose_ng_per_day"],
            d["daily_volume_nl_per_day"],
            tuple([DeliveredStep._parsed(x) for x in d["steps"]]),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "drug": self.drug,
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "daily_dose_ng_per_day": self.daily_dose_ng_per_day,
            "daily_volume_nl_per_day": self.daily_volume_nl_per_day,
            "steps": self.steps,
        }


@dataclass(frozen=True, slots=True)
class ProgramStep(Fields):
    """A group of fields nested in a payload."""

    STRUCT: ClassVar[str] = "ProgramStep"

    start_minute: int  # min, 0..1439
    dose_ng_per_day: int  # ng/day, 0..1000000000

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["start_minute"], d["dose_ng_per_day"])

    def _fields(self) -> dict[str, Any]:
        return {"start_minute": self.start_minute, "dose_ng_per_day": self.dose_ng_per_day}


@dataclass(frozen=True, slots=True)
class HelloResponse(Body):
    """The reply to HELLO."""

    STRUCT: ClassVar[str] = "HelloResponse"

    protocol_version: int  # 0..255
    pump_nonce: bytes  # exactly 16 bytes
    key_id: bytes  # exactly 8 bytes

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["protocol_version"], d["pump_nonce"], d["key_id"])

    def _fields(self) -> dict[str, Any]:
        return {"protocol_version": self.protocol_version, "pump_nonce": self.pump_nonce, "key_id": self.key_id}


@dataclass(frozen=True, slots=True)
class AuthResponse(Body):
    """The reply to AUTH."""

    STRUCT: ClassVar[str] = "AuthResponse"

    proof: bytes  # exactly 32 bytes

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["proof"])

    def _fields(self) -> dict[str, Any]:
        return {"proof": self.proof}


@dataclass(frozen=True, slots=True)
class Status(Body):
    """The reply to INTERROGATE."""

    STRUCT: ClassVar[str] = "Status"

    serial_number: str  # ascii
    model: PumpModel
    firmware: Firmware
    pump_time: int  # s, 0..18446744073709551615
    drug: Drug
    concentration_ng_per_ml: int  # ng/mL, 0..100000000
    mode: InfusionMode
    daily_dose_ng_per_day: int  # ng/day, 0..1000000000
    daily_volume_nl_per_day: int  # nL/day, 0..50000000
    current_rate_nl_per_day: int  # nL/day, 0..50000000
    reservoir_ul: int  # uL, 0..100000
    capacity_ul: int  # uL, 1..100000
    low_reservoir_alarm_ul: int  # uL, 0..100000
    battery_state: BatteryState
    battery_percent: int  # %, 0..100
    eri_at: int  # s, 0..18446744073709551615
    replace_by: int  # s, 0..18446744073709551615
    alarms: Alarm
    mri_mode: MriMode
    mri_auto_exit_at: int  # s, 0..18446744073709551615
    last_txid: int  # 0..4294967295
    last_programmed_at: int  # s, 0..18446744073709551615
    bolus_remaining_ng: int  # ng, 0..1000000000
    event_count: int  # 0..4294967295
    auth_failures: int  # 0..4294967295
    catheter: CatheterRecord
    ptm: PtmLimits
    ptm_use: PtmUse

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["serial_number"],
            d["model"],
            Firmware._parsed(d["firmware"]),
            d["pump_time"],
            d["drug"],
            d["concentration_ng_per_ml"],
            d["mode"],
            d["daily_dose_ng_per_day"],
            d["daily_volume_nl_per_day"],
            d["current_rate_nl_per_day"],
            d["reservoir_ul"],
            d["capacity_ul"],
            d["low_reservoir_alarm_ul"],
            d["battery_state"],
            d["battery_percent"],
            d["eri_at"],
            d["replace_by"],
            d["alarms"],
            d["mri_mode"],
            d["mri_auto_exit_at"],
            d["last_txid"],
            d["last_programmed_at"],
            d["bolus_remaining_ng"],
            d["event_count"],
            d["auth_failures"],
            CatheterRecord._parsed(d["catheter"]),
            PtmLimits._parsed(d["ptm"]),
            PtmUse._parsed(d["ptm_use"]),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "serial_number": self.serial_number,
            "model": self.model,
            "firmware": self.firmware,
            "pump_time": self.pump_time,
            "drug": self.drug,
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "mode": self.mode,
            "daily_dose_ng_per_day": self.daily_dose_ng_per_day,
            "daily_volume_nl_per_day": self.daily_volume_nl_per_day,
            "current_rate_nl_per_day": self.current_rate_nl_per_day,
            "reservoir_ul": self.reservoir_ul,
            "capacity_ul": self.capacity_ul,
            "low_reservoir_alarm_ul": self.low_reservoir_alarm_ul,
            "battery_state": self.battery_state,
            "battery_percent": self.battery_percent,
            "eri_at": self.eri_at,
            "replace_by": self.replace_by,
            "alarms": self.alarms,
            "mri_mode": self.mri_mode,
            "mri_auto_exit_at": self.mri_auto_exit_at,
            "last_txid": self.last_txid,
            "last_programmed_at": self.last_programmed_at,
            "bolus_remaining_ng": self.bolus_remaining_ng,
            "event_count": self.event_count,
            "auth_failures": self.auth_failures,
            "catheter": self.catheter,
            "ptm": self.ptm,
            "ptm_use": self.ptm_use,
        }


@dataclass(frozen=True, slots=True)
class ReadLogResponse(Body):
    """The reply to READ_LOG."""

    STRUCT: ClassVar[str] = "ReadLogResponse"

    oldest_index: int  # 0..4294967295
    event_count: int  # 0..4294967295
    events: tuple[Event, ...]

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["oldest_index"], d["event_count"], tuple([Event._parsed(x) for x in d["events"]]))

    def _fields(self) -> dict[str, Any]:
        return {"oldest_index": self.oldest_index, "event_count": self.event_count, "events": self.events}


@dataclass(frozen=True, slots=True)
class ReadProgramResponse(Body):
    """The reply to READ_PROGRAM."""

    STRUCT: ClassVar[str] = "ReadProgramResponse"

    last_txid: int  # 0..4294967295
    program: Program

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["last_txid"], Program._parsed(d["program"]))

    def _fields(self) -> dict[str, Any]:
        return {"last_txid": self.last_txid, "program": self.program}


@dataclass(frozen=True, slots=True)
class Prepared(Body):
    """The reply to PREPARE_PROGRAM, PREPARE_REFILL, PREPARE_BOLUS, PREPARE_MRI_ENTER, PREPARE_MRI_EXIT,
    PREPARE_CATHETER, PREPARE_CLOCK, PREPARE_PTM."""

    STRUCT: ClassVar[str] = "Prepared"

    txid: int  # txid, 1..4294967295
    kind: WriteKind
    program: Program
    reservoir_ul: int  # uL, 0..100000
    bolus_dose_ng: int  # ng, 0..1000000000
    bolus_duration_s: int  # s, 0..1209600
    bolus_volume_nl: int  # nL, 0..100000000
    mri_auto_exit_s: int  # s, 0..86400
    bolus_purpose: BolusPurpose
    catheter: CatheterRecord
    clock_step_s: int  # s, -3153600000..3153600000
    ptm: PtmLimits

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["txid"],
            d["kind"],
            Program._parsed(d["program"]),
            d["reservoir_ul"],
            d["bolus_dose_ng"],
            d["bolus_duration_s"],
            d["bolus_volume_nl"],
            d["mri_auto_exit_s"],
            d["bolus_purpose"],
            CatheterRecord._parsed(d["catheter"]),
            d["clock_step_s"],
            PtmLimits._parsed(d["ptm"]),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "kind": self.kind,
            "program": self.program,
            "reservoir_ul": self.reservoir_ul,
            "bolus_dose_ng": self.bolus_dose_ng,
            "bolus_duration_s": self.bolus_duration_s,
            "bolus_volume_nl": self.bolus_volume_nl,
            "mri_auto_exit_s": self.mri_auto_exit_s,
            "bolus_purpose": self.bolus_purpose,
            "catheter": self.catheter,
            "clock_step_s": self.clock_step_s,
            "ptm": self.ptm,
        }


@dataclass(frozen=True, slots=True)
class Committed(Body):
    """The reply to COMMIT."""

    STRUCT: ClassVar[str] = "Committed"

    txid: int  # txid, 1..4294967295
    outcome: CommitOutcome
    kind: WriteKind
    applied_at: int  # s, 0..18446744073709551615

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["outcome"], d["kind"], d["applied_at"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "outcome": self.outcome, "kind": self.kind, "applied_at": self.applied_at}


@dataclass(frozen=True, slots=True)
class ErrorResponse(Body):
    """The ERROR reply (to any request)."""

    STRUCT: ClassVar[str] = "ErrorResponse"

    request_command: int  # 0..255
    reason: ErrorReason
    detail: str  # utf8

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["request_command"], d["reason"], d["detail"])

    def _fields(self) -> dict[str, Any]:
        return {"request_command": self.request_command, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class HelloRequest(Request[HelloResponse]):
    """The HELLO request."""

    STRUCT: ClassVar[str] = "HelloRequest"
    COMMAND: ClassVar[Command] = Command.HELLO
    REPLY: ClassVar[type[Body]] = HelloResponse

    protocol_version: int  # 0..255
    client_nonce: bytes  # exactly 16 bytes
    role: Role

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["protocol_version"], d["client_nonce"], d["role"])

    def _fields(self) -> dict[str, Any]:
        return {"protocol_version": self.protocol_version, "client_nonce": self.client_nonce, "role": self.role}


@dataclass(frozen=True, slots=True)
class AuthRequest(Request[AuthResponse]):
    """The AUTH request."""

    STRUCT: ClassVar[str] = "AuthRequest"
    COMMAND: ClassVar[Command] = Command.AUTH
    REPLY: ClassVar[type[Body]] = AuthResponse

    role: Role
    proof: bytes  # exactly 32 bytes

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["role"], d["proof"])

    def _fields(self) -> dict[str, Any]:
        return {"role": self.role, "proof": self.proof}


@dataclass(frozen=True, slots=True)
class InterrogateRequest(Request[Status]):
    """The INTERROGATE request."""

    STRUCT: ClassVar[str] = "InterrogateRequest"
    COMMAND: ClassVar[Command] = Command.INTERROGATE
    REPLY: ClassVar[type[Body]] = Status

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls()

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class ReadLogRequest(Request[ReadLogResponse]):
    """The READ_LOG request."""

    STRUCT: ClassVar[str] = "ReadLogRequest"
    COMMAND: ClassVar[Command] = Command.READ_LOG
    REPLY: ClassVar[type[Body]] = ReadLogResponse

    first_index: int  # 0..4294967295
    max_count: int  # events, 1..28

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["first_index"], d["max_count"])

    def _fields(self) -> dict[str, Any]:
        return {"first_index": self.first_index, "max_count": self.max_count}


@dataclass(frozen=True, slots=True)
class ReadProgramRequest(Request[ReadProgramResponse]):
    """The READ_PROGRAM request."""

    STRUCT: ClassVar[str] = "ReadProgramRequest"
    COMMAND: ClassVar[Command] = Command.READ_PROGRAM
    REPLY: ClassVar[type[Body]] = ReadProgramResponse

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls()

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class PrepareProgramRequest(Request[Prepared]):
    """The PREPARE_PROGRAM request."""

    STRUCT: ClassVar[str] = "PrepareProgramRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_PROGRAM
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    mode: InfusionMode
    drug: Drug
    concentration_ng_per_ml: int  # ng/mL, 1..100000000
    steps: tuple[ProgramStep, ...]

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["txid"],
            d["based_on_txid"],
            d["mode"],
            d["drug"],
            d["concentration_ng_per_ml"],
            tuple([ProgramStep._parsed(x) for x in d["steps"]]),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "based_on_txid": self.based_on_txid,
            "mode": self.mode,
            "drug": self.drug,
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "steps": self.steps,
        }


@dataclass(frozen=True, slots=True)
class PrepareRefillRequest(Request[Prepared]):
    """The PREPARE_REFILL request."""

    STRUCT: ClassVar[str] = "PrepareRefillRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_REFILL
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    drug: Drug
    concentration_ng_per_ml: int  # ng/mL, 1..100000000
    volume_ul: int  # uL, 0..100000
    withdrawn_ul: int  # uL, 0..100000
    mode: InfusionMode
    steps: tuple[ProgramStep, ...]
    bridge_volume_nl: int  # nL, 0..100000000
    bridge_duration_s: int  # s, 0..1209600

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["txid"],
            d["based_on_txid"],
            d["drug"],
            d["concentration_ng_per_ml"],
            d["volume_ul"],
            d["withdrawn_ul"],
            d["mode"],
            tuple([ProgramStep._parsed(x) for x in d["steps"]]),
            d["bridge_volume_nl"],
            d["bridge_duration_s"],
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "based_on_txid": self.based_on_txid,
            "drug": self.drug,
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "volume_ul": self.volume_ul,
            "withdrawn_ul": self.withdrawn_ul,
            "mode": self.mode,
            "steps": self.steps,
            "bridge_volume_nl": self.bridge_volume_nl,
            "bridge_duration_s": self.bridge_duration_s,
        }


@dataclass(frozen=True, slots=True)
class PrepareBolusRequest(Request[Prepared]):
    """The PREPARE_BOLUS request."""

    STRUCT: ClassVar[str] = "PrepareBolusRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_BOLUS
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    dose_ng: int  # ng, 1..1000000000
    duration_s: int  # s, 60..86400
    purpose: BolusPurpose

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], d["dose_ng"], d["duration_s"], d["purpose"])

    def _fields(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "based_on_txid": self.based_on_txid,
            "dose_ng": self.dose_ng,
            "duration_s": self.duration_s,
            "purpose": self.purpose,
        }


@dataclass(frozen=True, slots=True)
class PrepareMriEnterRequest(Request[Prepared]):
    """The PREPARE_MRI_ENTER request."""

    STRUCT: ClassVar[str] = "PrepareMriEnterRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_MRI_ENTER
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    auto_exit_s: int  # s, 3600..86400

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], d["auto_exit_s"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid, "auto_exit_s": self.auto_exit_s}


@dataclass(frozen=True, slots=True)
class PrepareMriExitRequest(Request[Prepared]):
    """The PREPARE_MRI_EXIT request."""

    STRUCT: ClassVar[str] = "PrepareMriExitRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_MRI_EXIT
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid}


@dataclass(frozen=True, slots=True)
class PrepareCatheterRequest(Request[Prepared]):
    """The PREPARE_CATHETER request."""

    STRUCT: ClassVar[str] = "PrepareCatheterRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_CATHETER
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    action: CatheterAction
    model: CatheterModel
    length_mm: int  # mm, 1..1500
    replaced_mm: int  # mm, 0..1500

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], d["action"], d["model"], d["length_mm"], d["replaced_mm"])

    def _fields(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "based_on_txid": self.based_on_txid,
            "action": self.action,
            "model": self.model,
            "length_mm": self.length_mm,
            "replaced_mm": self.replaced_mm,
        }


@dataclass(frozen=True, slots=True)
class PrepareClockRequest(Request[Prepared]):
    """The PREPARE_CLOCK request."""

    STRUCT: ClassVar[str] = "PrepareClockRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_CLOCK
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    new_time: int  # s, 0..18446744073709551615

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], d["new_time"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid, "new_time": self.new_time}


@dataclass(frozen=True, slots=True)
class PreparePtmRequest(Request[Prepared]):
    """The PREPARE_PTM request."""

    STRUCT: ClassVar[str] = "PreparePtmRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_PTM
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    limits: PtmLimits

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], PtmLimits._parsed(d["limits"]))

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid, "limits": self.limits}


@dataclass(frozen=True, slots=True)
class CommitRequest(Request[Committed]):
    """The COMMIT request."""

    STRUCT: ClassVar[str] = "CommitRequest"
    COMMAND: ClassVar[Command] = Command.COMMIT
    REPLY: ClassVar[type[Body]] = Committed

    txid: int  # txid, 1..4294967295

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid}


#: message key (messages.key(command, response)) -> its body class
BODIES: dict[int, type[Body]] = {
    key(Command.HELLO, False): HelloRequest,
    key(Command.HELLO, True): HelloResponse,
    key(Command.AUTH, False): AuthRequest,
    key(Command.AUTH, True): AuthResponse,
    key(Command.INTERROGATE, False): InterrogateRequest,
    key(Command.INTERROGATE, True): Status,
    key(Command.READ_LOG, False): ReadLogRequest,
    key(Command.READ_LOG, True): ReadLogResponse,
    key(Command.READ_PROGRAM, False): ReadProgramRequest,
    key(Command.READ_PROGRAM, True): ReadProgramResponse,
    key(Command.PREPARE_PROGRAM, False): PrepareProgramRequest,
    key(Command.PREPARE_PROGRAM, True): Prepared,
    key(Command.PREPARE_REFILL, False): PrepareRefillRequest,
    key(Command.PREPARE_REFILL, True): Prepared,
    key(Command.PREPARE_BOLUS, False): PrepareBolusRequest,
    key(Command.PREPARE_BOLUS, True): Prepared,
    key(Command.PREPARE_MRI_ENTER, False): PrepareMriEnterRequest,
    key(Command.PREPARE_MRI_ENTER, True): Prepared,
    key(Command.PREPARE_MRI_EXIT, False): PrepareMriExitRequest,
    key(Command.PREPARE_MRI_EXIT, True): Prepared,
    key(Command.PREPARE_CATHETER, False): PrepareCatheterRequest,
    key(Command.PREPARE_CATHETER, True): Prepared,
    key(Command.PREPARE_CLOCK, False): PrepareClockRequest,
    key(Command.PREPARE_CLOCK, True): Prepared,
    key(Command.PREPARE_PTM, False): PreparePtmRequest,
    key(Command.PREPARE_PTM, True): Prepared,
    key(Command.COMMIT, False): CommitRequest,
    key(Command.COMMIT, True): Committed,
    key(Command.ERROR, True): ErrorResponse,
}

#: every generated class, payloads and nested groups
ALL: tuple[type[Fields], ...] = (
    Firmware,
    CatheterRecord,
    PtmLimits,
    PtmUse,
    Event,
    DeliveredStep,
    Program,
    ProgramStep,
    HelloRequest,
    HelloResponse,
    AuthRequest,
    AuthResponse,
    InterrogateRequest,
    Status,
    ReadLogRequest,
    ReadLogResponse,
    ReadProgramRequest,
    ReadProgramResponse,
    PrepareProgramRequest,
    Prepared,
    PrepareRefillRequest,
    PrepareBolusRequest,
    PrepareMriEnterRequest,
    PrepareMriExitRequest,
    PrepareCatheterRequest,
    PrepareClockRequest,
    PreparePtmRequest,
    CommitRequest,
    Committed,
    ErrorResponse,
)
