"""`ith-emulator --pumps N` / `--ward FILE`: a ward of pumps served by this one process.

Each pump is what `ith-emulator` alone would be: its own Server (server.py) with its own pump,
clock, key file, state file, control socket and port, all on one Loop (ward_loop.py). Its
files are in the ward directory, by position: pNNNN.keys.json, pNNNN.state.json, pNNNN.sock
(NNNN from 0001). The same directory again restarts the same pumps, each from its state file.

The manifest (DIR/manifest.json, written atomically before its path is printed, as the first
and only line on stdout):

    {"format": "ith-ward-manifest", "version": 1, "pid": PID,
     "pumps": [{"serial", "url", "key_file", "control", "state", "model", "drug"}, ...]}

A ward that cannot start prints nothing on stdout, one line on stderr, and exits 1 (2: bad
arguments, a bad ward file or an unusable key file), as one pump does.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import keys as keyfile
from . import store
from .clock import PumpClock
from .pump import Pump, valid_serial
from .server import Server
from .ward_file import WardFileError, read
from .ward_loop import Loop

log = logging.getLogger("emulator")

MANIFEST_FORMAT = "ith-ward-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: descriptors a pump holds (pty master and slave, or a TCP listener; its control listener),
#: and room for the clients of each
FDS_PER_PUMP = 4
#: the options that are per pump in a ward: its files are in the ward directory
PER_PUMP_FILES = ("key_file", "state", "control")


@dataclass(frozen=True)
class PumpMaker:
    """emulator/__main__.py's own ways of making a pump, so that a ward's pump is built exactly as
    a lone one (the module cannot be imported back from here: it is __main__ under `python -m`)."""

    new_pump: Callable[..., Pump]  # (parser, args, clock, serial, where) -> a new pump
    restore: Callable[[argparse.Namespace, logging.Logger], tuple[Pump, PumpClock]]
    new_serial: Callable[[], str]
    #: the options a restored pump ignores (its state file has them)
    pump_options: tuple[str, ...]
    max_pumps: int


class WardError(Exception):
    """A ward cannot start: one line; `code` is the exit code (1, or 2 for what the user gave)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def run_ward(parser: argparse.ArgumentParser, args: argparse.Namespace, maker: PumpMaker) -> int:
    """Serve the ward until SIGTERM/SIGINT; the exit code."""
    prog = parser.prog
    logging.basicConfig(stream=sys.stderr, format=f"{prog}: %(message)s",
                        level=logging.DEBUG if args.verbose else logging.WARNING)
    pumps = _pump_options(parser, args, maker.max_pumps)
    taken: set[str] = set()  # serials given so far
    loop = Loop(isolate=True)
    directory = ""
    try:
        directory = _ward_dir(args.ward_dir)
        _raise_fd_limit(len(pumps))
        # every pump is built (or restored) and checked before the first file is written
        built = [_make_pump(parser, args, directory, i, options, maker, taken)
                 for i, options in enumerate(pumps)]
        _check_serials([pump.serial for pump, _, _, _ in built])
        _warn_restored(args, [restored for _, _, _, restored in built], maker)
        entries = [_serve_pump(args, loop, i, *pump) for i, pump in enumerate(built)]
        manifest = write_manifest(directory, entries)
    except (WardError, store.StateError, OSError, ValueError) as exc:
        loop.close()
        if args.ward_dir is None and directory:  # made up here, and of no use to anyone
            shutil.rmtree(directory, ignore_errors=True)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, WardError) else 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.request_stop())
    from protocol.codec import warm_up

    warm_up()
    print(manifest, flush=True)  # the ready line: last, once every pump serves
    log.info("serving a ward of %d pumps: %s", len(entries), manifest)
    try:
        loop.serve()
    finally:
        loop.close()
    return 0


def _pump_options(parser: argparse.ArgumentParser, args: argparse.Namespace, max_pumps: int) -> list[dict]:
    """One dict of option overrides per pump (argparse dest -> value); refusals exit 2."""
    for name in PER_PUMP_FILES:
        if getattr(args, name) is not None:
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} is per pump in a ward: each pump's is in the ward directory (--ward-dir)")
    if args.serial is not None and (args.ward is not None or args.pumps > 1):
        parser.error("--serial names one pump: a ward of more gets new unique serials "
                     "(or give each its own in the --ward file)")
    if args.ward is None:
        pumps: list[dict] = [{} for _ in range(args.pumps)]
    else:
        try:
            pumps = read(parser, args.ward, max_pumps)
        except WardFileError as exc:
            parser.error(str(exc))
    if args.listen is not None and args.listen[1] and args.listen[1] + len(pumps) - 1 > 65535:
        parser.error(f"--listen port {args.listen[1]} + {len(pumps)} pumps goes past 65535 (port 0: any free ones)")
    return pumps


def _ward_dir(given: str | None) -> str:
    directory = os.path.abspath(given) if given else tempfile.mkdtemp(prefix="ith-ward-")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise WardError(f"--ward-dir {directory}: cannot create it: {exc.strerror}") from None
    _lock(directory)
    longest = os.path.join(directory, "p0000.sock")
    if len(os.fsencode(longest)) > 100:  # a UNIX socket path must stay under ~104 bytes
        raise WardError(f"--ward-dir {directory} is too long a path for the pumps' control sockets "
                        "(keep it under 90 characters)", 2)
    return directory


def _lock(directory: str) -> None:
    """Hold DIR/ward.lock while this ward runs: a second ward on the same files would take over
    the first one's control sockets and write over its state files."""
    fd = os.open(os.path.join(directory, "ward.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WardError(f"--ward-dir {directory} is in use by another running ward") from None
    # kept open, never closed: the lock goes with this process


def _raise_fd_limit(count: int) -> None:
    """A ward of hundreds of pumps needs more descriptors than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 64 + FDS_PER_PUMP * count
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise WardError(f"{count} pumps need about {wanted} open files; this process may have {hard} "
                            "(raise ulimit -n)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _make_pump(parser: argparse.ArgumentParser, args: argparse.Namespace, directory: str, index: int,
               options: dict, maker: PumpMaker, taken: set[str]) -> tuple[Pump, PumpClock, argparse.Namespace, bool]:
    """Pump `index`, restored from its state file when it has one, else new (nothing written yet):
    (pump, clock, its own options with its files, whether it was restored)."""
    stem = os.path.join(directory, f"p{index + 1:04d}")
    pump_args = argparse.Namespace(**{**vars(args), **options, "key_file": stem + ".keys.json",
                                      "state": stem + ".state.json", "control": stem + ".sock"})
    restored = os.path.exists(pump_args.state)
    if restored:  # its options are ignored, said once for the ward (_warn_restored)
        quiet = argparse.Namespace(**{**vars(pump_args), **{n: None for n in maker.pump_options}})
        pump, clock = maker.restore(quiet, log)
    else:
        start = args.start_time if args.start_time is not None else int(time.time())
        clock = PumpClock(start, args.time_scale)
        serial = pump_args.serial or _known_serial(pump_args.key_file) or _unique_serial(taken, maker)
        where = f"--ward {args.ward}: pump {index + 1}: " if args.ward else ""
        pump = maker.new_pump(parser, pump_args, clock, serial, where)
    taken.add(pump.serial)
    return pump, clock, pump_args, restored


def _serve_pump(args: argparse.Namespace, loop: Loop, index: int, pump: Pump, clock: PumpClock,
                pump_args: argparse.Namespace, restored: bool) -> dict:
    """Pump `index` serving on the loop: its key file (created if missing), its state saved, its
    control socket and port open. Its manifest entry."""
    try:
        keys = keyfile.load_or_create(pump_args.key_file, pump.serial)
    except keyfile.KeyFileError as exc:
        raise WardError(f"pump {index + 1}: {exc}", 2) from None

    def save(p: Pump, path: str = pump_args.state) -> None:
        store.save(path, p)

    try:
        save(pump)
        server = Server(pump, clock, save, keys=keys, backoff_cap=args.auth_backoff_cap, baud=args.baud, loop=loop)
        server.open_control(pump_args.control)
        if args.listen is not None:
            host, port = args.listen
            url = server.open_tcp(host, port + index if port else 0)
        else:
            url = server.open_pty()
    except OSError as exc:  # which pump, and its port or file
        raise WardError(f"pump {index + 1} ({pump.serial}): {exc}") from None
    return {"serial": pump.serial, "url": url, "key_file": pump_args.key_file, "control": pump_args.control,
            "state": pump_args.state, "model": pump.spec.name, "drug": pump.drug.name.lower()}


def _known_serial(key_file: str) -> str | None:
    found = keyfile.serial_in(key_file)
    return found if found is not None and valid_serial(found) else None


def _unique_serial(taken: set[str], maker: PumpMaker) -> str:
    """A new serial no pump of this ward has (40 random bits: a repeat is all but impossible)."""
    serial = maker.new_serial()
    while serial in taken:
        serial = maker.new_serial()
    return serial


def _warn_restored(args: argparse.Namespace, flags: list[bool], maker: PumpMaker) -> None:
    """Once for the ward, not once a pump: restored pumps keep what their state files say."""
    restored = sum(flags)
    given = [f"--{n.replace('_', '-')}" for n in maker.pump_options if getattr(args, n) is not None]
    if args.ward:
        given.insert(0, "ward file entries")
    if restored and given:
        log.warning("%d of %d pumps restored from their state files: ignoring %s", restored, len(flags),
                    " and ".join(given))


def _check_serials(serials: list[str]) -> None:
    seen: dict[str, int] = {}
    for number, serial in enumerate(serials, 1):
        if serial in seen:
            raise WardError(f"pumps {seen[serial]} and {number} are both {serial!r} "
                            "(their state or key files say so): a ward's serials must differ", 2)
        seen[serial] = number


def write_manifest(directory: str, entries: list[dict]) -> str:
    """DIR/manifest.json, atomically (a temporary file renamed over it): its path."""
    path = os.path.join(directory, MANIFEST_NAME)
    data = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "pid": os.getpid(), "pumps": entries}
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path
