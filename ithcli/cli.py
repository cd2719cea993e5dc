"""The root command: global options, command wiring, and the one place errors become exit codes.

Imports stay light: click only. Commands import construct, serial and rich
inside their bodies, so `ithcli --help` costs about what a bare Click app does.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

from .errors import ExitCode, IthcliError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: every command: name -> (module under ithcli.commands, attribute, one-line help for --help).
#: Modules are imported only when their command runs, so --help stays as cheap as a
#: bare Click app; tests/test_cli_errors.py checks each line equals the command's own.
COMMANDS = {
    "interrogate": ("interrogate", "interrogate", "Read the pump's full status: identity, therapy,..."),
    "monitor": ("monitor", "monitor", 'Poll the pump and show it live: reservoir, rate and...'),
    "forecast": ("forecast", "forecast", 'Project the reservoir volume day by day, down to the...'),
    "log": ("log", "log", "Read and decode the pump's event log (alarms,..."),
    "report": ("report", "report", "Who, what and when for one pump's session: identity,..."),
    "program": ("program", "program", 'Change what the pump delivers: PREPARE, check the...'),
    "refill": ("refill", "refill", 'Refill the reservoir: keeps the daily dose (the flow...'),
    "bolus": ("bolus", "bolus", 'Deliver a clinician bolus on top of the program...'),
    "catheter": ("catheter", "catheter", 'Catheter record: implant, revision (each arms...'),
    "empty": ("empty", "empty", 'Record an emptied reservoir: volume 0 and delivery...'),
    "mri": ("mri", "mri", 'MRI: checklist before the scan, MRI-safe mode,...'),
    "clock": ("clock", "clock", "The pump's clock: show it against this computer's,..."),
    "ptm": ("ptm", "ptm", 'Patient-activated boluses: show the limits and use,...'),
    "patient": ("patient", "patient", "The patient on the pump: ID, initials, birth date,..."),
    "reconcile": ("reconcile", "reconcile", 'Learn from the pump whether an unconfirmed write was...'),
    "batch": ("batch", "batch", 'Run a plan (TOML) of steps across many pumps:...'),
    "verify": ("verify", "verify", "Verify another clinician's change as its independent..."),
    "credential": ("credential", "credential", 'Your clinician credential: a key only you hold, that...'),
    "keys": ("keys", "keys", 'Per-pump keys: one reader and one clinician key per...'),
    "audit": ("audit", "audit", 'The local audit log of every command sent and every...'),
    "ports": ("ports", "ports", 'List serial ports (USB adapters, on-board UARTs)...'),
}


class LazyGroup(click.Group):
    """Commands load on first use; --help lists them from COMMANDS without importing."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib

        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"ithcli.commands.{module}"), attr)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--port", envvar="ITHCLI_PORT", metavar="URL",
    help="pyserial URL of the pump: a device path (/dev/ttyUSB0), socket://HOST:PORT, "
    "loop://, or 'emulator' to start a private emulated pump. [env: ITHCLI_PORT]",
)
@click.option(
    "--timeout", envvar="ITHCLI_TIMEOUT", type=click.FloatRange(0.05, 60), default=2.0,
    show_default=True, help="Seconds to wait for each reply. [env: ITHCLI_TIMEOUT]",
)
@click.option(
    "--json", "as_json", is_flag=True, envvar="ITHCLI_JSON",
    help="Print one JSON object on stdout instead of tables (errors too). [env: ITHCLI_JSON]",
)
@click.option(
    "--drug-library", envvar="ITHCLI_DRUG_LIBRARY", metavar="FILE",
    help="A clinic's drug library (TOML) instead of the built-in one. [env: ITHCLI_DRUG_LIBRARY]",
)
@click.option(
    "--operator", envvar="ITHCLI_OPERATOR", metavar="NAME",
    help="Who is operating, recorded in the audit log with every command. [env: ITHCLI_OPERATOR]",
)
@click.option(
    "--audit-log", envvar="ITHCLI_AUDIT_LOG", metavar="FILE",
    help="The hash-chained audit log (default: STATE_DIR/audit.jsonl). [env: ITHCLI_AUDIT_LOG]",
)
@click.option(
    "--state-dir", envvar="ITHCLI_STATE_DIR", metavar="DIR",
    help="Where ithcli keeps its journal of unconfirmed writes (default: "
    "$XDG_STATE_HOME/ithcli or ~/.local/state/ithcli). [env: ITHCLI_STATE_DIR]",
)
@click.option(
    "--key-store", envvar="ITHCLI_KEY_STORE", metavar="DIR",
    help="Directory of per-pump keys (default: $XDG_CONFIG_HOME/ithcli/keys or "
    "~/.config/ithcli/keys). [env: ITHCLI_KEY_STORE]",
)
@click.option(
    "--clinic-policy", envvar="ITHCLI_CLINIC_POLICY", metavar="FILE",
    help="The clinic's policy (TOML): its clinicians' public keys and which writes need an independent "
    "second verifier. [env: ITHCLI_CLINIC_POLICY]",
)
@click.option(
    "--credential", envvar="ITHCLI_CREDENTIAL", metavar="FILE",
    help="Your own clinician credential (`ithcli credential new`): signs double-check requests and "
    "verifications. [env: ITHCLI_CREDENTIAL]",
)
@click.option(
    "--expect-serial", envvar="ITHCLI_EXPECT_SERIAL", metavar="SERIAL",
    help="The pump you mean: refuse, before anything is sent, when another pump answers on the port. "
    "[env: ITHCLI_EXPECT_SERIAL]",
)
@click.option(
    "--tz", envvar="ITHCLI_TZ", metavar="ZONE",
    help="Time zone for times shown to people (IANA name such as Europe/Paris, or UTC); default: this "
    "computer's local zone. JSON always carries ISO 8601 with the offset. [env: ITHCLI_TZ]",
)
@click.option("-v", "--verbose", count=True, help="Diagnostics on stderr; -vv adds frame hex dumps.")
@click.version_option(package_name="ithcli")
@click.pass_context
def cli(ctx: click.Context, port, timeout, as_json, drug_library, operator, audit_log, state_dir, key_store,
        clinic_policy, credential, expect_serial, tz, verbose):
    """Interrogate and program implanted intrathecal drug pumps.

    NOT A CLEARED MEDICAL DEVICE: for development, training and testing with the
    built-in emulator. Never use it to treat a patient.
    """
    from .app import App, Settings

    # registered before App.close: it runs after it (last in, first out), so closing still logs
    ctx.call_on_close(_diagnostics_on_stderr(verbose))
    ctx.obj = App(Settings(port=port, timeout=timeout, json=as_json, verbose=verbose,
                           drug_library_path=drug_library, operator=operator or _default_operator(),
                           audit_path=audit_log, state_dir=state_dir, key_store_dir=key_store,
                           clinic_policy_path=clinic_policy, credential_path=credential,
                           ask_passphrase=_ask_passphrase, expect_serial=expect_serial, tz=tz))
    ctx.call_on_close(ctx.obj.close)


def _diagnostics_on_stderr(verbose: int) -> Callable[[], None]:
    """Show ithcli's diagnostics (every logger under "ithcli") on stderr as `ithcli: message`
    lines, never on stdout: warnings always, -v adds info, -vv debug (app.log_level). Returns
    what undoes it, run when the command ends (an ithcli run in-process leaves logging as it was)."""
    import logging

    from .app import log_level
    from .output import DIAGNOSTIC_FORMAT, StderrHandler

    logger = logging.getLogger("ithcli")
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter(DIAGNOSTIC_FORMAT))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(log_level(verbose))
    logger.propagate = False  # shown once, here: not again by a handler on the root logger

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    return undo


def _ask_passphrase(path: str) -> bytes:
    """A credential's passphrase, typed by its owner at the terminal (never from a file or the environment)."""
    from .errors import AuthError

    if not sys.stdin.isatty():
        raise AuthError(f"credential {path} is protected by a passphrase: run at a terminal to type it")
    return click.prompt(f"Passphrase for {path}", hide_input=True, err=True).encode()


def _default_operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container: still audit, as unknown
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every failure to one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args or os.environ.get("ITHCLI_JSON", "").lower() in ("1", "true", "yes")
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    try:
        # make_context + invoke rather than cli.main(): Click's main turns a closed stdout
        # into a silent exit 1 (our "internal error"); here it is reported as what it is
        with cli.make_context("ithcli", list(args)) as ctx:
            cli.invoke(ctx)
        sys.exit(ExitCode.OK)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, EOFError):
        _fail(ExitCode.INTERRUPTED, "interrupted", "interrupted", as_json)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except IthcliError as exc:
        _fail(exc.exit_code, exc.kind, exc.message, as_json, exc.details, one_line=exc.json_line)
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, "interrupted", "interrupted", as_json)
    except BrokenPipeError:
        _output_closed()
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(ExitCode.INTERNAL, "internal",
              f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", as_json)


def _output_closed() -> None:
    """stdout's reader went away (`ithcli ... | head -3`). Whatever the command did is done
    and in the audit log; only its report was lost. Exit 141 as a shell reports a SIGPIPE."""
    # point stdout at /dev/null so the interpreter's last flush cannot fail again (exit 120)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    try:
        print("ithcli: error: standard output was closed before the report was written "
              "(the audit log has what was done)", file=sys.stderr, flush=True)
    except OSError:
        pass
    sys.exit(ExitCode.OUTPUT_CLOSED)


def _fail(code: int, kind: str, message: str, as_json: bool, details: dict | None = None,
          one_line: bool = False) -> None:
    print(f"ithcli: error: {message}", file=sys.stderr, flush=True)
    if as_json:
        from .output import print_json, print_json_line

        # a JSON-lines stream (monitor) ends with its error object on one line too
        (print_json_line if one_line else print_json)(
            {"error": {"kind": kind, "message": message, "exit_code": int(code)}, **(details or {})})
    sys.exit(int(code))
