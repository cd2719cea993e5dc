"""The command line's conventions (issue 19): global options anywhere, one error shape, shell
completion, a quiet closed stdout that never loses a write's outcome, progress on stderr, and
`ith-emulator --version`. End to end against real emulator processes; pure tests of the
argument pre-pass and the suggestions beside them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from cli_harness import Cli, assert_one_line_error, cli_env, run_cli
from emulator_harness import run_emulator
from test_cli_program import applied_txids

from ithcli.cli import COMMANDS, cli
from ithcli.global_options import arities, global_arities, hoist
from ithcli.usage_errors import suggestions
from protocol.constants import PROTOCOL_VERSION

SERIAL = "CONV-0001"
MORPHINE = ("--serial", SERIAL, "--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.2 mL/day")


def usage_lines(result) -> list[str]:
    """A usage error: exit 2, its message first, at most one hint after it, nothing else."""
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith("ithcli: error: "), lines
    assert all(line.startswith("ithcli: hint: ") for line in lines[1:]), lines
    assert "Usage:" not in result.stderr and "Traceback" not in result.stderr
    return lines


def json_error(result) -> dict:
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == result.code
    assert result.stderr.splitlines()[0] == f"ithcli: error: {error['message']}"
    return error


def audited_commands(cli_: Cli) -> list[str]:
    path = Path(cli_.audit_path)
    if not path.exists():
        return []
    return [e["command"] for e in map(json.loads, path.read_text().splitlines()) if e.get("event") == "exchange"]


# --- 1. global options before or after the command, at every level -------------------------

def test_global_options_after_the_command_at_every_level(pump, tmp_path):
    emu, cli_ = pump(*MORPHINE)
    unbound = Cli(cli_.state_dir)  # no ITHCLI_PORT: --port is given on the command line
    status = unbound("interrogate", "--json", "--port", emu.url)
    assert status.code == 0, status.stderr
    assert status.json()["serial_number"] == SERIAL

    checklist = unbound("mri", "checklist", "--field", "3T", "--json", f"--port={emu.url}")
    assert checklist.code in (0, 12), checklist.stderr
    assert json.loads(checklist.stdout)["serial_number"] == SERIAL

    plan = tmp_path / "plan.toml"
    plan.write_text(f'[plan]\nversion = 1\nname = "conventions"\n\n[[target]]\nport = "{emu.url}"\n'
                    f'serial = "{SERIAL}"\n\n[[step]]\naction = "interrogate"\n')
    batch = unbound("batch", "run", str(plan), "--dry-run", "--json")
    assert batch.code == 0, batch.stderr
    assert [t["serial_number"] for t in batch.json()["targets"]] == [SERIAL]


def test_a_verbose_flag_after_the_command_is_the_global_one(pump):
    emu, cli_ = pump(*MORPHINE)
    quiet = cli_("interrogate", "--json")
    loud = cli_("interrogate", "--json", "-vv")
    assert quiet.code == loud.code == 0, loud.stderr
    assert quiet.stderr == ""
    assert "ithcli: " in loud.stderr  # the diagnostics -vv asks for, on stderr
    assert json.loads(loud.stdout)["serial_number"] == SERIAL


def test_an_option_value_and_what_follows_double_dash_stay_where_they_are():
    # "--json" is the value of --serial here, as Click reads it: no JSON output
    taken = run_cli("keys", "remove", "--serial", "--json")
    assert_one_line_error(taken, 2, "--json")
    assert taken.stdout == ""
    # after "--" everything is an argument: the plan's path is "--json"
    literal = run_cli("batch", "validate", "--", "--json")
    assert literal.code == 2 and literal.stdout == "", literal.stdout
    assert "--json" in literal.stderr


def test_a_global_option_left_without_its_value_after_the_command_is_a_usage_error():
    lines = usage_lines(run_cli("interrogate", "--port"))
    assert lines[0] == "ithcli: error: option '--port' requires an argument"


def test_a_commands_help_says_the_global_options_work_there_too():
    for args in (["interrogate"], ["mri", "checklist"], ["batch", "run"], ["keys"]):
        result = run_cli(*args, "--help")
        assert result.code == 0, result.stderr
        text = " ".join(result.stdout.split())
        assert "Global options ('ithcli --help') work here too, before or after the command" in text, args
        assert "--expect-serial" in text and "--tz" in text and "--json" in text, args


@pytest.mark.parametrize("argv, expected", [
    (["interrogate", "--json", "--port", "P"], ["--json", "--port", "P", "interrogate"]),
    (["mri", "checklist", "--field", "3T", "--json"], ["--json", "mri", "checklist", "--field", "3T"]),
    (["--port=P", "log", "--limit", "3", "-vv", "--timeout=5"], ["--port=P", "-vv", "--timeout=5", "log",
                                                                 "--limit", "3"]),
    (["batch", "run", "-j4", "plan.toml", "--tz", "UTC"], ["--tz", "UTC", "batch", "run", "-j4", "plan.toml"]),
    (["program", "-yv", "--dose", "1 mg/day"], ["-v", "program", "-y", "--dose", "1 mg/day"]),
    (["keys", "remove", "--serial", "--json"], ["keys", "remove", "--serial", "--json"]),
    (["batch", "validate", "--", "--json"], ["batch", "validate", "--", "--json"]),
    (["--operator", "--json", "ports"], ["--operator", "--json", "ports"]),
    (["nosuch", "--json", "x"], ["--json", "nosuch", "x"]),
    (["interrogate", "-h", "--json"], ["--json", "interrogate", "-h"]),
])
def test_the_pre_pass_moves_global_options_only(argv, expected):
    assert hoist(cli, click.Context(cli, help_option_names=["-h", "--help"]), argv).args == expected


def test_the_pre_pass_knows_which_global_options_were_given_and_what_is_left_dangling():
    ctx = click.Context(cli, help_option_names=["-h", "--help"])
    assert "--json" not in hoist(cli, ctx, ["--operator", "--json", "ports"]).given
    assert "--json" in hoist(cli, ctx, ["ports", "--json"]).given
    dangling = hoist(cli, ctx, ["mri", "checklist", "--expect-serial"])
    assert dangling.dangling == "--expect-serial" and dangling.args == ["mri", "checklist"]
    assert dangling.path == ["mri", "checklist"]


def test_a_commands_own_option_is_never_taken_for_a_global_one():
    @click.group()
    @click.option("--json", is_flag=True)
    @click.option("--port")
    def root(json, port):
        pass

    @root.command()
    @click.option("--json", "mine", is_flag=True)
    def sub(mine):
        pass

    ctx = click.Context(root, help_option_names=["--help"])
    assert hoist(root, ctx, ["sub", "--json", "--port", "P"]).args == ["--port", "P", "sub", "--json"]


def test_no_command_shadows_a_global_option():
    """A command declaring a global option's name would take it from the root after that command
    (global_options.py): such a clash must be a decision, made here, not an accident."""
    ctx = click.Context(cli, help_option_names=["-h", "--help"])
    names = set(global_arities(cli, ["-h", "--help"]))
    clashes: list[str] = []

    def walk(command, path):
        clashes.extend(f"{' '.join(path)} {n}" for n in set(arities(command, [])) & names)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    for name in COMMANDS:
        walk(cli.get_command(ctx, name), [name])
    assert clashes == []


# --- 2. one error shape, usage errors included --------------------------------------------

def test_a_usage_error_under_json_is_the_error_object_wherever_json_stands(pump):
    emu, cli_ = pump(*MORPHINE)
    for args in (["--json", "program", "--dose"], ["program", "--dosee", "4", "--json"],
                 ["interogate", "--json"]):
        result = cli_(*args)
        usage_lines(result)
        error = json_error(result)
        assert error["kind"] == "usage" and error["exit_code"] == 2, args
    assert audited_commands(cli_) == []  # refused on the command line: nothing was sent
    env_json = cli_("program", "--dose", env={"ITHCLI_JSON": "1"})
    assert json_error(env_json)["message"] == "option '--dose' requires an argument"


def test_did_you_mean_for_commands_and_options_at_every_level():
    cases = [
        (["interogate"], "no such command 'interogate' (did you mean 'interrogate'?)", "ithcli --help"),
        (["mri", "chekclist"], "no such command 'chekclist' (did you mean 'checklist'?)", "ithcli mri --help"),
        (["program", "--dosee", "4"], "no such option '--dosee' (did you mean '--dose'?)", "ithcli program --help"),
        (["interrogate", "--jsn"], "no such option '--jsn' (did you mean '--json'?)", "ithcli interrogate --help"),
        (["--jsno", "ports"], "no such option '--jsno' (did you mean '--json'?)", "ithcli --help"),
        (["mri", "checklist", "--feild", "3T"], "no such option '--feild' (did you mean '--field'?)",
         "ithcli mri checklist --help"),
    ]
    for args, message, helped in cases:
        lines = usage_lines(run_cli(*args))
        assert lines == [f"ithcli: error: {message}", f"ithcli: hint: try '{helped}'"], (args, lines)


def test_every_other_usage_error_is_one_message_and_one_hint():
    assert usage_lines(run_cli("--timeout", "-1", "ports"))[0].startswith(
        "ithcli: error: invalid value for '--timeout': ")
    assert usage_lines(run_cli("mri")) == [
        "ithcli: error: missing command: ithcli mri needs one of checklist, enter, exit, verify",
        "ithcli: hint: try 'ithcli mri --help'"]
    assert usage_lines(run_cli("keys", "remove"))[0] == "ithcli: error: missing option '--serial'"
    assert usage_lines(run_cli("completion", "tcsh"))[1] == "ithcli: hint: try 'ithcli completion --help'"


def test_suggestions_name_the_closest_only():
    assert suggestions("--dosee", ["--dose", "--mode", "--flow"]) == ["--dose"]
    assert suggestions("chekclist", ["checklist", "enter", "exit", "verify"]) == ["checklist"]
    assert suggestions("zzz", ["checklist", "enter"]) == []
    assert suggestions("--bogus", ["--dose", "--verbose", "--port"]) == []  # the dashes alone are no likeness


# --- 3. shell completion ---------------------------------------------------------------------

def _complete(words: str, cword: int, shell: str = "bash", env: dict | None = None) -> list[str]:
    """What `ithcli` answers the shell for COMP_WORDS/COMP_CWORD (its own process)."""
    proc = subprocess.run([sys.executable, "-m", "ithcli"], capture_output=True, text=True, timeout=60,
                          env=cli_env({"_ITHCLI_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
                                       "COMP_CWORD": str(cword), **(env or {})}))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line.startswith("plain,")]


@pytest.fixture
def shell_with_ithcli(tmp_path):
    """bash with the completion script of `ithcli completion bash` loaded: complete(line) -> what
    TAB offers at the end of the line (an `ithcli` on PATH runs this interpreter's ithcli)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ithcli"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ithcli "$@"\n')
    script.chmod(0o755)

    def complete(line: str, env: dict | None = None) -> list[str]:
        words = line.split(" ")
        program = (f'eval "$(ithcli completion bash)"\nCOMP_WORDS=({line})\nCOMP_CWORD={len(words) - 1}\n'
                   '_ithcli_completion ithcli\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
        proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                              timeout=120, env=cli_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                                                        **(env or {})}))
        assert proc.returncode == 0, proc.stderr
        return [w for w in proc.stdout.splitlines() if w]

    return complete


def test_bash_completes_commands_subcommands_options_and_global_options_after_a_command(shell_with_ithcli):
    assert shell_with_ithcli("ithcli inter") == ["interrogate"]
    assert shell_with_ithcli("ithcli mri che") == ["checklist"]
    assert shell_with_ithcli("ithcli program --do") == ["--dose"]
    assert shell_with_ithcli("ithcli interrogate --expect") == ["--expect-serial"]
    assert shell_with_ithcli("ithcli completion ") == ["bash", "fish", "zsh"]


def test_drug_names_come_from_the_drug_library_in_use(shell_with_ithcli, tmp_path):
    assert shell_with_ithcli("ithcli refill --drug ba") == ["baclofen"]
    assert "ziconotide" in shell_with_ithcli("ithcli refill --drug ")
    # a clinic's library is the one completed from (here: one that cannot be read: nothing)
    assert shell_with_ithcli(f"ithcli --drug-library {tmp_path}/none.toml refill --drug ") == []


def test_serials_in_the_key_store_complete_expect_serial_and_keys_remove(start_emulator, shell_with_ithcli, tmp_path):
    store = tmp_path / "store"
    for serial in ("WARD-A01", "WARD-B02"):
        emu = start_emulator("--serial", serial, transport="tcp")
        paired = run_cli("--key-store", str(store), "keys", "pair", "--from", emu.key_file)
        assert paired.code == 0, paired.stderr
    env = {"ITHCLI_KEY_STORE": str(store)}
    assert shell_with_ithcli("ithcli keys remove --serial ", env) == ["WARD-A01", "WARD-B02"]
    assert shell_with_ithcli("ithcli --expect-serial WARD-B", env) == ["WARD-B02"]
    assert shell_with_ithcli("ithcli log --limit 3 --expect-serial ", env) == ["WARD-A01", "WARD-B02"]
    # --key-store on the line being completed is the store read
    (tmp_path / "empty").mkdir()
    assert shell_with_ithcli(f"ithcli interrogate --key-store {tmp_path / 'empty'} --expect-serial ", env) == []


def test_zsh_and_fish_scripts_and_answers():
    for shell, marker in (("bash", "complete -o nosort -F _ithcli_completion ithcli"),
                          ("zsh", "#compdef ithcli"), ("fish", "complete --no-files --command ithcli")):
        script = run_cli("completion", shell)
        assert script.code == 0 and marker in script.stdout and f"_ITHCLI_COMPLETE={shell}_complete" in script.stdout
        # Click's own way of asking for it gives the same script
        sourced = subprocess.run([sys.executable, "-m", "ithcli"], capture_output=True, text=True, timeout=60,
                                 env=cli_env({"_ITHCLI_COMPLETE": f"{shell}_source"}))
        assert sourced.returncode == 0 and sourced.stdout == script.stdout, shell
    zsh = subprocess.run([sys.executable, "-m", "ithcli"], capture_output=True, text=True, timeout=60,
                         env=cli_env({"_ITHCLI_COMPLETE": "zsh_complete", "COMP_WORDS": "ithcli mri ch",
                                      "COMP_CWORD": "2"}))
    assert zsh.stdout.splitlines()[:2] == ["plain", "checklist"], zsh.stdout
    fish = subprocess.run([sys.executable, "-m", "ithcli"], capture_output=True, text=True, timeout=60,
                          env=cli_env({"_ITHCLI_COMPLETE": "fish_complete", "COMP_WORDS": "ithcli interrogate --js",
                                       "COMP_CWORD": "--js"}))
    assert fish.stdout.startswith("plain,--json\t"), fish.stdout


def test_listing_the_commands_imports_none_of_them():
    code = ("import os, sys\n"
            "os.environ.update(_ITHCLI_COMPLETE='bash_complete', COMP_WORDS='ithcli ', COMP_CWORD='1')\n"
            "from ithcli.cli import main\n"
            "try:\n    main([])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('ithcli.commands.')), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env())
    assert "LOADED ['ithcli.commands.completion']" in proc.stderr, proc.stderr
    assert [line.split(",")[1] for line in proc.stdout.splitlines()] == list(COMMANDS)


# --- 4. a closed stdout ends quietly, except for a write's outcome -----------------------------

def run_with_stdout_closed(cli_: Cli, *args: str) -> subprocess.CompletedProcess:
    """ithcli in its own process, its stdout a pipe whose reader has already gone (`| head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = cli_env({"ITHCLI_STATE_DIR": cli_.state_dir, "ITHCLI_OPERATOR": cli_.operator, "ITHCLI_PORT": cli_.port})
    try:
        return subprocess.run([sys.executable, "-m", "ithcli", *args], stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=env, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["rich", "json"])
def test_a_read_into_a_closed_pipe_ends_quietly_with_141(pump, json_flag):
    emu, cli_ = pump(*MORPHINE)
    proc = run_with_stdout_closed(cli_, "interrogate", *json_flag)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr
    assert audited_commands(cli_).count("INTERROGATE") == 1  # it did read the pump


def test_a_verified_write_into_a_closed_pipe_still_says_its_outcome(pump):
    emu, cli_ = pump(*MORPHINE)
    proc = run_with_stdout_closed(cli_, "program", "--dose", "2.5 mg/day", "--yes", "--json")
    assert proc.returncode == 141, proc.stderr
    [txid] = applied_txids(emu)
    assert proc.stderr == (f"ithcli: program: verified on {SERIAL} (txid {txid}); standard output was closed "
                           "before its report (the audit log has it)\n")
    assert cli_("--json", "interrogate").json()["daily_dose"] == {"value": 2.5, "unit": "mg/day"}


def test_an_unconfirmed_write_into_a_closed_pipe_keeps_its_own_line_and_exit_code(pump):
    emu, cli_ = pump(*MORPHINE)
    assert emu.control("fault", name="drop_commit_reply")["ok"]
    proc = run_with_stdout_closed(cli_, "--timeout", "0.5", "program", "--dose", "2.5 mg/day", "--yes", "--json")
    assert proc.returncode == 8, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ithcli: error: ") and "Traceback" not in proc.stderr
    assert "unconfirmed" in lines[0].lower() or "unknown" in lines[0].lower()


def test_a_refused_write_into_a_closed_pipe_keeps_its_own_line_and_exit_code(pump):
    emu, cli_ = pump(*MORPHINE)
    proc = run_with_stdout_closed(cli_, "program", "--dose", "200 mg/day", "--yes", "--json")
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.startswith("ithcli: error: refused") and len(proc.stderr.splitlines()) == 1
    assert "COMMIT" not in audited_commands(cli_)


def test_a_write_whose_change_cannot_be_shown_is_cancelled_and_says_so(pump):
    emu, cli_ = pump(*MORPHINE)
    proc = run_with_stdout_closed(cli_, "program", "--dose", "2.5 mg/day", "--yes")
    assert proc.returncode == 9, proc.stderr
    assert proc.stderr == ("ithcli: error: standard output was closed before the change could be shown: "
                           "cancelled. Nothing was sent\n")
    assert applied_txids(emu) == [] and "COMMIT" not in audited_commands(cli_)


# --- 5. stdout carries only the report --------------------------------------------------------

def test_a_human_writes_stdout_is_the_report_and_its_progress_is_on_stderr(pump):
    emu, cli_ = pump(*MORPHINE)
    result = cli_("program", "--dose", "1.5 mg/day", "--yes")  # a cut of a withdrawal-risk drug: a warning
    assert result.code == 0, result.stderr
    [txid] = applied_txids(emu)
    # stdout: the before/after table, then the result; nothing else
    table = ("Program change", "┏", "┃", "┡", "│", "└")
    rest = " ".join(line.strip() for line in result.stdout.splitlines() if line.strip() and not line.startswith(table))
    assert "Program change" in result.stdout and rest.startswith(f"VERIFIED: {SERIAL} now delivers continuous")
    assert rest.endswith("read back field by field).") and rest.count("VERIFIED") == 1, rest
    assert f"Pump echoed txid {txid}" in result.stderr and "Committing." in result.stderr
    assert "Pump echoed" not in result.stdout and "Committing" not in result.stdout
    assert "WARN: a dose cut" in result.stderr and "a dose cut" not in result.stdout


# --- 6. ith-emulator --version ----------------------------------------------------------------

def test_the_emulator_says_its_version_and_the_protocol_it_speaks():
    result = run_emulator("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ith-emulator {version('ithcli')} (protocol version {PROTOCOL_VERSION})\n"
