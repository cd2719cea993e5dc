"""ith-emulator: an implanted pump on a pty or TCP port, for ithcli and its tests.

The ready line: the first line on stdout is the pyserial URL to connect to (a /dev/pts
path or socket://HOST:PORT), printed and flushed once the pump serves: its key file exists
(created with fresh keys if it was missing), its --state file is saved, its control socket
listens. Nothing else ever goes to stdout. A pump that cannot start prints nothing there,
one line on stderr, and exits 1 (2: bad arguments or an unusable key file). ithcli/emulator_process.py is the one
reader of this contract (for `ithcli --port emulator`, the campaign, the tests, bench/).
Diagnostics go to stderr. Runs until SIGTERM/SIGINT, saves state, exits 0.

A ward (--pumps N or --ward FILE; ward.py): many pumps served by this one process, each with
its own port, key file, state file, control socket and clock. Its first line on stdout is the
path of the ward's manifest (JSON: every pump's serial, URL and files), written before.

A new pump's serial is --serial, else its --key-file's when that file exists (the same pump
started again), else a new unique one (new_serial(): two emulators never share a serial, nor a
key store entry), said in one line on stderr once it serves; the key file holds it either way.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from protocol import Drug, Quantity, UnitError
from protocol.messages import MAX_CATHETER_MM
from protocol.models import MODELS_BY_NAME

from . import keys as keyfile
from . import store
from .clock import PumpClock
from .pump import DEFAULT_STALL_RECOVERY_S, MAX_STALL_RECOVERY_S, Pump, valid_serial
from .security_state import DEFAULT_BACKOFF_CAP_S
from .server import Server

PROG = "ith-emulator"
#: a new pump's catheter, implanted and primed (the common kit is 110 cm before trimming)
DEFAULT_CATHETER_MM = 800
DEFAULTS = {
    "model": "peristaltic-40",
    "drug": "morphine",
    "concentration": "10 mg/mL",
    "volume": "18 mL",
    "flow": "0.2 mL/day",
    "low_alarm": "2 mL",
    "battery_days": str(5 * 365),
    "stall_recovery": str(DEFAULT_STALL_RECOVERY_S),
    "catheter_mm": str(DEFAULT_CATHETER_MM),
}
# the pump's identity and settings: taken from --state when it exists
PUMP_OPTIONS = ("serial", *DEFAULTS, "start_time")
#: a new pump's serial when none is given (and its key file names none): EMU- and 8 characters
#: without look-alikes (no I, O, 0 or 1: a person types it into --expect-serial), 40 random bits,
#: so that two emulators never share a serial, nor a key store entry
NEW_SERIAL_PREFIX = "EMU-"
NEW_SERIAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_BATTERY_DAYS = 20 * 365
#: a ward's largest size: each pump holds three descriptors and a pty (the kernel's default is 4096)
MAX_WARD_PUMPS = 1200
DRUGS = [d.name.lower() for d in Drug if d is not Drug.NONE]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _quantity(dimension: str):
    def parse(text: str) -> int:
        try:
            return Quantity.parse(text, dimension).to_base()
        except UnitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = dimension  # argparse names the type in its message
    return parse


def _serial(text: str) -> str:
    if not valid_serial(text):
        raise argparse.ArgumentTypeError(f"{text!r}: 1-16 characters of A-Z, 0-9 and -")
    return text


def new_serial() -> str:
    """A fresh serial for a new pump: EMU- and 8 random characters of NEW_SERIAL_ALPHABET."""
    serial = NEW_SERIAL_PREFIX + "".join(secrets.choice(NEW_SERIAL_ALPHABET) for _ in range(8))
    assert valid_serial(serial)
    return serial


def _pick_serial(args) -> str | None:
    """A new pump's serial when --serial is not given: its key file's, when the file exists (the
    same pump started again), else a new one. None when --serial gives it."""
    if args.serial is not None:
        return None
    found = keyfile.serial_in(args.key_file)
    return found if found is not None and valid_serial(found) else new_serial()


def _battery_days(text: str) -> int:
    try:
        days = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not days.is_finite() or not 0 < days <= MAX_BATTERY_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: give days in (0, {MAX_BATTERY_DAYS}]")
    return max(1, int(days * 86_400))


def _whole_number(low: int, high: int, unit: str, *, of: str = "", note: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number of `unit` in low..high, each refusal one line
    (`of`: how the first message names the unit; `note`: after the range)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number{of}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: give {low}..{high} {unit}{note}")
        return value
    return parse


_stall_recovery = _whole_number(0, MAX_STALL_RECOVERY_S, "seconds", of=" of seconds")
_catheter_mm = _whole_number(0, MAX_CATHETER_MM, "mm", of=" of mm", note=" (0: no catheter recorded)")


def _time_scale(text: str) -> float:
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(scale) or not 0 < scale <= 1e9:
        raise argparse.ArgumentTypeError(f"{text!r}: the time scale must be in (0, 1e9]")
    return scale


def _backoff_cap(text: str) -> float:
    try:
        cap = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(cap) or not 0 < cap <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds in (0, 3600]")
    return cap


def _start_time(text: str) -> int:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the pump clock is UTC
    seconds = int(when.timestamp())
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is before 1970")
    return seconds


_baud = _whole_number(300, 10_000_000, "baud")
_pump_count = _whole_number(1, MAX_WARD_PUMPS, "pumps")


def _listen(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[?([^\[\]]*?)\]?:(\d{1,5})", text)
    if not match or int(match[2]) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return match[1], int(match[2])


class _Version(argparse.Action):
    """--version: 'ith-emulator 0.1.0 (protocol version 5)' on stdout, exit 0. The installed
    version is looked up only when asked (not on every start)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        from protocol.constants import PROTOCOL_VERSION

        try:
            release = version("ithcli")  # the distribution ith-emulator ships in
        except PackageNotFoundError:  # run from a source tree that was never installed
            release = "(not installed)"
        print(f"{PROG} {release} (protocol version {PROTOCOL_VERSION})", flush=True)  # stdout, as --help
        parser.exit(0)


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description="Emulate an implanted intrathecal pump on a pseudo-terminal or TCP port. "
        "Prints the pyserial URL to connect to as the first line on stdout.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (the default)")
    where.add_argument("--listen", type=_listen, metavar="HOST:PORT",
                       help="serve on TCP (port 0 picks a free one); URL socket://HOST:PORT")
    p.add_argument("--model", choices=sorted(MODELS_BY_NAME),
                   help=f"pump model (default {DEFAULTS['model']})")
    p.add_argument("--serial", type=_serial,
                   help="serial number, A-Z 0-9 - (default: the serial of an existing --key-file, else a new "
                   f"unique one, {NEW_SERIAL_PREFIX}XXXXXXXX, said on stderr)")
    p.add_argument("--drug", choices=DRUGS, help=f"drug in the reservoir (default {DEFAULTS['drug']})")
    p.add_argument("--concentration", type=_quantity("concentration"), metavar="QTY",
                   help=f"e.g. '10 mg/mL' or '500 mcg/mL' (default {DEFAULTS['concentration']})")
    p.add_argument("--volume", type=_quantity("volume"), metavar="QTY",
                   help=f"reservoir volume now, at most the capacity (default {DEFAULTS['volume']})")
    p.add_argument("--flow", type=_quantity("flow"), metavar="QTY",
                   help=f"continuous flow, within the model's range (default {DEFAULTS['flow']})")
    p.add_argument("--low-alarm", type=_quantity("volume"), metavar="QTY",
                   help=f"low-reservoir alarm threshold (default {DEFAULTS['low_alarm']})")
    p.add_argument("--battery-days", type=_battery_days, metavar="N",
                   help="nominal days of battery charge left (drains faster at high flow; "
                   f"default {DEFAULTS['battery_days']})")
    p.add_argument("--stall-recovery", type=_stall_recovery, metavar="SECONDS",
                   help="pump time a peristaltic motor stalled by an MRI field takes to recover after the "
                   f"field ends (0..{MAX_STALL_RECOVERY_S}; default {DEFAULTS['stall_recovery']}); "
                   "a pump that was alarming waits for an INTERROGATE after that")
    p.add_argument("--catheter-mm", type=_catheter_mm, metavar="N",
                   help="a new pump's STANDARD catheter, implanted and primed with the reservoir's drug: its "
                   f"length in mm (0..{MAX_CATHETER_MM}; 0: no catheter recorded; default {DEFAULTS['catheter_mm']})")
    p.add_argument("--time-scale", type=_time_scale, default=1.0, metavar="N",
                   help="the pump clock runs N times faster than real time (default 1)")
    p.add_argument("--start-time", type=_start_time, metavar="ISO8601",
                   help="pump clock at start (default now; naive times are UTC)")
    p.add_argument("--state", metavar="FILE",
                   help="persist the pump here (atomic JSON); restored on start if it exists")
    p.add_argument("--key-file", metavar="FILE",
                   help="REQUIRED: the pump's keys (JSON, mode 0600; see docs/security.md); "
                   "a missing file is created with fresh random keys for this pump's serial")
    p.add_argument("--auth-backoff-cap", type=_backoff_cap, default=DEFAULT_BACKOFF_CAP_S, metavar="SECONDS",
                   help="longest wait imposed after repeated failed AUTH attempts "
                   f"(default {DEFAULT_BACKOFF_CAP_S:g})")
    p.add_argument("--baud", type=_baud, metavar="N",
                   help="pace the emulator's replies like a serial line at N baud (10 bits a byte), "
                   "e.g. 115200; default: no pacing")
    p.add_argument("--control", metavar="PATH", help="test-only control socket (UNIX, JSON lines)")
    _add_ward_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log every frame on stderr")
    p.add_argument("--version", action=_Version, help="print the version and the protocol version it speaks, then exit")
    return p


def _add_ward_options(parser: Parser) -> None:
    ward = parser.add_argument_group("a ward: many pumps in this one process (stdout: the manifest's path)")
    many = ward.add_mutually_exclusive_group()
    many.add_argument("--pumps", type=_pump_count, metavar="N",
                      help=f"serve N pumps (1..{MAX_WARD_PUMPS}), each on its own pty or TCP port (--listen "
                      "HOST:PORT: ports PORT, PORT+1, ...; port 0: any free one each), with its own key file, "
                      "state file, control socket and clock; the options above apply to every pump")
    many.add_argument("--ward", metavar="FILE",
                      help="serve the pumps a TOML ward file lists ([[pump]] tables of model, drug, "
                      "concentration, volume, flow, serial, count; see README); options above are the defaults")
    ward.add_argument("--ward-dir", metavar="DIR",
                      help="the ward's files: manifest.json, ward.lock and per pump pNNNN.keys.json, "
                      "pNNNN.state.json, pNNNN.sock (default: a new directory in $TMPDIR, kept on exit); "
                      "the same DIR again restarts the same pumps, each from its state file")


def _new_pump(parser: Parser, args, clock: PumpClock, serial: str | None = None, where: str = "") -> Pump:
    """A new pump from the arguments and DEFAULTS; its serial: `serial`, else --serial, else a new one.
    `where` begins each refusal (a ward file's "FILE: pump N: ")."""
    values = {name: getattr(args, name) for name in DEFAULTS}
    for name, default in DEFAULTS.items():
        if values[name] is None:
            action = next(a for a in parser._actions if a.dest == name)
            values[name] = action.type(default) if callable(action.type) else default
    spec = MODELS_BY_NAME[values["model"]]
    if values["volume"] > spec.capacity_ul:
        parser.error(f"{where}--volume {values['volume']} uL exceeds the {spec.name} capacity of {spec.capacity_ul} uL")
    if values["low_alarm"] > spec.capacity_ul:
        parser.error(f"{where}--low-alarm {values['low_alarm']} uL exceeds the capacity of {spec.capacity_ul} uL")
    if not spec.min_flow_nl_per_day <= values["flow"] <= spec.max_flow_nl_per_day:
        parser.error(
            f"{where}--flow {values['flow']} nL/day is outside the {spec.name} range "
            f"{spec.min_flow_nl_per_day}..{spec.max_flow_nl_per_day} nL/day"
        )
    if values["concentration"] <= 0:
        parser.error(f"{where}--concentration must be positive")
    return Pump.new(
        model=values["model"],
        serial=serial or args.serial or new_serial(),
        drug=Drug[values["drug"].upper()],
        concentration_ng_per_ml=values["concentration"],
        reservoir_ul=values["volume"],
        flow_nl_per_day=values["flow"],
        low_reservoir_alarm_ul=values["low_alarm"],
        battery_seconds=values["battery_days"],
        start_time=clock.start,
        clock=clock,
        stall_recovery_s=values["stall_recovery"],
        catheter_mm=values["catheter_mm"],
    )


def _restore(args, log: logging.Logger) -> tuple[Pump, PumpClock]:
    pump, saved_at = store.load(args.state)
    ignored = [f"--{n.replace('_', '-')}" for n in PUMP_OPTIONS if getattr(args, n) is not None]
    if ignored:
        log.warning("restoring %s: ignoring %s", args.state, " ".join(ignored))
    # the pump kept running while the emulator was down; pump time is the clock plus the step
    # a clinician set (emulator/pump/clock_step.py)
    down = max(0.0, time.time() - saved_at)
    step = pump.clock_step.step_s
    clock = PumpClock(pump.time - step + int(down * args.time_scale), args.time_scale)
    pump.clock = clock
    pump.advance_to(clock.start + step)
    pump.power_on(restored=True)
    return pump, clock


def _run_ward(parser: Parser, args) -> int:
    if args.pumps is None and args.ward is None:
        parser.error("--ward-dir DIR needs --pumps N or --ward FILE")
    from .ward import PumpMaker, run_ward

    return run_ward(parser, args, PumpMaker(_new_pump, _restore, new_serial, PUMP_OPTIONS, MAX_WARD_PUMPS))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pumps is not None or args.ward is not None or args.ward_dir is not None:
        return _run_ward(parser, args)
    if not args.key_file:
        parser.error("--key-file FILE is required: the pump has no default keys "
                     "(a missing FILE is created with fresh random keys)")
    logging.basicConfig(stream=sys.stderr, format=f"{PROG}: %(message)s",
                        level=logging.DEBUG if args.verbose else logging.WARNING)
    log = logging.getLogger("emulator")

    picked = None  # the serial chosen here for a new pump given no --serial
    try:
        if args.state and os.path.exists(args.state):
            pump, clock = _restore(args, log)
        else:
            start = args.start_time if args.start_time is not None else int(time.time())
            clock = PumpClock(start, args.time_scale)
            picked = _pick_serial(args)
            pump = _new_pump(parser, args, clock, picked or args.serial)
        try:
            keys = keyfile.load_or_create(args.key_file, pump.serial)
        except keyfile.KeyFileError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        save = (lambda p: store.save(args.state, p)) if args.state else None
        if save:
            save(pump)  # the file exists (and is writable) before anyone connects
        server = Server(pump, clock, save, keys=keys, backoff_cap=args.auth_backoff_cap, baud=args.baud)
        if args.control:
            server.open_control(args.control)
        if args.listen:
            url = server.open_tcp(*args.listen)
        else:
            url = server.open_pty()
    except store.StateError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.request_stop())
    from protocol.codec import warm_up

    warm_up()  # a pump answers its first request as fast as its hundredth
    if picked is not None:  # said once it serves: a pump that cannot start says one line, its error
        print(f"{PROG}: no --serial given: this pump is {picked} (its key file {args.key_file} is for it)",
              file=sys.stderr, flush=True)
    print(url, flush=True)  # the ready line (see the docstring): last, once everything above is done
    log.info("serving %s %s on %s", pump.spec.name, pump.serial, url)
    try:
        server.serve()
    finally:
        server.close()
    log.info("stopped: %s", dict(server.stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
