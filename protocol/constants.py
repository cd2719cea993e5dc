"""Wire constants: sync word, version, size limits, flags and every code table.

Codes are IntEnums so that logs and docs print names; the wire carries the
integer. Adding a member is a protocol change: docs/protocol.md lists them all
and tests/test_protocol_docs.py fails when the two disagree.
"""
from enum import IntEnum, IntFlag

SYNC = b"\xa5\x5a"
#: version 3: AUTH_FAILURE and SESSION_OPENED are coalesced (at most one event per stream
#: per 10 minutes, counts in the events) so routine events cannot flush therapy history
#: out of the event log; version 2 bound the handshake to its transcript (security.py).
#: The version history is in docs/protocol.md; peers of another version are refused with
#: both versions named.
#: version 4 (issue 18): the catheter record, priming and bridge boluses, setting the clock
#: and patient-activated boluses (PREPARE_CATHETER, PREPARE_CLOCK, PREPARE_PTM; new Status
#: and Prepared fields; a purpose on PREPARE_BOLUS and a bridge on PREPARE_REFILL).
#: version 5: the patient record: PREPARE_PATIENT, Status.patient, Prepared.patient and
#: PATIENT_RECORDED (an opaque patient ID, initials, birth date and baclofen's spasticity origin).
PROTOCOL_VERSION = 5
#: HELLO frames (and a clear ERROR answering one) always carry header version 1, whatever
#: the protocol version in their body, like TLS's legacy record version: so a pump and a
#: programmer of different versions can always read each other's HELLO and say which
#: versions they speak, instead of dropping each other's frames as garbage.
HELLO_FRAME_VERSION = 1

#: bytes after the sync word and before the payload: version, flags, seq, command, length
HEADER_SIZE = 7
CRC_SIZE = 4
#: the largest payload accepted; checked before any payload byte is read
MAX_PAYLOAD = 1024
#: reserved for the message-authentication trailer (64-bit counter + 128-bit MAC)
AUTH_TRAILER_SIZE = 24
MAX_FRAME = len(SYNC) + HEADER_SIZE + MAX_PAYLOAD + AUTH_TRAILER_SIZE + CRC_SIZE


class Flag(IntFlag):
    RESPONSE = 0x01  # set on every pump-to-programmer frame
    AUTH = 0x02  # an authentication trailer follows the payload (secure link)


KNOWN_FLAGS = Flag.RESPONSE | Flag.AUTH


class Command(IntEnum):
    HELLO = 0x01
    INTERROGATE = 0x02
    READ_LOG = 0x03
    READ_PROGRAM = 0x04
    AUTH = 0x05  # second half of the handshake: proofs of the key, both ways (security.py)
    # writes are two-phase: a PREPARE_* makes the pump validate and echo what it
    # will deliver; COMMIT(txid) applies it. Nothing changes before COMMIT.
    PREPARE_PROGRAM = 0x10
    PREPARE_REFILL = 0x11
    PREPARE_BOLUS = 0x12
    PREPARE_MRI_ENTER = 0x13
    PREPARE_MRI_EXIT = 0x14
    PREPARE_CATHETER = 0x15
    PREPARE_CLOCK = 0x16
    PREPARE_PTM = 0x17
    PREPARE_PATIENT = 0x18
    COMMIT = 0x1F
    ERROR = 0x7F  # response only: the request was understood as a frame but refused


class PumpModel(IntEnum):
    PERISTALTIC_20 = 1
    PERISTALTIC_40 = 2
    VALVE_GATED_20 = 3


class Drug(IntEnum):
    NONE = 0
    MORPHINE = 1
    HYDROMORPHONE = 2
    BUPIVACAINE = 3
    BACLOFEN = 4
    CLONIDINE = 5
    ZICONOTIDE = 6
    FENTANYL = 7
    SUFENTANIL = 8


class InfusionMode(IntEnum):
    STOPPED = 0
    CONTINUOUS = 1
    FLEX = 2
    MINIMUM = 3


class WriteKind(IntEnum):
    """What a prepared transaction will do when committed."""

    PROGRAM = 1
    REFILL = 2
    BOLUS = 3
    MRI_ENTER = 4
    MRI_EXIT = 5
    CATHETER = 6
    CLOCK = 7
    PTM = 8
    PATIENT = 9


class CommitOutcome(IntEnum):
    APPLIED = 1  # applied now
    ALREADY_APPLIED = 2  # this txid was applied before: nothing was done again


class BatteryState(IntEnum):
    OK = 0
    ERI = 1  # elective replacement indicator: replace within 90 days
    EOS = 2  # end of service: delivery has stopped


class MriMode(IntEnum):
    OFF = 0
    SAFE = 1


class Priority(IntEnum):
    """IEC 60601-1-8 alarm priorities (NONE for plain events)."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Alarm(IntFlag):
    LOW_RESERVOIR = 0x0001
    EMPTY_RESERVOIR = 0x0002
    ERI = 0x0004
    EOS = 0x0008
    MOTOR_STALL = 0x0010
    MEMORY_ERROR = 0x0020
    RESET = 0x0040
    UNCONTROLLED_BOLUS = 0x0080


KNOWN_ALARMS = Alarm(0)
for _a in Alarm:
    KNOWN_ALARMS |= _a

ALARM_PRIORITY = {
    Alarm.LOW_RESERVOIR: Priority.MEDIUM,
    Alarm.EMPTY_RESERVOIR: Priority.HIGH,
    Alarm.ERI: Priority.MEDIUM,
    Alarm.EOS: Priority.HIGH,
    Alarm.MOTOR_STALL: Priority.HIGH,
    Alarm.MEMORY_ERROR: Priority.HIGH,
    Alarm.RESET: Priority.LOW,
    Alarm.UNCONTROLLED_BOLUS: Priority.HIGH,
}


class EventType(IntEnum):
    """Event-log entry types; arg1/arg2 meanings are listed in docs/protocol.md."""

    POWER_ON = 1  # arg1: 1 if state was restored from storage
    ALARM_RAISED = 2  # arg1: Alarm bit
    ALARM_CLEARED = 3  # arg1: Alarm bit
    PROGRAM_CHANGED = 4  # arg1: previous 24-hour dose ng/day, arg2: new 24-hour dose ng/day
    REFILL = 5  # arg1: new volume uL, arg2: concentration ng/mL
    MOTOR_STALL = 6
    STALL_RECOVERY = 7
    MRI_SAFE_ENTERED = 8  # arg1: auto-exit delay, seconds
    MRI_SAFE_EXITED = 9  # arg1: 1 if by the automatic timer
    UNCONTROLLED_BOLUS = 10  # arg1: volume delivered uL
    BOLUS_STARTED = 11  # arg1: dose ng, arg2: duration s
    BOLUS_FINISHED = 12
    BATTERY_ERI = 13
    BATTERY_EOS = 14
    RESERVOIR_EMPTY = 15
    DELIVERY_STOPPED = 16
    DELIVERY_RESUMED = 17
    TX_APPLIED = 18  # arg1: txid, arg2: WriteKind (logged for every committed write)
    # routine events, coalesced (version 3: at most one event per stream per 10 minutes of
    # pump time, every occurrence counted) so that nobody can flush therapy history out of
    # the ring buffer; docs/protocol.md, "Routine events and the log"
    AUTH_FAILURE = 19  # arg1: failures since the last AUTH_FAILURE event, arg2: ErrorReason of the last
    SESSION_OPENED = 20  # arg1: Role, arg2: sessions of that role since its last SESSION_OPENED (1: a lone one)
    CATHETER_RECORDED = 21  # arg1: CatheterAction, arg2: length_mm | replaced_mm << 16
    CLOCK_SET = 22  # arg1: the old time, arg2: the new time (s since the epoch, unsigned 32-bit)
    PTM_GRANTED = 23  # arg1: dose ng, arg2: duration s (a patient bolus starts)
    PTM_REFUSED = 24  # arg1: PtmRefusal, arg2: seconds of lockout left (LOCKOUT), else 0
    PRIMING_STARTED = 25  # arg1: volume nL, arg2: duration s (the dose: BOLUS_STARTED just before)
    BRIDGE_STARTED = 26  # arg1: the old drug's dose the patient receives, ng; arg2: duration s
    DRUG_CHANGED = 27  # arg1: the old Drug, arg2: the new Drug (a refill with another drug; before its REFILL)
    PATIENT_RECORDED = 28  # arg1: PatientAction, arg2: SpasticityOrigin | fields changed << 8 (never the ID)


class ErrorReason(IntEnum):
    UNKNOWN_COMMAND = 1
    MALFORMED_PAYLOAD = 2
    UNSUPPORTED_VERSION = 3
    OUT_OF_RANGE = 4
    INVALID_STATE = 5
    NOT_PERMITTED = 6
    BUSY = 7
    INTERNAL = 8
    NOT_AUTHENTICATED = 9  # no authenticated session: only HELLO and AUTH are served
    AUTH_FAILED = 10  # the programmer's proof did not verify (wrong key)
    RATE_LIMITED = 11  # too many failed attempts: wait (the detail says how long)
    CHANGED_SINCE_READ = 12  # a PREPARE's based_on_txid is not the pump's last_txid: read again


class Role(IntEnum):
    """What a key may do; the pump enforces it."""

    READER = 1  # interrogate, read the log and the program (MRI checklist)
    CLINICIAN = 2  # everything, including PREPARE_* and COMMIT


class CatheterModel(IntEnum):
    """The implanted catheter: its volume per cm is in protocol/catheter.py."""

    NONE = 0  # no catheter recorded
    STANDARD = 1  # the common intrathecal catheter, 0.0026 mL/cm


class CatheterAction(IntEnum):
    """What a PREPARE_CATHETER records (docs/clinical.md#catheter)."""

    NONE = 0  # nothing recorded yet (status only)
    IMPLANT = 1  # a new catheter: tubing and whole catheter to prime
    REVISION = 2  # a segment replaced: that segment to prime
    CORRECTION = 3  # the record was mistyped: corrected, priming not re-armed


class BolusPurpose(IntEnum):
    """Why a bolus runs: each is counted in the 24-hour total its own way."""

    CLINICIAN = 0  # a dose given on purpose (on top of the program)
    PRIMING = 1  # fills a new catheter or segment with drug (volume from the catheter record)
    BRIDGE = 2  # moves the old drug out at the old rate after a refill (the program waits)
    PATIENT = 3  # activated by the patient within the clinician's limits


class PtmRefusal(IntEnum):
    """Why the pump refused a patient activation (PTM_REFUSED.arg1)."""

    DISABLED = 1  # patient boluses are off
    LOCKOUT = 2  # too soon after the last granted one
    DAILY_MAX = 3  # the most a day already given (rolling 24 hours)
    BOLUS_RUNNING = 4  # another bolus is running
    NOT_DELIVERING = 5  # delivery is stopped (empty, stalled, MRI-safe, end of service)
    RESERVOIR = 6  # the reservoir cannot carry the dose



class SpasticityOrigin(IntEnum):
    """Where a baclofen patient's spasticity comes from (the patient record, version 5): it
    picks baclofen's 24-hour escalation budget (docs/clinical.md)."""

    NOT_RECORDED = 0
    SPINAL = 1
    CEREBRAL = 2


class PatientAction(IntEnum):
    """What a PREPARE_PATIENT does (docs/protocol.md, "The patient record")."""

    RECORD = 1  # the pump holds no patient yet: record one
    CORRECT = 2  # change the record the pump holds (a mistyped ID, a newly known origin)
