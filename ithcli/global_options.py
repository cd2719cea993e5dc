"""Global options anywhere: `ithcli interrogate --json` reads as `ithcli --json interrogate`.

The root group's options (--port, --json, --timeout, -v...) are parsed once, by the root,
before any command runs: the App is built from them. A person types them where habit puts
them, after the command too, so before Click parses, every global option found after the
command (with its value) is moved in front of it. The command line is read the way Click
will read it: each command's own options keep their values (`--initials --json` gives
--initials the value "--json", as Click would), nothing after `--` moves, and an option
a command declares itself is that command's, even when a global option has its name
(tests/test_cli_conventions.py checks that no command shadows a global one today).

Only click is imported here: this runs on every start-up, `--help` included.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import click


@dataclass
class Hoisted:
    """A command line with its global options in front of the command."""

    args: list[str]
    #: the commands named on it, outermost first: ["mri", "checklist"]
    path: list[str] = field(default_factory=list)
    #: a global option that ends the line still waiting for its value (dropped from args)
    dangling: str | None = None
    #: the global options given (as options, not as another option's value), by name
    given: set[str] = field(default_factory=set)


def arities(command: click.Command, help_names: list[str]) -> dict[str, int]:
    """Every option name of a command -> how many values follow it (0: a flag or a count)."""
    table = {name: 0 for name in help_names}
    for param in command.params:
        if isinstance(param, click.Option):
            takes = 0 if param.is_flag or param.count else param.nargs
            for name in (*param.opts, *param.secondary_opts):
                table[name] = takes
    return table


def global_arities(root: click.Command, help_names: list[str]) -> dict[str, int]:
    """The global options (the root's, its help aside: every command has its own)."""
    return {name: n for name, n in arities(root, []).items() if name not in help_names}


def _is_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and token != "--"


def _names(token: str) -> list[str]:
    """The option names a token gives: --port=X -> [--port]; -vv -> [-v, -v]."""
    if token.startswith("--"):
        return [token.partition("=")[0]]
    return [f"-{ch}" for ch in token[1:]]


def hoist(root: click.Group, ctx: click.Context, args: list[str]) -> Hoisted:
    """args with every global option given after the command moved in front of it. Never
    raises: what is wrong with the line is Click's to say when it parses the result."""
    help_names = list(ctx.help_option_names)
    globals_ = global_arities(root, help_names)
    out = Hoisted(args=list(args))
    given = out.given
    i = 0
    # the root's own options, before the command: left as they are (their values skipped)
    while i < len(args) and _is_option(args[i]):
        token = args[i]
        name = token.partition("=")[0]
        takes = 0 if "=" in token else globals_.get(name, 0)
        if not token.startswith("--"):
            takes = _short_cluster_values(token, globals_)
        given.update(n for n in _names(token) if n in globals_)
        i += 1 + takes
    if i >= len(args) or args[i] == "--":
        return out
    front, moved, rest = list(args[:i]), [], []
    group: click.Command | None = root
    own: dict[str, int] = {}
    while i < len(args):
        token = args[i]
        if token == "--":  # everything after it is an argument, as given
            rest.extend(args[i:])
            break
        if not _is_option(token):
            if isinstance(group, click.Group):  # the next command's name
                command = group.get_command(ctx, token)
                out.path.append(token)
                # an unknown command: nothing is known of its options (Click will say it is unknown)
                own = arities(command, help_names) if command is not None else {}
                group = command if isinstance(command, click.Group) else None
            rest.append(token)
            i += 1
            continue
        kept, lifted, values, takes_from = _split(token, own, globals_)
        if kept:
            rest.append(kept)
        if lifted:
            moved.append(lifted)
            given.update(n for n in _names(lifted) if n in globals_)
        following = args[i + 1:i + 1 + values]
        if values and len(following) < values and lifted and takes_from == "global":
            out.dangling = _names(lifted)[-1]  # `ithcli interrogate --port`: no value to move
            moved.pop()
            break
        (moved if takes_from == "global" else rest).extend(following)
        i += 1 + values
    out.args = front + moved + rest
    return out


def _short_cluster_values(token: str, table: dict[str, int]) -> int:
    """How many following tokens a short-option cluster (-vj 4) takes: those of its first
    option that takes values, unless the value is attached (-j4)."""
    for at, ch in enumerate(token[1:], start=2):
        takes = table.get(f"-{ch}", 0)
        if takes:
            return takes if at == len(token) else 0
    return 0


def _split(token: str, own: dict[str, int], globals_: dict[str, int]) -> tuple[str, str, int, str]:
    """One option token after the command -> (what stays, what moves in front, how many
    following tokens are values, whose values they are: "own" or "global")."""
    if token.startswith("--"):
        name, eq, _ = token.partition("=")
        if name in own:
            return token, "", 0 if eq else own[name], "own"
        if name in globals_:
            return "", token, 0 if eq else globals_[name], "global"
        return token, "", 0, "own"  # unknown: Click names it (and what it may have meant)
    # a cluster of short options (-yv): the command's stay, the global ones move
    kept, lifted = "", ""
    for at, ch in enumerate(token[1:], start=2):
        opt = f"-{ch}"
        table, whose = (own, "own") if opt in own else (globals_, "global") if opt in globals_ else (None, "own")
        if table is None:  # unknown: left with the rest of the cluster for Click to name
            kept += token[at - 1:]
            break
        attached = token[at:]
        if whose == "own":
            kept += ch
        else:
            lifted += ch
        if table[opt]:  # takes values: the rest of the cluster is its value, else the next tokens
            if whose == "own":
                kept += attached
            else:
                lifted += attached
            return (f"-{kept}" if kept else "", f"-{lifted}" if lifted else "",
                    0 if attached else table[opt], whose)
    return f"-{kept}" if kept else "", f"-{lifted}" if lifted else "", 0, "own"
