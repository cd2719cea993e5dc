"""`ithcli completion bash|zsh|fish`: the shell completion script, and the completions it asks for.

Click's shell completion, with what ithcli adds to it: the global options complete after
a command as they are accepted there (ithcli/global_options.py), drug names from the drug
library for an option that takes a drug, and the serial numbers in the key store for one
that takes a pump's serial. The shell runs `ithcli` with _ITHCLI_COMPLETE set for every
TAB; cli.main() hands that to complete() before anything else runs. Listing the commands
imports none of them (COMMANDS in cli.py); completing a command's options imports it.
"""
from __future__ import annotations

import os

import click
from click.shell_completion import BashComplete, CompletionItem, FishComplete, ShellComplete, ZshComplete

from ..cli import COMPLETE_VAR
from ..global_options import global_arities, hoist

PROG = "ithcli"


class _GlobalsAfterCommands(ShellComplete):
    """Click's completion, reading the command line as ithcli does: a global option after a
    command completes (its name, and its value) as it would before it."""

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        root = self.cli
        assert isinstance(root, click.Group)  # ithcli's root is a group of commands
        ctx = click.Context(root, info_name=self.prog_name,
                            help_option_names=root.context_settings.get("help_option_names"))
        hoisted = hoist(root, ctx, args)
        globals_ = global_arities(root, list(ctx.help_option_names))
        name, value = _global_value_asked(args, incomplete, hoisted.dangling, globals_)
        if name is not None and hoisted.path:
            option = next(p for p in root.params if isinstance(p, click.Option) and name in p.opts + p.secondary_opts)
            with root.make_context(self.prog_name, hoisted.args, resilient_parsing=True) as root_ctx:
                return option.shell_complete(root_ctx, value)
        items = super().get_completions(args, incomplete)
        if hoisted.path and incomplete.startswith("-") and "--" not in args:
            offered = {item.value for item in items}
            for param in root.params:
                if not isinstance(param, click.Option) or param.hidden:
                    continue
                names = [n for n in (*param.opts, *param.secondary_opts) if n.startswith(incomplete)
                         and n in globals_ and n not in offered and n != "--version"]
                if not param.multiple and not param.count and set(names) & hoisted.given:
                    continue  # given already (a count, -v, may be given again)
                items.extend(CompletionItem(n, help=param.help) for n in names)
        return items


def _global_value_asked(args: list[str], incomplete: str, dangling: str | None,
                        globals_: dict[str, int]) -> tuple[str | None, str]:
    """(the global option whose value is being typed after a command, what is typed of it), or
    (None, incomplete): `... interrogate --expect-serial EM`, `--expect-serial=EM`, bash's `= EM`."""
    if incomplete.startswith("--") and "=" in incomplete:
        name, _, value = incomplete.partition("=")
        return (name, value) if globals_.get(name) else (None, incomplete)
    if len(args) >= 2 and args[-1] == "=" and globals_.get(args[-2]):
        return args[-2], incomplete
    return dangling, incomplete


class Bash(_GlobalsAfterCommands, BashComplete):
    pass


class Zsh(_GlobalsAfterCommands, ZshComplete):
    pass


class Fish(_GlobalsAfterCommands, FishComplete):
    pass


SHELLS: dict[str, type[ShellComplete]] = {"bash": Bash, "zsh": Zsh, "fish": Fish}


def complete(root: click.Command, instruction: str) -> int:
    """Answer the shell (_ITHCLI_COMPLETE=SHELL_complete, or SHELL_source for the script): the
    exit status. Completion prints nothing but its answer: a failure is an empty answer."""
    shell, _, action = instruction.partition("_")
    cls = SHELLS.get(shell)
    if cls is None or action not in ("complete", "source"):
        return 1
    comp = cls(root, {}, PROG, COMPLETE_VAR)
    text = comp.source() if action == "source" else comp.complete() + "\n"
    click.echo(text.encode(), nl=False)
    return 0


@click.command()
@click.argument("shell", metavar="SHELL", type=click.Choice(sorted(SHELLS)))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    It completes commands, options (the global ones after a command too), drug names,
    and the pump serial numbers in the key store. Install it once:

    \b
      bash:  echo 'eval "$(ithcli completion bash)"' >> ~/.bashrc
      zsh:   echo 'eval "$(ithcli completion zsh)"' >> ~/.zshrc
      fish:  ithcli completion fish > ~/.config/fish/completions/ithcli.fish
    """
    root = ctx.find_root().command
    click.echo(SHELLS[shell](root, {}, PROG, COMPLETE_VAR).source().encode(), nl=False)


# --- what an option's value completes to -------------------------------------------------

def _root_param(ctx: click.Context, name: str, envvar: str) -> str | None:
    """A global option's value as given on the line being completed (or its environment variable)."""
    value = ctx.find_root().params.get(name)
    return value if isinstance(value, str) and value else os.environ.get(envvar) or None


def drug_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The drugs of the drug library in use (--drug-library, else the built-in one)."""
    from .. import druglib

    try:
        library = druglib.load(_root_param(ctx, "drug_library", "ITHCLI_DRUG_LIBRARY"))
    except Exception:  # a broken library completes to nothing; running the command says why
        return []
    return [CompletionItem(e.name, help=f"{e.dose_unit}") for e in library.drugs.values()
            if e.name.startswith(incomplete.lower())]


def stored_serials(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The pumps whose keys the key store holds (--key-store, else the default store)."""
    from ..keystore import KeyStore, read_key_file

    store = KeyStore(_root_param(ctx, "key_store", "ITHCLI_KEY_STORE"))
    serials: dict[str, list[str]] = {}
    for path in sorted(store.dir.glob("*.json")) if store.dir.is_dir() else []:
        try:
            data = read_key_file(path)
        except Exception:  # an unreadable or unsafe key file completes to nothing; using it says why
            continue
        serials.setdefault(data["serial"], []).extend(data["keys"])
    return [CompletionItem(s, help=", ".join(sorted(set(roles)))) for s, roles in sorted(serials.items())
            if s.startswith(incomplete)]
