"""The root command: global options, command wiring, and the one place errors become exit codes.

Imports stay light: click only. Commands import construct, serial and rich
inside their bodies, so `ithcli --help` costs about what a bare Click app does.
"""
from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable

import click

from .errors import ExitCode, IthcliError
from .global_options import Hoisted, arities, hoist

HELP_NAMES = ["-h", "--help"]
CONTEXT_SETTINGS = {"help_option_names": HELP_NAMES, "max_content_width": 100}

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
    "completion": ("completion", "completion", 'Print the shell completion script for bash, zsh or...'),
}


class LazyGroup(click.Group):
    """Commands load on first use; --help and completion list them from COMMANDS without
    importing. The global options are accepted after the command too (global_options.py)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib

        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(f"ithcli.commands.{module}"), attr)
        _say_globals_accepted(self, command, list(ctx.help_option_names))
        return command

    def parse_args(self, ctx, args):
        hoisted = hoist(self, ctx, args)
        if hoisted.dangling and not ctx.resilient_parsing:  # completion asks about it instead
            raise click.BadOptionUsage(hoisted.dangling, f"Option '{hoisted.dangling}' requires an argument.",
                                       ctx=ctx)
        return super().parse_args(ctx, hoisted.args)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])

    def shell_complete(self, ctx, incomplete):
        from click.shell_completion import CompletionItem

        commands = [CompletionItem(name, help=short) for name, (_, _, short) in COMMANDS.items()
                    if name.startswith(incomplete)]
        return commands + click.Command.shell_complete(self, ctx, incomplete)


def _say_globals_accepted(root: click.Group, command: click.Command, help_names: list[str]) -> None:
    """End the help of a command (and of each command under it) with the global options it
    accepts too: every one it does not declare itself. Once per command object."""
    if getattr(command, "_ithcli_globals_note", False):
        return
    command._ithcli_globals_note = True  # type: ignore[attr-defined]
    own = arities(command, help_names)
    names = [max(p.opts, key=len) for p in root.params if isinstance(p, click.Option) and not p.hidden
             and "--version" not in p.opts and not set(p.opts + p.secondary_opts) & set(own)]
    text = f"Global options ('ithcli --help') work here too, before or after the command: {', '.join(names)}."
    # "\b": kept as wrapped here, never between the two halves of an option's name
    note = "\b\n" + "\n".join(textwrap.wrap(text, 78, break_on_hyphens=False))
    command.epilog = f"{command.epilog}\n\n{note}" if command.epilog else note
    for sub in getattr(command, "commands", {}).values():
        _say_globals_accepted(root, sub, help_names)


def _stored_serials(ctx, param, incomplete):
    """--expect-serial completes to the serial numbers in the key store."""
    from .commands.completion import stored_serials

    return stored_serials(ctx, param, incomplete)


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
    "--expect-serial", envvar="ITHCLI_EXPECT_SERIAL", metavar="SERIAL", shell_complete=_stored_serials,
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

    The options below go before or after the command: `ithcli interrogate --json`.
    Shell completion: `ithcli completion --help`.
    """
    from .app import Settings
    from .closed_output import ReportingApp

    # registered before App.close: it runs after it (last in, first out), so closing still logs
    ctx.call_on_close(_diagnostics_on_stderr(verbose))
    ctx.obj = ReportingApp(Settings(port=port, timeout=timeout, json=as_json, verbose=verbose,
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
    if os.environ.get(COMPLETE_VAR):  # the shell asking for completions (ithcli completion SHELL)
        from .commands.completion import complete

        try:
            sys.exit(complete(cli, os.environ[COMPLETE_VAR]))
        except Exception as exc:  # a bug: one line, never a traceback in the middle of what is typed
            print(f"ithcli: error: completion failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(ExitCode.INTERNAL)
    line = _read_line(args)
    as_json = "--json" in line.given or os.environ.get("ITHCLI_JSON", "").strip().lower() in _TRUE
    verbose = bool({"-v", "--verbose"} & line.given)
    ctx: click.Context | None = None
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
    except click.UsageError as exc:
        from .usage_errors import describe

        message, hint = describe(exc, cli, line.path)
        _fail(ExitCode.USAGE, "usage", message, as_json, hint=hint)
    except click.ClickException as exc:  # not raised by ithcli's commands; still a one-liner
        from .usage_errors import describe

        _fail(ExitCode.USAGE, "usage", describe(click.UsageError(exc.format_message()), cli, line.path)[0],
              as_json)
    except IthcliError as exc:
        _fail(exc.exit_code, exc.kind, exc.message, as_json, exc.details, one_line=exc.json_line)
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, "interrupted", "interrupted", as_json)
    except BrokenPipeError:
        from .closed_output import output_closed

        output_closed(ctx.obj if ctx is not None else None, line.path)
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(ExitCode.INTERNAL, "internal",
              f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", as_json)


#: set by the completion script when the shell asks what completes (commands/completion.py)
COMPLETE_VAR = "_ITHCLI_COMPLETE"
#: what Click reads as true in a flag's environment variable (ITHCLI_JSON=1, yes, on...)
_TRUE = ("1", "true", "t", "yes", "y", "on")


def _read_line(args: list[str]) -> Hoisted:
    """The command line as the root will read it: which global options it gives (wherever they
    stand) and which command it names, for the failures that come before or during parsing."""
    try:
        return hoist(cli, click.Context(cli, info_name="ithcli", help_option_names=HELP_NAMES), list(args))
    except Exception:  # a command that cannot even be imported: the run itself reports it
        return Hoisted(list(args), given={a for a in args if a in ("--json", "-v", "--verbose")})


def _fail(code: int, kind: str, message: str, as_json: bool, details: dict | None = None,
          one_line: bool = False, hint: str | None = None) -> None:
    """The one shape of every failure: `ithcli: error: MESSAGE` on stderr (a usage error adds
    one hint line), and with --json the error object on stdout; then the exit code. A closed
    stdout loses only the object: the line on stderr and the code stay."""
    print(f"ithcli: error: {message}", file=sys.stderr, flush=True)
    if hint:
        print(f"ithcli: hint: {hint}", file=sys.stderr, flush=True)
    if as_json:
        from .output import print_json, print_json_line

        try:
            # a JSON-lines stream (monitor) ends with its error object on one line too
            (print_json_line if one_line else print_json)(
                {"error": {"kind": kind, "message": message, "exit_code": int(code)}, **(details or {})})
        except BrokenPipeError:
            from .closed_output import stdout_to_devnull

            stdout_to_devnull()
    sys.exit(int(code))
