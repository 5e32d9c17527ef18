"""Every command's --help, and a wrong number of arguments, through a real process.

The subcommands are read from the parser itself, so a command added later is
covered without touching this file.
"""

import argparse
import os
import subprocess
import sys

import pytest

from bigw2v import cli
from conftest import REPO

CRON = os.path.join(REPO, "bin", "bigw2v-cron")


def subparsers():
    parser = cli.build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return actions[0].choices


SUBCOMMANDS = sorted(subparsers())


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "bigw2v", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_every_command_in_the_parser_has_a_handler_and_the_reverse():
    assert set(SUBCOMMANDS) == set(cli.COMMANDS)
    assert {"count", "train", "publish", "similar", "analogy", "export", "eval"} <= \
        set(SUBCOMMANDS)


def test_top_level_help_lists_every_command(tmp_path):
    r = run("--help", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.startswith("usage: bigw2v")
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in r.stdout, name  # one line per command, with its help


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_of_every_command(name, tmp_path):
    r = run(name, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr and r.stderr == ""
    assert r.stdout.startswith(f"usage: bigw2v {name} ")
    usage = r.stdout.split("\n\n")[0]
    for action in subparsers()[name]._actions:
        if action.option_strings:  # every option is documented in the help
            assert action.option_strings[0] in r.stdout, action.option_strings
        else:  # every positional is named in the usage line
            assert action.metavar in usage, (action.metavar, usage)
    assert os.listdir(tmp_path) == []  # --help writes nothing


def positional_counts(parser):
    """(fewest, most) positional arguments ``parser`` accepts; most is None if unbounded."""
    low, high = 0, 0
    for action in parser._actions:
        if action.option_strings:
            continue
        if action.nargs is None:
            low, high = low + 1, None if high is None else high + 1
        elif isinstance(action.nargs, int):
            low, high = low + action.nargs, None if high is None else high + action.nargs
        elif action.nargs == "+":
            low, high = low + 1, None
        elif action.nargs == "*":
            high = None
        elif action.nargs == "?":
            high = None if high is None else high + 1
        else:
            raise AssertionError(f"nargs {action.nargs!r} not understood by this test")
    return low, high


def required_options(parser, tmp_path):
    """The options a command cannot go without, with a value: what is wrong is the count."""
    args = []
    for action in parser._actions:
        if action.option_strings and action.required:
            args += [action.option_strings[0], tmp_path / "out"]
    return args


def wrong_counts():
    cases = []
    for name in SUBCOMMANDS:
        low, high = positional_counts(subparsers()[name])
        if low > 0:
            cases.append((name, low - 1, "required"))
        if high is not None:
            cases.append((name, high + 1, "unrecognized arguments"))
    return cases


@pytest.mark.parametrize("name,n,message", wrong_counts())
def test_a_wrong_number_of_arguments_is_a_usage_error(name, n, message, tmp_path):
    positionals = [tmp_path / f"arg{i}" for i in range(n)]
    r = run(name, *positionals, *required_options(subparsers()[name], tmp_path), cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    if message == "required":  # the command's own usage names what is missing
        assert r.stderr.startswith(f"usage: bigw2v {name} ") and message in r.stderr, r.stderr
    else:  # argparse reports leftovers from the top-level parser, naming the extra one
        assert r.stderr.startswith("usage: bigw2v ") and \
            f"{message}: {positionals[-1]}\n" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == []  # refused before anything ran


def test_every_command_with_positionals_has_a_wrong_count_case():
    covered = {name for name, _, _ in wrong_counts()}
    assert covered == set(SUBCOMMANDS)


def test_analogy_names_its_three_words():
    # Issue 20: a tuple metavar made argparse crash; the words must stay A B C in the usage.
    help_text = subparsers()["analogy"].format_help()
    assert help_text.startswith("usage: bigw2v analogy [-h] [--limit N] [-n N] MODEL A B C\n")


def test_cron_wrapper_help_prints_its_header_only(tmp_path):
    r = subprocess.run([CRON, "--help"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Cron-driven retraining")
    assert "bin/bigw2v-cron --root DIR" in r.stdout
    assert lines[-1].endswith("(below --min-accuracy).")
    with open(CRON) as f:  # no line of the script's code, e.g. `set -uo pipefail`
        code = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert not set(line.strip() for line in lines) & set(code), lines
    assert os.listdir(tmp_path) == []


def test_cron_wrapper_refuses_a_missing_root_or_corpus(tmp_path):
    for args in ([], ["--root", str(tmp_path / "r")], [str(tmp_path)], ["--bogus"]):
        r = subprocess.run([CRON, *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and "--help" in r.stderr, (args, r.stderr)
        assert not (tmp_path / "r").exists()
