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
    PatientAction,
    Priority,
    PumpModel,
    Role,
    SpasticityOrigin,
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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class Firmware(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("major", "minor", "patch")
    STRUCT: ClassVar[str] = "Firmware"

    major: int  # 0..255
    minor: int  # 0..255
    patch: int  # 0..255

    def __init__(self, major: int, minor: int, patch: int) -> None:
        object.__setattr__(self, "major", major)
        object.__setattr__(self, "minor", minor)
        object.__setattr__(self, "patch", patch)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(major={self.major!r}, minor={self.minor!r}, patch={self.patch!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Firmware) and other.__class__ is self.__class__:
            return (self.major, self.minor, self.patch) == (other.major, other.minor, other.patch)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.major, self.minor, self.patch))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["major"], d["minor"], d["patch"])

    def _fields(self) -> dict[str, Any]:
        return {"major": self.major, "minor": self.minor, "patch": self.patch}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class CatheterRecord(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("action", "model", "length_mm", "replaced_mm", "recorded_at", "dead_space_nl", "priming_due_nl")
    STRUCT: ClassVar[str] = "CatheterRecord"

    action: CatheterAction
    model: CatheterModel
    length_mm: int  # mm, 0..1500
    replaced_mm: int  # mm, 0..1500
    recorded_at: int  # s, 0..18446744073709551615
    dead_space_nl: int  # nL, 0..100000000
    priming_due_nl: int  # nL, 0..100000000

    def __init__(
        self,
        action: CatheterAction,
        model: CatheterModel,
        length_mm: int,
        replaced_mm: int,
        recorded_at: int,
        dead_space_nl: int,
        priming_due_nl: int,
    ) -> None:
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "length_mm", length_mm)
        object.__setattr__(self, "replaced_mm", replaced_mm)
        object.__setattr__(self, "recorded_at", recorded_at)
        object.__setattr__(self, "dead_space_nl", dead_space_nl)
        object.__setattr__(self, "priming_due_nl", priming_due_nl)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(action={self.action!r}, model={self.model!r}, "
                f"length_mm={self.length_mm!r}, replaced_mm={self.replaced_mm!r}, recorded_at={self.recorded_at!r}, "
                f"dead_space_nl={self.dead_space_nl!r}, priming_due_nl={self.priming_due_nl!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CatheterRecord) and other.__class__ is self.__class__:
            return (
                (self.action, self.model, self.length_mm, self.replaced_mm, self.recorded_at, self.dead_space_nl,
                 self.priming_due_nl)
                == (other.action, other.model, other.length_mm, other.replaced_mm, other.recorded_at,
                    other.dead_space_nl, other.priming_due_nl)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(
            (self.action, self.model, self.length_mm, self.replaced_mm, self.recorded_at, self.dead_space_nl,
             self.priming_due_nl)
        )

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PtmLimits(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("enabled", "dose_ng", "duration_s", "lockout_s", "max_per_day")
    STRUCT: ClassVar[str] = "PtmLimits"

    enabled: int  # flag, 0..1
    dose_ng: int  # ng, 0..1000000000
    duration_s: int  # s, 0..86400
    lockout_s: int  # s, 0..86400
    max_per_day: int  # activations, 0..24

    def __init__(self, enabled: int, dose_ng: int, duration_s: int, lockout_s: int, max_per_day: int) -> None:
        object.__setattr__(self, "enabled", enabled)
        object.__setattr__(self, "dose_ng", dose_ng)
        object.__setattr__(self, "duration_s", duration_s)
        object.__setattr__(self, "lockout_s", lockout_s)
        object.__setattr__(self, "max_per_day", max_per_day)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(enabled={self.enabled!r}, dose_ng={self.dose_ng!r}, "
                f"duration_s={self.duration_s!r}, lockout_s={self.lockout_s!r}, max_per_day={self.max_per_day!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PtmLimits) and other.__class__ is self.__class__:
            return (
                (self.enabled, self.dose_ng, self.duration_s, self.lockout_s, self.max_per_day)
                == (other.enabled, other.dose_ng, other.duration_s, other.lockout_s, other.max_per_day)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.enabled, self.dose_ng, self.duration_s, self.lockout_s, self.max_per_day))

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PtmUse(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("granted_24h", "refused_24h", "last_granted_at")
    STRUCT: ClassVar[str] = "PtmUse"

    granted_24h: int  # 0..255
    refused_24h: int  # 0..65535
    last_granted_at: int  # s, 0..18446744073709551615

    def __init__(self, granted_24h: int, refused_24h: int, last_granted_at: int) -> None:
        object.__setattr__(self, "granted_24h", granted_24h)
        object.__setattr__(self, "refused_24h", refused_24h)
        object.__setattr__(self, "last_granted_at", last_granted_at)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(granted_24h={self.granted_24h!r}, refused_24h={self.refused_24h!r}, "
                f"last_granted_at={self.last_granted_at!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PtmUse) and other.__class__ is self.__class__:
            return (
                (self.granted_24h, self.refused_24h, self.last_granted_at)
                == (other.granted_24h, other.refused_24h, other.last_granted_at)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.granted_24h, self.refused_24h, self.last_granted_at))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["granted_24h"], d["refused_24h"], d["last_granted_at"])

    def _fields(self) -> dict[str, Any]:
        return {
            "granted_24h": self.granted_24h,
            "refused_24h": self.refused_24h,
            "last_granted_at": self.last_granted_at,
        }


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PatientRecord(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("patient_id", "initials", "birth_date", "spasticity_origin", "recorded_at")
    STRUCT: ClassVar[str] = "PatientRecord"

    patient_id: str  # ascii
    initials: str  # ascii
    birth_date: int  # yyyymmdd, 0..99991231
    spasticity_origin: SpasticityOrigin
    recorded_at: int  # s, 0..18446744073709551615

    def __init__(
        self,
        patient_id: str,
        initials: str,
        birth_date: int,
        spasticity_origin: SpasticityOrigin,
        recorded_at: int,
    ) -> None:
        object.__setattr__(self, "patient_id", patient_id)
        object.__setattr__(self, "initials", initials)
        object.__setattr__(self, "birth_date", birth_date)
        object.__setattr__(self, "spasticity_origin", spasticity_origin)
        object.__setattr__(self, "recorded_at", recorded_at)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(patient_id={self.patient_id!r}, initials={self.initials!r}, "
                f"birth_date={self.birth_date!r}, spasticity_origin={self.spasticity_origin!r}, "
                f"recorded_at={self.recorded_at!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PatientRecord) and other.__class__ is self.__class__:
            return (
                (self.patient_id, self.initials, self.birth_date, self.spasticity_origin, self.recorded_at)
                == (other.patient_id, other.initials, other.birth_date, other.spasticity_origin, other.recorded_at)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.patient_id, self.initials, self.birth_date, self.spasticity_origin, self.recorded_at))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["patient_id"], d["initials"], d["birth_date"], d["spasticity_origin"], d["recorded_at"])

    def _fields(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "initials": self.initials,
            "birth_date": self.birth_date,
            "spasticity_origin": self.spasticity_origin,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class Event(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("index", "time", "type", "priority", "arg1", "arg2")
    STRUCT: ClassVar[str] = "Event"

    index: int  # 0..4294967295
    time: int  # s, 0..18446744073709551615
    type: EventType
    priority: Priority
    arg1: int  # 0..4294967295
    arg2: int  # 0..4294967295

    def __init__(self, index: int, time: int, type: EventType, priority: Priority, arg1: int, arg2: int) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "arg1", arg1)
        object.__setattr__(self, "arg2", arg2)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(index={self.index!r}, time={self.time!r}, type={self.type!r}, "
                f"priority={self.priority!r}, arg1={self.arg1!r}, arg2={self.arg2!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Event) and other.__class__ is self.__class__:
            return (
                (self.index, self.time, self.type, self.priority, self.arg1, self.arg2)
                == (other.index, other.time, other.type, other.priority, other.arg1, other.arg2)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.index, self.time, self.type, self.priority, self.arg1, self.arg2))

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class DeliveredStep(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("start_minute", "dose_ng_per_day", "rate_nl_per_day")
    STRUCT: ClassVar[str] = "DeliveredStep"

    start_minute: int  # min, 0..1439
    dose_ng_per_day: int  # ng/day, 0..1000000000
    rate_nl_per_day: int  # nL/day, 0..50000000

    def __init__(self, start_minute: int, dose_ng_per_day: int, rate_nl_per_day: int) -> None:
        object.__setattr__(self, "start_minute", start_minute)
        object.__setattr__(self, "dose_ng_per_day", dose_ng_per_day)
        object.__setattr__(self, "rate_nl_per_day", rate_nl_per_day)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(start_minute={self.start_minute!r}, "
                f"dose_ng_per_day={self.dose_ng_per_day!r}, rate_nl_per_day={self.rate_nl_per_day!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeliveredStep) and other.__class__ is self.__class__:
            return (
                (self.start_minute, self.dose_ng_per_day, self.rate_nl_per_day)
                == (other.start_minute, other.dose_ng_per_day, other.rate_nl_per_day)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.start_minute, self.dose_ng_per_day, self.rate_nl_per_day))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["start_minute"], d["dose_ng_per_day"], d["rate_nl_per_day"])

    def _fields(self) -> dict[str, Any]:
        return {
            "start_minute": self.start_minute,
            "dose_ng_per_day": self.dose_ng_per_day,
            "rate_nl_per_day": self.rate_nl_per_day,
        }


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class Program(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("mode", "drug", "concentration_ng_per_ml", "daily_dose_ng_per_day", "daily_volume_nl_per_day",
                 "steps")
    STRUCT: ClassVar[str] = "Program"

    mode: InfusionMode
    drug: Drug
    concentration_ng_per_ml: int  # ng/mL, 0..100000000
    daily_dose_ng_per_day: int  # ng/day, 0..1000000000
    daily_volume_nl_per_day: int  # nL/day, 0..50000000
    steps: tuple[DeliveredStep, ...]

    def __init__(
        self,
        mode: InfusionMode,
        drug: Drug,
        concentration_ng_per_ml: int,
        daily_dose_ng_per_day: int,
        daily_volume_nl_per_day: int,
        steps: tuple[DeliveredStep, ...],
    ) -> None:
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "drug", drug)
        object.__setattr__(self, "concentration_ng_per_ml", concentration_ng_per_ml)
        object.__setattr__(self, "daily_dose_ng_per_day", daily_dose_ng_per_day)
        object.__setattr__(self, "daily_volume_nl_per_day", daily_volume_nl_per_day)
        object.__setattr__(self, "steps", steps)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(mode={self.mode!r}, drug={self.drug!r}, "
                f"concentration_ng_per_ml={self.concentration_ng_per_ml!r}, "
                f"daily_dose_ng_per_day={self.daily_dose_ng_per_day!r}, "
                f"daily_volume_nl_per_day={self.daily_volume_nl_per_day!r}, steps={self.steps!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Program) and other.__class__ is self.__class__:
            return (
                (self.mode, self.drug, self.concentration_ng_per_ml, self.daily_dose_ng_per_day,
                 self.daily_volume_nl_per_day, self.steps)
                == (other.mode, other.drug, other.concentration_ng_per_ml, other.daily_dose_ng_per_day,
                    other.daily_volume_nl_per_day, other.steps)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(
            (self.mode, self.drug, self.concentration_ng_per_ml, self.daily_dose_ng_per_day,
             self.daily_volume_nl_per_day, self.steps)
        )

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class ProgramStep(Fields):
    """A group of fields nested in a payload."""

    __slots__ = ("start_minute", "dose_ng_per_day")
    STRUCT: ClassVar[str] = "ProgramStep"

    start_minute: int  # min, 0..1439
    dose_ng_per_day: int  # ng/day, 0..1000000000

    def __init__(self, start_minute: int, dose_ng_per_day: int) -> None:
        object.__setattr__(self, "start_minute", start_minute)
        object.__setattr__(self, "dose_ng_per_day", dose_ng_per_day)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(start_minute={self.start_minute!r}, "
                f"dose_ng_per_day={self.dose_ng_per_day!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProgramStep) and other.__class__ is self.__class__:
            return (self.start_minute, self.dose_ng_per_day) == (other.start_minute, other.dose_ng_per_day)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.start_minute, self.dose_ng_per_day))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["start_minute"], d["dose_ng_per_day"])

    def _fields(self) -> dict[str, Any]:
        return {"start_minute": self.start_minute, "dose_ng_per_day": self.dose_ng_per_day}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class HelloResponse(Body):
    """The reply to HELLO."""

    __slots__ = ("protocol_version", "pump_nonce", "key_id")
    STRUCT: ClassVar[str] = "HelloResponse"

    protocol_version: int  # 0..255
    pump_nonce: bytes  # exactly 16 bytes
    key_id: bytes  # exactly 8 bytes

    def __init__(self, protocol_version: int, pump_nonce: bytes, key_id: bytes) -> None:
        object.__setattr__(self, "protocol_version", protocol_version)
        object.__setattr__(self, "pump_nonce", pump_nonce)
        object.__setattr__(self, "key_id", key_id)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(protocol_version={self.protocol_version!r}, "
                f"pump_nonce={self.pump_nonce!r}, key_id={self.key_id!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HelloResponse) and other.__class__ is self.__class__:
            return (
                (self.protocol_version, self.pump_nonce, self.key_id)
                == (other.protocol_version, other.pump_nonce, other.key_id)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.protocol_version, self.pump_nonce, self.key_id))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["protocol_version"], d["pump_nonce"], d["key_id"])

    def _fields(self) -> dict[str, Any]:
        return {"protocol_version": self.protocol_version, "pump_nonce": self.pump_nonce, "key_id": self.key_id}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class AuthResponse(Body):
    """The reply to AUTH."""

    __slots__ = ("proof",)
    STRUCT: ClassVar[str] = "AuthResponse"

    proof: bytes  # exactly 32 bytes

    def __init__(self, proof: bytes) -> None:
        object.__setattr__(self, "proof", proof)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(proof={self.proof!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AuthResponse) and other.__class__ is self.__class__:
            return (self.proof,) == (other.proof,)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.proof,))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["proof"])

    def _fields(self) -> dict[str, Any]:
        return {"proof": self.proof}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class Status(Body):
    """The reply to INTERROGATE."""

    __slots__ = ("serial_number", "model", "firmware", "pump_time", "drug", "concentration_ng_per_ml", "mode",
                 "daily_dose_ng_per_day", "daily_volume_nl_per_day", "current_rate_nl_per_day", "reservoir_ul",
                 "capacity_ul", "low_reservoir_alarm_ul", "battery_state", "battery_percent", "eri_at", "replace_by",
                 "alarms", "mri_mode", "mri_auto_exit_at", "last_txid", "last_programmed_at", "bolus_remaining_ng",
                 "event_count", "auth_failures", "catheter", "ptm", "ptm_use", "patient")
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
    patient: PatientRecord

    def __init__(
        self,
        serial_number: str,
        model: PumpModel,
        firmware: Firmware,
        pump_time: int,
        drug: Drug,
        concentration_ng_per_ml: int,
        mode: InfusionMode,
        daily_dose_ng_per_day: int,
        daily_volume_nl_per_day: int,
        current_rate_nl_per_day: int,
        reservoir_ul: int,
        capacity_ul: int,
        low_reservoir_alarm_ul: int,
        battery_state: BatteryState,
        battery_percent: int,
        eri_at: int,
        replace_by: int,
        alarms: Alarm,
        mri_mode: MriMode,
        mri_auto_exit_at: int,
        last_txid: int,
        last_programmed_at: int,
        bolus_remaining_ng: int,
        event_count: int,
        auth_failures: int,
        catheter: CatheterRecord,
        ptm: PtmLimits,
        ptm_use: PtmUse,
        patient: PatientRecord,
    ) -> None:
        object.__setattr__(self, "serial_number", serial_number)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "firmware", firmware)
        object.__setattr__(self, "pump_time", pump_time)
        object.__setattr__(self, "drug", drug)
        object.__setattr__(self, "concentration_ng_per_ml", concentration_ng_per_ml)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "daily_dose_ng_per_day", daily_dose_ng_per_day)
        object.__setattr__(self, "daily_volume_nl_per_day", daily_volume_nl_per_day)
        object.__setattr__(self, "current_rate_nl_per_day", current_rate_nl_per_day)
        object.__setattr__(self, "reservoir_ul", reservoir_ul)
        object.__setattr__(self, "capacity_ul", capacity_ul)
        object.__setattr__(self, "low_reservoir_alarm_ul", low_reservoir_alarm_ul)
        object.__setattr__(self, "battery_state", battery_state)
        object.__setattr__(self, "battery_percent", battery_percent)
        object.__setattr__(self, "eri_at", eri_at)
        object.__setattr__(self, "replace_by", replace_by)
        object.__setattr__(self, "alarms", alarms)
        object.__setattr__(self, "mri_mode", mri_mode)
        object.__setattr__(self, "mri_auto_exit_at", mri_auto_exit_at)
        object.__setattr__(self, "last_txid", last_txid)
        object.__setattr__(self, "last_programmed_at", last_programmed_at)
        object.__setattr__(self, "bolus_remaining_ng", bolus_remaining_ng)
        object.__setattr__(self, "event_count", event_count)
        object.__setattr__(self, "auth_failures", auth_failures)
        object.__setattr__(self, "catheter", catheter)
        object.__setattr__(self, "ptm", ptm)
        object.__setattr__(self, "ptm_use", ptm_use)
        object.__setattr__(self, "patient", patient)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(serial_number={self.serial_number!r}, model={self.model!r}, "
                f"firmware={self.firmware!r}, pump_time={self.pump_time!r}, drug={self.drug!r}, "
                f"concentration_ng_per_ml={self.concentration_ng_per_ml!r}, mode={self.mode!r}, "
                f"daily_dose_ng_per_day={self.daily_dose_ng_per_day!r}, "
                f"daily_volume_nl_per_day={self.daily_volume_nl_per_day!r}, "
                f"current_rate_nl_per_day={self.current_rate_nl_per_day!r}, reservoir_ul={self.reservoir_ul!r}, "
                f"capacity_ul={self.capacity_ul!r}, low_reservoir_alarm_ul={self.low_reservoir_alarm_ul!r}, "
                f"battery_state={self.battery_state!r}, battery_percent={self.battery_percent!r}, "
                f"eri_at={self.eri_at!r}, replace_by={self.replace_by!r}, alarms={self.alarms!r}, "
                f"mri_mode={self.mri_mode!r}, mri_auto_exit_at={self.mri_auto_exit_at!r}, "
                f"last_txid={self.last_txid!r}, last_programmed_at={self.last_programmed_at!r}, "
                f"bolus_remaining_ng={self.bolus_remaining_ng!r}, event_count={self.event_count!r}, "
                f"auth_failures={self.auth_failures!r}, catheter={self.catheter!r}, ptm={self.ptm!r}, "
                f"ptm_use={self.ptm_use!r}, patient={self.patient!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Status) and other.__class__ is self.__class__:
            return (
                (self.serial_number, self.model, self.firmware, self.pump_time, self.drug,
                 self.concentration_ng_per_ml, self.mode, self.daily_dose_ng_per_day, self.daily_volume_nl_per_day,
                 self.current_rate_nl_per_day, self.reservoir_ul, self.capacity_ul, self.low_reservoir_alarm_ul,
                 self.battery_state, self.battery_percent, self.eri_at, self.replace_by, self.alarms, self.mri_mode,
                 self.mri_auto_exit_at, self.last_txid, self.last_programmed_at, self.bolus_remaining_ng,
                 self.event_count, self.auth_failures, self.catheter, self.ptm, self.ptm_use, self.patient)
                == (other.serial_number, other.model, other.firmware, other.pump_time, other.drug,
                    other.concentration_ng_per_ml, other.mode, other.daily_dose_ng_per_day,
                    other.daily_volume_nl_per_day, other.current_rate_nl_per_day, other.reservoir_ul,
                    other.capacity_ul, other.low_reservoir_alarm_ul, other.battery_state, other.battery_percent,
                    other.eri_at, other.replace_by, other.alarms, other.mri_mode, other.mri_auto_exit_at,
                    other.last_txid, other.last_programmed_at, other.bolus_remaining_ng, other.event_count,
                    other.auth_failures, other.catheter, other.ptm, other.ptm_use, other.patient)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(
            (self.serial_number, self.model, self.firmware, self.pump_time, self.drug, self.concentration_ng_per_ml,
             self.mode, self.daily_dose_ng_per_day, self.daily_volume_nl_per_day, self.current_rate_nl_per_day,
             self.reservoir_ul, self.capacity_ul, self.low_reservoir_alarm_ul, self.battery_state,
             self.battery_percent, self.eri_at, self.replace_by, self.alarms, self.mri_mode, self.mri_auto_exit_at,
             self.last_txid, self.last_programmed_at, self.bolus_remaining_ng, self.event_count, self.auth_failures,
             self.catheter, self.ptm, self.ptm_use, self.patient)
        )

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
            PatientRecord._parsed(d["patient"]),
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
            "patient": self.patient,
        }


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class ReadLogResponse(Body):
    """The reply to READ_LOG."""

    __slots__ = ("oldest_index", "event_count", "events")
    STRUCT: ClassVar[str] = "ReadLogResponse"

    oldest_index: int  # 0..4294967295
    event_count: int  # 0..4294967295
    events: tuple[Event, ...]

    def __init__(self, oldest_index: int, event_count: int, events: tuple[Event, ...]) -> None:
        object.__setattr__(self, "oldest_index", oldest_index)
        object.__setattr__(self, "event_count", event_count)
        object.__setattr__(self, "events", events)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(oldest_index={self.oldest_index!r}, event_count={self.event_count!r}, "
                f"events={self.events!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadLogResponse) and other.__class__ is self.__class__:
            return (
                (self.oldest_index, self.event_count, self.events)
                == (other.oldest_index, other.event_count, other.events)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.oldest_index, self.event_count, self.events))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["oldest_index"], d["event_count"], tuple([Event._parsed(x) for x in d["events"]]))

    def _fields(self) -> dict[str, Any]:
        return {"oldest_index": self.oldest_index, "event_count": self.event_count, "events": self.events}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class ReadProgramResponse(Body):
    """The reply to READ_PROGRAM."""

    __slots__ = ("last_txid", "program")
    STRUCT: ClassVar[str] = "ReadProgramResponse"

    last_txid: int  # 0..4294967295
    program: Program

    def __init__(self, last_txid: int, program: Program) -> None:
        object.__setattr__(self, "last_txid", last_txid)
        object.__setattr__(self, "program", program)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(last_txid={self.last_txid!r}, program={self.program!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadProgramResponse) and other.__class__ is self.__class__:
            return (self.last_txid, self.program) == (other.last_txid, other.program)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.last_txid, self.program))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["last_txid"], Program._parsed(d["program"]))

    def _fields(self) -> dict[str, Any]:
        return {"last_txid": self.last_txid, "program": self.program}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class Prepared(Body):
    """The reply to PREPARE_PROGRAM, PREPARE_REFILL, PREPARE_BOLUS, PREPARE_MRI_ENTER, PREPARE_MRI_EXIT,
    PREPARE_CATHETER, PREPARE_CLOCK, PREPARE_PTM, PREPARE_PATIENT."""

    __slots__ = ("txid", "kind", "program", "reservoir_ul", "bolus_dose_ng", "bolus_duration_s", "bolus_volume_nl",
                 "mri_auto_exit_s", "bolus_purpose", "catheter", "clock_step_s", "ptm", "patient")
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
    patient: PatientRecord

    def __init__(
        self,
        txid: int,
        kind: WriteKind,
        program: Program,
        reservoir_ul: int,
        bolus_dose_ng: int,
        bolus_duration_s: int,
        bolus_volume_nl: int,
        mri_auto_exit_s: int,
        bolus_purpose: BolusPurpose,
        catheter: CatheterRecord,
        clock_step_s: int,
        ptm: PtmLimits,
        patient: PatientRecord,
    ) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "program", program)
        object.__setattr__(self, "reservoir_ul", reservoir_ul)
        object.__setattr__(self, "bolus_dose_ng", bolus_dose_ng)
        object.__setattr__(self, "bolus_duration_s", bolus_duration_s)
        object.__setattr__(self, "bolus_volume_nl", bolus_volume_nl)
        object.__setattr__(self, "mri_auto_exit_s", mri_auto_exit_s)
        object.__setattr__(self, "bolus_purpose", bolus_purpose)
        object.__setattr__(self, "catheter", catheter)
        object.__setattr__(self, "clock_step_s", clock_step_s)
        object.__setattr__(self, "ptm", ptm)
        object.__setattr__(self, "patient", patient)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, kind={self.kind!r}, program={self.program!r}, "
                f"reservoir_ul={self.reservoir_ul!r}, bolus_dose_ng={self.bolus_dose_ng!r}, "
                f"bolus_duration_s={self.bolus_duration_s!r}, bolus_volume_nl={self.bolus_volume_nl!r}, "
                f"mri_auto_exit_s={self.mri_auto_exit_s!r}, bolus_purpose={self.bolus_purpose!r}, "
                f"catheter={self.catheter!r}, clock_step_s={self.clock_step_s!r}, ptm={self.ptm!r}, "
                f"patient={self.patient!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Prepared) and other.__class__ is self.__class__:
            return (
                (self.txid, self.kind, self.program, self.reservoir_ul, self.bolus_dose_ng, self.bolus_duration_s,
                 self.bolus_volume_nl, self.mri_auto_exit_s, self.bolus_purpose, self.catheter, self.clock_step_s,
                 self.ptm, self.patient)
                == (other.txid, other.kind, other.program, other.reservoir_ul, other.bolus_dose_ng,
                    other.bolus_duration_s, other.bolus_volume_nl, other.mri_auto_exit_s, other.bolus_purpose,
                    other.catheter, other.clock_step_s, other.ptm, other.patient)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(
            (self.txid, self.kind, self.program, self.reservoir_ul, self.bolus_dose_ng, self.bolus_duration_s,
             self.bolus_volume_nl, self.mri_auto_exit_s, self.bolus_purpose, self.catheter, self.clock_step_s,
             self.ptm, self.patient)
        )

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
            PatientRecord._parsed(d["patient"]),
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
            "patient": self.patient,
        }


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class Committed(Body):
    """The reply to COMMIT."""

    __slots__ = ("txid", "outcome", "kind", "applied_at")
    STRUCT: ClassVar[str] = "Committed"

    txid: int  # txid, 1..4294967295
    outcome: CommitOutcome
    kind: WriteKind
    applied_at: int  # s, 0..18446744073709551615

    def __init__(self, txid: int, outcome: CommitOutcome, kind: WriteKind, applied_at: int) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "applied_at", applied_at)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, outcome={self.outcome!r}, kind={self.kind!r}, "
                f"applied_at={self.applied_at!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Committed) and other.__class__ is self.__class__:
            return (
                (self.txid, self.outcome, self.kind, self.applied_at)
                == (other.txid, other.outcome, other.kind, other.applied_at)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.outcome, self.kind, self.applied_at))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["outcome"], d["kind"], d["applied_at"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "outcome": self.outcome, "kind": self.kind, "applied_at": self.applied_at}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class ErrorResponse(Body):
    """The ERROR reply (to any request)."""

    __slots__ = ("request_command", "reason", "detail")
    STRUCT: ClassVar[str] = "ErrorResponse"

    request_command: int  # 0..255
    reason: ErrorReason
    detail: str  # utf8

    def __init__(self, request_command: int, reason: ErrorReason, detail: str) -> None:
        object.__setattr__(self, "request_command", request_command)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "detail", detail)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(request_command={self.request_command!r}, reason={self.reason!r}, "
                f"detail={self.detail!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ErrorResponse) and other.__class__ is self.__class__:
            return (
                (self.request_command, self.reason, self.detail)
                == (other.request_command, other.reason, other.detail)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.request_command, self.reason, self.detail))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["request_command"], d["reason"], d["detail"])

    def _fields(self) -> dict[str, Any]:
        return {"request_command": self.request_command, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class HelloRequest(Request[HelloResponse]):
    """The HELLO request."""

    __slots__ = ("protocol_version", "client_nonce", "role")
    STRUCT: ClassVar[str] = "HelloRequest"
    COMMAND: ClassVar[Command] = Command.HELLO
    REPLY: ClassVar[type[Body]] = HelloResponse

    protocol_version: int  # 0..255
    client_nonce: bytes  # exactly 16 bytes
    role: Role

    def __init__(self, protocol_version: int, client_nonce: bytes, role: Role) -> None:
        object.__setattr__(self, "protocol_version", protocol_version)
        object.__setattr__(self, "client_nonce", client_nonce)
        object.__setattr__(self, "role", role)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(protocol_version={self.protocol_version!r}, "
                f"client_nonce={self.client_nonce!r}, role={self.role!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HelloRequest) and other.__class__ is self.__class__:
            return (
                (self.protocol_version, self.client_nonce, self.role)
                == (other.protocol_version, other.client_nonce, other.role)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.protocol_version, self.client_nonce, self.role))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["protocol_version"], d["client_nonce"], d["role"])

    def _fields(self) -> dict[str, Any]:
        return {"protocol_version": self.protocol_version, "client_nonce": self.client_nonce, "role": self.role}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class AuthRequest(Request[AuthResponse]):
    """The AUTH request."""

    __slots__ = ("role", "proof")
    STRUCT: ClassVar[str] = "AuthRequest"
    COMMAND: ClassVar[Command] = Command.AUTH
    REPLY: ClassVar[type[Body]] = AuthResponse

    role: Role
    proof: bytes  # exactly 32 bytes

    def __init__(self, role: Role, proof: bytes) -> None:
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "proof", proof)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(role={self.role!r}, proof={self.proof!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AuthRequest) and other.__class__ is self.__class__:
            return (self.role, self.proof) == (other.role, other.proof)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.role, self.proof))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["role"], d["proof"])

    def _fields(self) -> dict[str, Any]:
        return {"role": self.role, "proof": self.proof}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class InterrogateRequest(Request[Status]):
    """The INTERROGATE request."""

    __slots__ = ()
    STRUCT: ClassVar[str] = "InterrogateRequest"
    COMMAND: ClassVar[Command] = Command.INTERROGATE
    REPLY: ClassVar[type[Body]] = Status

    def __init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}()"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, InterrogateRequest) and other.__class__ is self.__class__:
            return True
        return NotImplemented

    def __hash__(self) -> int:
        return hash(())

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls()

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class ReadLogRequest(Request[ReadLogResponse]):
    """The READ_LOG request."""

    __slots__ = ("first_index", "max_count")
    STRUCT: ClassVar[str] = "ReadLogRequest"
    COMMAND: ClassVar[Command] = Command.READ_LOG
    REPLY: ClassVar[type[Body]] = ReadLogResponse

    first_index: int  # 0..4294967295
    max_count: int  # events, 1..28

    def __init__(self, first_index: int, max_count: int) -> None:
        object.__setattr__(self, "first_index", first_index)
        object.__setattr__(self, "max_count", max_count)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(first_index={self.first_index!r}, max_count={self.max_count!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadLogRequest) and other.__class__ is self.__class__:
            return (self.first_index, self.max_count) == (other.first_index, other.max_count)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.first_index, self.max_count))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["first_index"], d["max_count"])

    def _fields(self) -> dict[str, Any]:
        return {"first_index": self.first_index, "max_count": self.max_count}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class ReadProgramRequest(Request[ReadProgramResponse]):
    """The READ_PROGRAM request."""

    __slots__ = ()
    STRUCT: ClassVar[str] = "ReadProgramRequest"
    COMMAND: ClassVar[Command] = Command.READ_PROGRAM
    REPLY: ClassVar[type[Body]] = ReadProgramResponse

    def __init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}()"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadProgramRequest) and other.__class__ is self.__class__:
            return True
        return NotImplemented

    def __hash__(self) -> int:
        return hash(())

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls()

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareProgramRequest(Request[Prepared]):
    """The PREPARE_PROGRAM request."""

    __slots__ = ("txid", "based_on_txid", "mode", "drug", "concentration_ng_per_ml", "steps")
    STRUCT: ClassVar[str] = "PrepareProgramRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_PROGRAM
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    mode: InfusionMode
    drug: Drug
    concentration_ng_per_ml: int  # ng/mL, 1..100000000
    steps: tuple[ProgramStep, ...]

    def __init__(
        self,
        txid: int,
        based_on_txid: int,
        mode: InfusionMode,
        drug: Drug,
        concentration_ng_per_ml: int,
        steps: tuple[ProgramStep, ...],
    ) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "drug", drug)
        object.__setattr__(self, "concentration_ng_per_ml", concentration_ng_per_ml)
        object.__setattr__(self, "steps", steps)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"mode={self.mode!r}, drug={self.drug!r}, concentration_ng_per_ml={self.concentration_ng_per_ml!r}, "
                f"steps={self.steps!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareProgramRequest) and other.__class__ is self.__class__:
            return (
                (self.txid, self.based_on_txid, self.mode, self.drug, self.concentration_ng_per_ml, self.steps)
                == (other.txid, other.based_on_txid, other.mode, other.drug, other.concentration_ng_per_ml,
                    other.steps)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid, self.mode, self.drug, self.concentration_ng_per_ml, self.steps))

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareRefillRequest(Request[Prepared]):
    """The PREPARE_REFILL request."""

    __slots__ = ("txid", "based_on_txid", "drug", "concentration_ng_per_ml", "volume_ul", "withdrawn_ul", "mode",
                 "steps", "bridge_volume_nl", "bridge_duration_s")
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

    def __init__(
        self,
        txid: int,
        based_on_txid: int,
        drug: Drug,
        concentration_ng_per_ml: int,
        volume_ul: int,
        withdrawn_ul: int,
        mode: InfusionMode,
        steps: tuple[ProgramStep, ...],
        bridge_volume_nl: int,
        bridge_duration_s: int,
    ) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "drug", drug)
        object.__setattr__(self, "concentration_ng_per_ml", concentration_ng_per_ml)
        object.__setattr__(self, "volume_ul", volume_ul)
        object.__setattr__(self, "withdrawn_ul", withdrawn_ul)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "bridge_volume_nl", bridge_volume_nl)
        object.__setattr__(self, "bridge_duration_s", bridge_duration_s)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"drug={self.drug!r}, concentration_ng_per_ml={self.concentration_ng_per_ml!r}, "
                f"volume_ul={self.volume_ul!r}, withdrawn_ul={self.withdrawn_ul!r}, mode={self.mode!r}, "
                f"steps={self.steps!r}, bridge_volume_nl={self.bridge_volume_nl!r}, "
                f"bridge_duration_s={self.bridge_duration_s!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareRefillRequest) and other.__class__ is self.__class__:
            return (
                (self.txid, self.based_on_txid, self.drug, self.concentration_ng_per_ml, self.volume_ul,
                 self.withdrawn_ul, self.mode, self.steps, self.bridge_volume_nl, self.bridge_duration_s)
                == (other.txid, other.based_on_txid, other.drug, other.concentration_ng_per_ml, other.volume_ul,
                    other.withdrawn_ul, other.mode, other.steps, other.bridge_volume_nl, other.bridge_duration_s)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(
            (self.txid, self.based_on_txid, self.drug, self.concentration_ng_per_ml, self.volume_ul, self.withdrawn_ul,
             self.mode, self.steps, self.bridge_volume_nl, self.bridge_duration_s)
        )

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareBolusRequest(Request[Prepared]):
    """The PREPARE_BOLUS request."""

    __slots__ = ("txid", "based_on_txid", "dose_ng", "duration_s", "purpose")
    STRUCT: ClassVar[str] = "PrepareBolusRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_BOLUS
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    dose_ng: int  # ng, 1..1000000000
    duration_s: int  # s, 60..86400
    purpose: BolusPurpose

    def __init__(self, txid: int, based_on_txid: int, dose_ng: int, duration_s: int, purpose: BolusPurpose) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "dose_ng", dose_ng)
        object.__setattr__(self, "duration_s", duration_s)
        object.__setattr__(self, "purpose", purpose)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"dose_ng={self.dose_ng!r}, duration_s={self.duration_s!r}, purpose={self.purpose!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareBolusRequest) and other.__class__ is self.__class__:
            return (
                (self.txid, self.based_on_txid, self.dose_ng, self.duration_s, self.purpose)
                == (other.txid, other.based_on_txid, other.dose_ng, other.duration_s, other.purpose)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid, self.dose_ng, self.duration_s, self.purpose))

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareMriEnterRequest(Request[Prepared]):
    """The PREPARE_MRI_ENTER request."""

    __slots__ = ("txid", "based_on_txid", "auto_exit_s")
    STRUCT: ClassVar[str] = "PrepareMriEnterRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_MRI_ENTER
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    auto_exit_s: int  # s, 3600..86400

    def __init__(self, txid: int, based_on_txid: int, auto_exit_s: int) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "auto_exit_s", auto_exit_s)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"auto_exit_s={self.auto_exit_s!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareMriEnterRequest) and other.__class__ is self.__class__:
            return (
                (self.txid, self.based_on_txid, self.auto_exit_s)
                == (other.txid, other.based_on_txid, other.auto_exit_s)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid, self.auto_exit_s))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], d["auto_exit_s"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid, "auto_exit_s": self.auto_exit_s}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareMriExitRequest(Request[Prepared]):
    """The PREPARE_MRI_EXIT request."""

    __slots__ = ("txid", "based_on_txid")
    STRUCT: ClassVar[str] = "PrepareMriExitRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_MRI_EXIT
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295

    def __init__(self, txid: int, based_on_txid: int) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareMriExitRequest) and other.__class__ is self.__class__:
            return (self.txid, self.based_on_txid) == (other.txid, other.based_on_txid)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareCatheterRequest(Request[Prepared]):
    """The PREPARE_CATHETER request."""

    __slots__ = ("txid", "based_on_txid", "action", "model", "length_mm", "replaced_mm")
    STRUCT: ClassVar[str] = "PrepareCatheterRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_CATHETER
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    action: CatheterAction
    model: CatheterModel
    length_mm: int  # mm, 1..1500
    replaced_mm: int  # mm, 0..1500

    def __init__(
        self,
        txid: int,
        based_on_txid: int,
        action: CatheterAction,
        model: CatheterModel,
        length_mm: int,
        replaced_mm: int,
    ) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "length_mm", length_mm)
        object.__setattr__(self, "replaced_mm", replaced_mm)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"action={self.action!r}, model={self.model!r}, length_mm={self.length_mm!r}, "
                f"replaced_mm={self.replaced_mm!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareCatheterRequest) and other.__class__ is self.__class__:
            return (
                (self.txid, self.based_on_txid, self.action, self.model, self.length_mm, self.replaced_mm)
                == (other.txid, other.based_on_txid, other.action, other.model, other.length_mm, other.replaced_mm)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid, self.action, self.model, self.length_mm, self.replaced_mm))

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


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PrepareClockRequest(Request[Prepared]):
    """The PREPARE_CLOCK request."""

    __slots__ = ("txid", "based_on_txid", "new_time")
    STRUCT: ClassVar[str] = "PrepareClockRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_CLOCK
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    new_time: int  # s, 0..18446744073709551615

    def __init__(self, txid: int, based_on_txid: int, new_time: int) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "new_time", new_time)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"new_time={self.new_time!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrepareClockRequest) and other.__class__ is self.__class__:
            return (self.txid, self.based_on_txid, self.new_time) == (other.txid, other.based_on_txid, other.new_time)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid, self.new_time))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], d["new_time"])

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid, "new_time": self.new_time}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PreparePtmRequest(Request[Prepared]):
    """The PREPARE_PTM request."""

    __slots__ = ("txid", "based_on_txid", "limits")
    STRUCT: ClassVar[str] = "PreparePtmRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_PTM
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    limits: PtmLimits

    def __init__(self, txid: int, based_on_txid: int, limits: PtmLimits) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "limits", limits)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"limits={self.limits!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PreparePtmRequest) and other.__class__ is self.__class__:
            return (self.txid, self.based_on_txid, self.limits) == (other.txid, other.based_on_txid, other.limits)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid, self.based_on_txid, self.limits))

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(d["txid"], d["based_on_txid"], PtmLimits._parsed(d["limits"]))

    def _fields(self) -> dict[str, Any]:
        return {"txid": self.txid, "based_on_txid": self.based_on_txid, "limits": self.limits}


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class PreparePatientRequest(Request[Prepared]):
    """The PREPARE_PATIENT request."""

    __slots__ = ("txid", "based_on_txid", "action", "patient_id", "initials", "birth_date", "spasticity_origin")
    STRUCT: ClassVar[str] = "PreparePatientRequest"
    COMMAND: ClassVar[Command] = Command.PREPARE_PATIENT
    REPLY: ClassVar[type[Body]] = Prepared

    txid: int  # txid, 1..4294967295
    based_on_txid: int  # txid, 0..4294967295
    action: PatientAction
    patient_id: str  # ascii
    initials: str  # ascii
    birth_date: int  # yyyymmdd, 0..99991231
    spasticity_origin: SpasticityOrigin

    def __init__(
        self,
        txid: int,
        based_on_txid: int,
        action: PatientAction,
        patient_id: str,
        initials: str,
        birth_date: int,
        spasticity_origin: SpasticityOrigin,
    ) -> None:
        object.__setattr__(self, "txid", txid)
        object.__setattr__(self, "based_on_txid", based_on_txid)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "patient_id", patient_id)
        object.__setattr__(self, "initials", initials)
        object.__setattr__(self, "birth_date", birth_date)
        object.__setattr__(self, "spasticity_origin", spasticity_origin)

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(txid={self.txid!r}, based_on_txid={self.based_on_txid!r}, "
                f"action={self.action!r}, patient_id={self.patient_id!r}, initials={self.initials!r}, "
                f"birth_date={self.birth_date!r}, spasticity_origin={self.spasticity_origin!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PreparePatientRequest) and other.__class__ is self.__class__:
            return (
                (self.txid, self.based_on_txid, self.action, self.patient_id, self.initials, self.birth_date,
                 self.spasticity_origin)
                == (other.txid, other.based_on_txid, other.action, other.patient_id, other.initials, other.birth_date,
                    other.spasticity_origin)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(
            (self.txid, self.based_on_txid, self.action, self.patient_id, self.initials, self.birth_date,
             self.spasticity_origin)
        )

    @classmethod
    def _parsed(cls, d: Any) -> Self:
        return cls(
            d["txid"],
            d["based_on_txid"],
            d["action"],
            d["patient_id"],
            d["initials"],
            d["birth_date"],
            d["spasticity_origin"],
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "based_on_txid": self.based_on_txid,
            "action": self.action,
            "patient_id": self.patient_id,
            "initials": self.initials,
            "birth_date": self.birth_date,
            "spasticity_origin": self.spasticity_origin,
        }


@dataclass(frozen=True, init=False, repr=False, eq=False)  # the methods are below
class CommitRequest(Request[Committed]):
    """The COMMIT request."""

    __slots__ = ("txid",)
    STRUCT: ClassVar[str] = "CommitRequest"
    COMMAND: ClassVar[Command] = Command.COMMIT
    REPLY: ClassVar[type[Body]] = Committed

    txid: int  # txid, 1..4294967295

    def __init__(self, txid: int) -> None:
        object.__setattr__(self, "txid", txid)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(txid={self.txid!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommitRequest) and other.__class__ is self.__class__:
            return (self.txid,) == (other.txid,)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.txid,))

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
    key(Command.PREPARE_PATIENT, False): PreparePatientRequest,
    key(Command.PREPARE_PATIENT, True): Prepared,
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
    PatientRecord,
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
    PreparePatientRequest,
    CommitRequest,
    Committed,
    ErrorResponse,
)
