"""Every command example in README.md runs, against real emulators, and ends as the README says.

Which lines are examples (the rule README.md states in "Tests and CI"):

- in a ```sh block, every command that starts with `ithcli ` (a line ending in `\\` goes on
  on the next; `a && b` is two commands). It must exit 0, or the code a `# exits N` comment on
  its line gives. The block's `ith-emulator` lines are started as written: the URL their
  comment says they print ("prints e.g. /dev/pts/7") stands for the one they printed in the
  examples that follow;
- in the text and the tables, every inline code span that starts with `ithcli `, names
  something after its command (an option or an argument) and holds no placeholder: `[`, `|`,
  `...`, or a word in capitals that stands for a value (FILE, PLAN, SERIAL, ME.pem, ...; a
  catheter model or a soft limit's name is a value itself). It must exit 0.

A span with a placeholder is a synopsis, and a span naming only a command refers to its
section: neither runs, but its command must exist and every option it names must be in that
command's --help.

Where they run: the quick start's with its own `--port emulator`; the others against the
baclofen pump "Running an emulated pump" starts, in README order, as if ITHCLI_PORT named it
(the command reference says so), but for the section `ithcli ptm`, whose examples are for a
morphine pump (the emulator's default drug), as that section says. A person answers the
confirmation prompt: a command that takes --yes is given it. Between two examples an hour
passes on the pump (its test-only control socket), as between a person's commands: a bolus
given has finished before the next write.

Runtime: each example is one `ithcli` process in the README's working directory (its
relative file names: pump-keys.json); the synopses are checked in process, without running.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from cli_harness import cli_env, console_script

from ithcli import emulator_process
from ithcli.limits import OVERRIDE_NAMES
from protocol.constants import CatheterModel

README = Path(__file__).resolve().parent.parent / "README.md"
HOUR = 3600
#: a word in capitals standing for a value (FILE, PLAN, SERIAL, T/M, YYYY-MM-DD, ME.pem...)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_/-]*(\.[A-Za-z.]+)?$")
#: words in capitals that are values the CLI takes, not placeholders
VALUES = {m.name for m in CatheterModel} | set(OVERRIDE_NAMES)
#: the README sections whose examples run on another pump than the README's baclofen one
MORPHINE_SECTIONS = ("`ithcli ptm`",)
MORPHINE_PUMP = ["--pty", "--serial", "MORPHINE-README", "--key-file", "morphine-keys.json"]


@dataclass
class Example:
    line: int  # in README.md, 1-based
    section: str  # the heading it is under
    text: str  # as written (a synopsis's brackets and all)
    argv: list[str] = field(default_factory=list)  # after "ithcli"
    exit_code: int = 0
    synopsis: bool = False

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section}): {self.text}"


@dataclass
class Emulator:
    """An `ith-emulator` line of an sh block: its arguments and the URL the README shows for it."""
    line: int
    args: list[str]
    shown_url: str | None


def _sections(lines: list[str]) -> list[str]:
    """The heading each line is under."""
    out, current, fenced = [], "", False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            current = line.lstrip("#").strip()
        out.append(current)
    return out


def _sh_blocks(lines: list[str]) -> list[tuple[int, list[tuple[int, str]]]]:
    """Each ```sh block: its first line number and its logical lines (continuations joined)."""
    blocks: list[tuple[int, list[tuple[int, str]]]] = []
    current: list[tuple[int, str]] | None = None
    start, fence = 0, None
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if fence is None:
                fence = line[3:].strip()
                if fence == "sh":
                    current, start = [], number
            else:
                if current is not None:
                    blocks.append((start, current))
                current, fence = None, None
            continue
        if current is not None:
            if current and current[-1][1].endswith("\\"):
                current[-1] = (current[-1][0], current[-1][1][:-1] + " " + line.strip())
            else:
                current.append((number, line.strip()))
    return blocks


def _comment(line: str) -> str:
    """The `# ...` comment of a command line (no example quotes a '#')."""
    found = re.search(r"(?:^|\s)#\s*(.*)$", line)
    return found[1] if found else ""


def parse_readme(text: str) -> tuple[list[Example | Emulator], list[Example]]:
    """(what the sh blocks run, in README order, mixed with the inline examples; the inline
    synopses and references, checked without running)."""
    lines = text.splitlines()
    sections = _sections(lines)
    ordered: list[tuple[int, Example | Emulator]] = []
    for _, block in _sh_blocks(lines):
        for i, (number, line) in enumerate(block):
            if not line or line.startswith("#"):
                continue
            comment = _comment(line)
            if not comment and i + 1 < len(block) and block[i + 1][1].startswith("#"):
                comment = block[i + 1][1].lstrip("# ")  # a comment line right after says what it printed
            tokens = shlex.split(line, comments=True)
            for command in _split_and(tokens):
                if command[-1:] == ["&"]:
                    command = command[:-1]
                if command[:1] == ["ith-emulator"]:
                    shown = re.search(r"prints e\.g\. (\S+?)[;,.]?(?:\s|$)", comment)
                    ordered.append((number, Emulator(number, command[1:], shown[1] if shown else None)))
                elif command[:1] == ["ithcli"]:
                    exits = re.search(r"\bexits (\d+)", comment)
                    ordered.append((number, Example(number, sections[number - 1], shlex.join(command), command[1:],
                                                    int(exits[1]) if exits else 0)))
    others: list[Example] = []
    for number, span in _inline_spans(lines):
        example = Example(number, sections[number - 1], span)
        if _has_placeholder(span):
            example.synopsis = True
            others.append(example)
            continue
        example.argv = shlex.split(span)[1:]
        if _command_and_rest(example.argv)[1]:
            ordered.append((number, example))
        else:
            others.append(example)  # a bare command name: a reference to its section
    return [item for _, item in sorted(ordered, key=lambda pair: pair[0])], others


def _split_and(tokens: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for token in tokens:
        if token == "&&":
            out.append([])
        else:
            out[-1].append(token)
    return [part for part in out if part]


def _inline_spans(lines: list[str]) -> list[tuple[int, str]]:
    """Inline code spans starting with `ithcli ` outside fenced blocks, with their line numbers;
    a span may go on over a line break, and `\\|` (a pipe inside a table) reads as `|`."""
    kept, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
            kept.append("")
        else:
            kept.append("" if fenced else line)
    text = "\n".join(kept)
    out = []
    for found in re.finditer(r"`(ithcli [^`]*)`", text):
        number = text.count("\n", 0, found.start()) + 1
        out.append((number, " ".join(found[1].replace("\\|", "|").split())))
    return out


def _has_placeholder(span: str) -> bool:
    if any(mark in span for mark in ("[", "|", "...")):
        return True
    words = [part for token in span.split() for part in token.strip("\"'").split("=")]
    return any(PLACEHOLDER.match(word) and word not in VALUES for word in words)


# --- the commands, from click itself -------------------------------------------------------

def _root() -> click.Group:
    from ithcli.cli import cli

    return cli


def _options(command: click.Command) -> dict[str, click.Parameter]:
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}


def _command_and_rest(argv: list[str]) -> tuple[list[click.Command], list[str]]:
    """The command path an `ithcli` line names (the root first) and what follows it: the root's
    options and their values are skipped, subcommand names descend."""
    root = _root()
    path: list[click.Command] = [root]
    ctx = click.Context(root)
    rest = list(argv)
    while rest:
        current = path[-1]
        word = rest[0]
        if word.startswith("-") and len(path) == 1:  # a global option before the command
            option = _options(root).get(word.split("=")[0])
            takes_value = option is not None and not getattr(option, "is_flag", False) and \
                not getattr(option, "count", False) and "=" not in word
            rest = rest[2:] if takes_value else rest[1:]
            continue
        if isinstance(current, click.Group):
            sub = current.get_command(ctx, word)
            if sub is not None:
                path.append(sub)
                rest = rest[1:]
                continue
        break
    return path, rest


def _check_synopsis(example: Example) -> list[str]:
    """What is wrong with a synopsis or a reference: a command that does not exist, an option
    its command (or the root, for a global option) does not take."""
    words = example.text.split()[1:]
    if " | " in example.text:  # a shell pipe after it: not ithcli's
        words = example.text.split(" | ")[0].split()[1:]
    argv = [w.strip("[]") for w in words]
    path, rest = _command_and_rest(argv)
    names = [str(p.name) for p in path[1:]]
    problems = []
    if rest and not rest[0].startswith("-") and isinstance(path[-1], click.Group) and rest[0] != "...":
        problems.append(f"{example}: {' '.join(['ithcli', *names, rest[0]])} is not a command")
    known = {**_options(path[0]), **_options(path[-1])}
    for word in rest:
        option = word.split("=")[0]
        if option.startswith("--") and option not in known:
            problems.append(f"{example}: {' '.join(['ithcli', *names])} has no option {option}")
    return problems


def _takes_yes(argv: list[str]) -> bool:
    path, _ = _command_and_rest(argv)
    return "--yes" in _options(path[-1])


# --- the tests ---------------------------------------------------------------------------

def test_the_rule_finds_the_readmes_examples_synopses_and_references():
    """The rule on a README-like text: what runs, with which exit, and what is only checked."""
    text = "\n".join([
        "# Quick start",
        "```sh",
        "python3 -m pip install -e . && ithcli --port emulator interrogate",
        "ith-emulator --pty --drug baclofen \\",
        "    --key-file k.json &",
        "# prints e.g. /dev/pts/7; k.json holds its keys",
        "ithcli --port /dev/pts/7 bolus --dose 50mcg --over 1min   # exits 6: too fast",
        "```",
        "```toml",
        "action = \"bolus\"  # as ithcli bolus --dose X",
        "```",
        "### `ithcli ptm`",
        "| `ithcli ptm set --dose \"0.2 mg\" --lockout 60min` | on |",
        "| `ithcli keys pair --from FILE [--role reader\\|clinician]` | trust |",
        "Run `ithcli catheter implant --model STANDARD --length",
        "\"80 cm\"` first; see `ithcli mri`.",
    ])
    run, checked = parse_readme(text)
    assert [str(x.argv) if isinstance(x, Example) else x.args for x in run] == [
        str(["--port", "emulator", "interrogate"]),
        ["--pty", "--drug", "baclofen", "--key-file", "k.json"],
        str(["--port", "/dev/pts/7", "bolus", "--dose", "50mcg", "--over", "1min"]),
        str(["ptm", "set", "--dose", "0.2 mg", "--lockout", "60min"]),
        str(["catheter", "implant", "--model", "STANDARD", "--length", "80 cm"]),
    ]
    emulator = run[1]
    assert isinstance(emulator, Emulator) and emulator.shown_url == "/dev/pts/7"
    assert [x.exit_code for x in run if isinstance(x, Example)] == [0, 6, 0, 0]
    assert [x.section for x in run if isinstance(x, Example)][2] == "`ithcli ptm`"
    assert [(x.text, x.synopsis) for x in checked] == [  # a heading's span is a reference too
        ("ithcli ptm", False), ("ithcli keys pair --from FILE [--role reader|clinician]", True),
        ("ithcli mri", False)]
    # a synopsis naming an option its command does not take is caught
    assert _check_synopsis(Example(1, "", "ithcli bolus [--speed FAST]", synopsis=True))
    assert _check_synopsis(Example(1, "", "ithcli interogate")) == [
        "README.md:1 (): ithcli interogate: ithcli interogate is not a command"]
    assert not [p for x in checked for p in _check_synopsis(x)]


def test_every_synopsis_and_reference_in_the_readme_names_real_commands_and_options():
    _, checked = parse_readme(README.read_text())
    assert len(checked) > 30, "the README's synopses were not found: is the rule still the README's?"
    problems = [p for example in checked for p in _check_synopsis(example)]
    assert not problems, "\n".join(problems)


def test_every_command_example_in_the_readme_runs_as_documented(tmp_path):
    run, _ = parse_readme(README.read_text())
    examples = [x for x in run if isinstance(x, Example)]
    assert len(examples) >= 8, "the README's examples were not found: is the rule still the README's?"
    work = tmp_path / "readme"  # the README's working directory: pump.json, pump-keys.json...
    work.mkdir()
    env = cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "state"), "ITHCLI_KEY_STORE": str(tmp_path / "keys")})
    started: list[emulator_process.EmulatorProcess] = []
    urls: dict[str, str] = {}  # as the README shows it -> as it was printed
    pumps: dict[str, emulator_process.EmulatorProcess] = {}  # "readme", "morphine"
    failures: list[str] = []

    def ithcli(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([*console_script("ithcli", "ithcli"), *argv], cwd=work, env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    def start(args: list[str], name: str) -> emulator_process.EmulatorProcess:
        # the launcher reads the key file itself, from our directory: its file names, in the README's
        files = {"--key-file", "--state"}
        args = [str(work / a) if i and args[i - 1] in files else a for i, a in enumerate(args)]
        emu = emulator_process.start(args, cwd=str(work), control=str(tmp_path / f"{name}.sock"),
                                     stderr=str(tmp_path / f"{name}.stderr"))
        started.append(emu)
        return emu

    try:
        for item in run:
            if isinstance(item, Emulator):
                emu = start(item.args, f"emulator-{item.line}")
                pumps.setdefault("readme", emu)  # the block's first: the pump the reference runs on
                if item.shown_url:
                    urls[item.shown_url] = emu.url
                continue
            pump = None
            if any(name in item.section for name in MORPHINE_SECTIONS):
                if "morphine" not in pumps:
                    pumps["morphine"] = start(MORPHINE_PUMP, "morphine")
                    paired = ithcli(["keys", "pair", "--from", "morphine-keys.json"])
                    assert paired.returncode == 0, paired.stderr
                pump = pumps["morphine"]
            elif "readme" in pumps:
                pump = pumps["readme"]
            argv = [urls.get(word, word) for word in item.argv]
            if _takes_yes(argv) and not {"-y", "--yes"} & set(argv):
                argv.append("--yes")  # the person answers the prompt
            if pump is not None:
                env["ITHCLI_PORT"] = pump.url
            else:
                env.pop("ITHCLI_PORT", None)
            done = ithcli(argv)
            if done.returncode != item.exit_code:
                failures.append(f"{item}\n    exit {done.returncode}, the README says {item.exit_code}: "
                                f"{done.stderr.strip()[-600:]}")
            elif item.exit_code:
                error = [line for line in done.stderr.splitlines() if line.strip()]
                if len(error) != 1 or not error[0].startswith("ithcli: error: "):
                    failures.append(f"{item}\n    not one error line: {done.stderr!r}")
            if pump is not None:
                pump.control("advance", seconds=HOUR)
    finally:
        for emu in started:
            emu.stop()
    assert not failures, "README examples that do not work as documented:\n" + "\n".join(failures)


@pytest.mark.parametrize("span", ["ithcli bolus --dose 50mcg --over 10min", "ithcli ptm set --off"])
def test_a_plain_example_is_not_a_synopsis(span):
    assert not _has_placeholder(span)


@pytest.mark.parametrize("span", ["ithcli keys remove --serial S", "ithcli batch validate PLAN",
                                  "ithcli --credential ME.pem verify FILE", "ithcli empty [--withdrawn VOL]",
                                  "ithcli ... | head -3", "ithcli program --override-soft-limit STEP=REASON"])
def test_a_placeholder_makes_a_synopsis(span):
    assert _has_placeholder(span)
