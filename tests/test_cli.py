"""The command line as users meet it: ``python -m interpreters_aio [COMMAND]``.

Each test runs the installed package in a fresh process (from tests/, so the
source tree is not what gets imported) and checks what it prints and its exit
status: the command list with no command, --version, "did you mean" for a
misspelled command, option or choice, serve's --help epilog, a quick demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from interpreters_aio import __version__

HERE = Path(__file__).resolve().parent
COMMANDS = ("serve", "check", "demo")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHON_COLORS")}
    env["NO_COLOR"] = "1"  # 3.14's argparse colours help on a terminal, or when forced
    env["COLUMNS"] = "80"
    return subprocess.run([sys.executable, "-m", "interpreters_aio", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=HERE, env=env)


def assert_usage_error(out: subprocess.CompletedProcess[str], prog: str, message: str) -> None:
    """Exit 2; on stderr a one-line usage and the error, nothing else; nothing on stdout."""
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith(f"usage: {prog} ")
    assert lines[1] == f"{prog}: error: {message}"


def test_no_command_lists_the_commands():
    out = run_cli()
    assert out.returncode == 0, out  # as pip: help asked for by giving nothing
    assert out.stderr == ""
    assert out.stdout.startswith(
        "usage: python -m interpreters_aio [--version] [--help] COMMAND [ARGS ...]\n")
    section = out.stdout.split("\ncommands:\n")[1].split("\n\n")[0]
    listed = [line.split()[0] for line in section.splitlines() if not line.startswith("   ")]
    assert listed == list(COMMANDS)
    for name in COMMANDS:  # each with its one-line description
        assert f"\n  {name}  " in out.stdout
    assert "--version" in out.stdout and "COMMAND --help" in out.stdout


def test_help_is_the_same_list():
    assert run_cli("--help").stdout == run_cli().stdout


@pytest.mark.parametrize("args", [("--version",), ("serve", "--version")],
                         ids=["top-level", "serve"])
def test_version(args):
    out = run_cli(*args)
    assert out.returncode == 0, out
    assert out.stdout == f"interpreters-aio {__version__} (Python {sys.version.split()[0]})\n"


def test_misspelled_command():
    assert_usage_error(run_cli("serv", "app:app"), "python -m interpreters_aio",
                       "unknown command 'serv' (did you mean 'serve'?)")


def test_unknown_command_without_a_near_one():
    assert_usage_error(run_cli("frobnicate"), "python -m interpreters_aio",
                       "unknown command 'frobnicate'")


@pytest.mark.parametrize(("args", "message"), [
    (("serve", "--worker", "2", "app:app"),
     "unrecognized option '--worker' (did you mean '--workers'?)"),
    (("serve", "app:app", "--prot", "8000"),
     "unrecognized option '--prot' (did you mean '--port'?)"),
    (("serve", "--prot", "8000"),  # before "MODULE:APP is required"
     "unrecognized option '--prot' (did you mean '--port'?)"),
    (("serve", "app:app", "--worker=2"),
     "unrecognized option '--worker' (did you mean '--workers'?)"),
    (("serve", "app:app", "--no-acess-log"),
     "unrecognized option '--no-acess-log' (did you mean '--no-access-log'?)"),
    (("serve", "app:app", "--zzzzzzzz"), "unrecognized option '--zzzzzzzz'"),
    (("serve", "app:app", "--isolation", "thread"),
     "argument --isolation: invalid choice 'thread' (did you mean 'threads'?); "
     "choose from auto, interpreters, threads, processes"),
], ids=["prefix", "typo", "typo-no-app", "with-value", "negated", "no-near-one", "choice"])
def test_misspelled_serve_option(args, message):
    assert_usage_error(run_cli(*args), "python -m interpreters_aio serve", message)


def test_misspelled_check_option():
    assert_usage_error(run_cli("check", "app:app", "--app-dri", "."),
                       "python -m interpreters_aio check",
                       "unrecognized option '--app-dri' (did you mean '--app-dir'?)")


def test_misspelled_top_level_option():
    assert_usage_error(run_cli("--verison"), "python -m interpreters_aio",
                       "unrecognized option '--verison' (did you mean '--version'?)")


def test_misspelled_demo_option():
    assert_usage_error(run_cli("demo", "--quik"), "python -m interpreters_aio demo",
                       "unrecognized option '--quik' (did you mean '--quick'?)")


def test_serve_help_ends_with_signals_and_check():
    out = run_cli("serve", "--help")
    assert out.returncode == 0, out
    assert out.stdout.startswith("usage: python -m interpreters_aio serve [OPTIONS] MODULE:APP\n")
    epilog = out.stdout[out.stdout.index("\nsignals"):]
    for signal in ("HUP", "TTIN/TTOU", "INT/TERM"):
        assert f"\n  {signal} " in epilog
    assert "rolling restart" in epilog and "one worker more / one fewer" in epilog
    assert "graceful stop" in epilog and "second INT or TERM" in epilog
    assert out.stdout.rstrip().endswith("python -m interpreters_aio check MODULE:APP")
    assert max(map(len, epilog.splitlines())) <= 80


def test_demo_quick():
    out = run_cli("demo", "--quick", "--workers", "2")
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    assert "counting primes below 8,000 in 4 chunks, 2 workers" in lines[0]
    rows = {line[:24].strip(): line.split()[-1] for line in lines[4:]}
    assert rows == dict.fromkeys(["sequential", "threads", "interpreters",
                                  "processes (forkserver)"], "1007")


def test_console_script_names_itself():
    script = Path(sys.executable).with_name("interpreters-aio")
    if not script.exists():
        pytest.skip("no interpreters-aio script beside this Python")
    out = subprocess.run([str(script), "serve", "--prot", "1"], capture_output=True, text=True,
                         timeout=60, cwd=HERE)
    assert_usage_error(out, "interpreters-aio serve",
                       "unrecognized option '--prot' (did you mean '--port'?)")
    out = subprocess.run([str(script)], capture_output=True, text=True, timeout=60, cwd=HERE)
    assert out.returncode == 0 and out.stdout.startswith("usage: interpreters-aio ")
