"""Click's usage errors in ithcli's one error shape: a one-line message, at most one hint.

Click shows a usage error as a usage block, a "Try ... for help." line and "Error: ...";
ithcli shows every failure as `ithcli: error: MESSAGE` (and, with --json, the error
object), so a usage error becomes one message, with "did you mean" for a misspelt
command or option at every level (the global options count after a command: they are
accepted there), and one hint naming the help to read. cli.main() prints them.
"""
from __future__ import annotations

import difflib

import click

#: how close a name must be to be suggested (difflib's ratio), and how far behind the
#: closest another may be and still be named: "--dosee" suggests --dose, not --mode too
CLOSE_ENOUGH = 0.6
ALSO_CLOSE = 0.05


def suggestions(word: str, candidates: list[str]) -> list[str]:
    """The candidates closest to a misspelt word, best first (none when nothing is close).
    Options are compared without their dashes: "--" alone makes any two look alike."""
    def ratio(candidate: str) -> float:
        return difflib.SequenceMatcher(None, word.lstrip("-"), candidate.lstrip("-")).ratio()

    scored = sorted(((ratio(c), c) for c in set(candidates)), key=lambda sc: (-sc[0], sc[1]))
    if not scored or scored[0][0] < CLOSE_ENOUGH:
        return []
    best = scored[0][0]
    return [c for score, c in scored if score >= max(CLOSE_ENOUGH, best - ALSO_CLOSE)][:3]


def did_you_mean(word: str, candidates: list[str]) -> str:
    """" (did you mean 'x'?)", or "" when nothing is close."""
    close = suggestions(word, candidates)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


def describe(exc: click.UsageError, root: click.Group, path: list[str], prog: str = "ithcli") -> tuple[str, str]:
    """(message, hint) for a Click usage error. `path` names the commands on the command line
    (for errors Click raises without a context: which command's help to point at)."""
    ctx = exc.ctx
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) or (
            ctx is not None and exc.message == "Missing command."):
        message = _missing_command(ctx)
    elif isinstance(exc, click.exceptions.NoSuchCommand):
        names = ctx.command.list_commands(ctx) if ctx is not None and isinstance(ctx.command, click.Group) else []
        message = f"no such command {exc.command_name!r}" + did_you_mean(exc.command_name, names)
    elif isinstance(exc, click.exceptions.NoSuchOption):
        message = f"no such option {exc.option_name!r}" + did_you_mean(exc.option_name,
                                                                      _option_names(ctx, root))
    else:
        message = _sentence(exc.format_message())
    command_path = ctx.command_path if ctx is not None else " ".join([prog, *path])
    return message, f"try '{command_path} --help'"


def _missing_command(ctx: click.Context | None) -> str:
    group = ctx.command if ctx is not None else None
    if ctx is None or not isinstance(group, click.Group) or ctx.parent is None:
        return "missing command"
    names = group.list_commands(ctx)
    return f"missing command: {ctx.command_path} needs one of {', '.join(names)}"


def _option_names(ctx: click.Context | None, root: click.Group) -> list[str]:
    """What a misspelt option may have meant: the command's own options, and the global
    options when it is a command below the root (they are accepted after it too)."""
    if ctx is None:
        return []
    names = list(ctx.help_option_names)
    commands = [ctx.command] if ctx.command is root else [ctx.command, root]
    for command in commands:
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                names.extend([*param.opts, *param.secondary_opts])
    return [n for n in names if n.startswith("--")]


def _sentence(text: str) -> str:
    """Click's "Missing option '--serial'." as ithcli says things: one line, lower case first,
    no full stop."""
    text = " ".join(text.split())
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text[:-1] if text.endswith(".") else text
