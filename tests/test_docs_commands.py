"""Every command the README and docs/ show runs as written: each ``autocompress`` command parses
with the real command line (and the quick ones, ``tasks`` and ``inspect``, really run), each
benchmark command names a script that exists and whose own parser takes its arguments, each
``pytest`` command names tests that exist, each ``ray`` command's flags are Ray's. The long
ones (searches of hours) are checked up to their start: their flags and values, not their runs;
the README's own commands run in full in test_readme.py and CI's fresh clone."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(PYTHONPATH=\S+ )?(autocompress( |$)|python3? (benchmarks/|-m )|pytest( |$)|ray( |$)|\w+\.py )")
# the placeholders the docs use, and what stands in for them here
PLACEHOLDERS = {"T": "digits", "RUN_DIR": "runs/x", "RUN": "runs/x", "N": "3", "DIR": "out/", "FILE": "x.html",
                "HEAD:6379": "127.0.0.1:6379", "D": "data/", "URL": "sqlite:///x.db"}


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every command shown in a code block or a code span of the docs; a
    usage synopsis (``[--flag ..]``) is left to ``synopsis_flags``."""
    found = []
    for path in DOCS:
        text = path.read_text()
        lines = [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for line in block.splitlines()]
        for candidate in lines + re.findall(r"`([^`\n]+)`", text):
            for part in candidate.split("&&"):
                command = part.split(" #")[0].strip()
                if COMMAND.match(command) and "[" not in command and ".." not in command:
                    found.append((path.name, re.sub(r"^PYTHONPATH=\S+ ", "", command)))
    return list(dict.fromkeys(found))


def _argv(command: str) -> list[str]:
    return [PLACEHOLDERS.get(word, word) for word in shlex.split(command)]


COMMANDS = documented_commands()
CLI = [c for c in COMMANDS if c[1].startswith("autocompress")]
SCRIPTS = [c for c in COMMANDS if re.match(r"(python3? benchmarks/|\w+\.py )", c[1])]


def test_the_docs_show_commands_of_every_kind():
    kinds = {c.split()[0] for _, c in COMMANDS}
    assert {"autocompress", "python", "pytest", "ray"} <= kinds and len(CLI) >= 15 and len(SCRIPTS) >= 10


@pytest.mark.parametrize("where,command", CLI, ids=[c for _, c in CLI])
def test_each_autocompress_command_parses_as_written(where, command):
    from autocompress.cli_parser import join_negative_values, parser

    argv = _argv(command)[1:]
    if len(argv) == 1:  # a command named in prose ("autocompress report"): it exists
        assert argv[0] in parser()._subparsers._group_actions[0].choices, f"{where}: {command}"
        return
    try:
        parser().parse_args(join_negative_values(argv))
    except SystemExit as exc:
        pytest.fail(f"{where}: '{command}' does not parse (exit {exc.code})")


def test_the_quick_documented_commands_run(cli, digits_task):
    quick = {c for _, c in CLI if c in ("autocompress tasks", "autocompress inspect --task digits")}
    assert len(quick) == 2
    for command in sorted(quick):
        result = cli(*_argv(command)[1:])
        assert result.returncode == 0 and result.stdout.strip(), (command, result.stderr)


def test_every_flag_of_a_usage_synopsis_exists():
    """docs/search.md's synopsis lines (``autocompress search --task T [--trials 40] ...``)."""
    from autocompress.cli_parser import parser

    helps = {name: sub.format_help() for name, sub in parser()._subparsers._group_actions[0].choices.items()}
    text = (ROOT / "docs" / "search.md").read_text()
    synopsis = re.search(r"```\n(autocompress tasks.*?)```", text, re.S).group(1)
    command = None
    for line in synopsis.splitlines():
        command = line.split()[1] if line.startswith("autocompress ") else command
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-o)\b", line.split("#")[0]):
            assert flag in helps[command], f"'{flag}' of 'autocompress {command}' in docs/search.md"


PARSE_ONLY = """
import argparse, runpy, sys
class Parsed(Exception):
    pass
parse = argparse.ArgumentParser.parse_args
def parse_and_stop(self, args=None, namespace=None):
    parse(self, args, namespace)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_and_stop
for line in sys.stdin.read().splitlines():
    script, *args = line.split("\\0")
    sys.argv = [script, *args]
    sys.path.insert(0, script.rpartition("/")[0])  # as 'python benchmarks/x.py' runs it
    try:
        runpy.run_path(script, run_name="__main__")
    except Parsed:
        continue
    except SystemExit as exc:
        sys.exit(f"{line.replace(chr(0), ' ')}: its parser refused the arguments (exit {exc.code})")
    sys.exit(f"{script}: it ran without parsing arguments")
"""


def test_each_benchmark_command_names_a_script_whose_parser_takes_its_arguments():
    """Scripts are run up to their argument parsing (nothing after it runs); a script without
    arguments in the docs and without a parser only has to exist."""
    lines = []
    for where, command in SCRIPTS:
        argv = _argv(command)
        argv = argv[1:] if argv[0].startswith("python") else argv
        script = ROOT / "benchmarks" / Path(argv[0]).name
        assert script.is_file(), f"{where}: '{command}' names no script"
        if "argparse" in script.read_text():
            lines.append("\0".join([str(script), *argv[1:]]))
        else:
            assert len(argv) == 1, f"{where}: '{command}' gives arguments to a script that takes none"
    proc = subprocess.run([sys.executable, "-c", PARSE_ONLY], input="\n".join(lines), capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_each_pytest_command_names_tests_that_exist():
    for where, command in COMMANDS:
        argv = _argv(command)
        if argv[0] != "pytest":
            continue
        paths = [a for a in argv[1:] if a.startswith("tests/")]
        assert all((ROOT / p).exists() for p in paths), f"{where}: '{command}'"
        if "-k" in argv:
            keyword = argv[argv.index("-k") + 1]
            assert any(keyword in (ROOT / p).read_text() for p in paths), f"{where}: '{command}' selects nothing"
        if "-m" in argv:
            marker = argv[argv.index("-m") + 1].removeprefix("not ")
            assert f'"{marker}:' in (ROOT / "pyproject.toml").read_text(), f"{where}: '{command}': no such marker"


def test_each_ray_command_uses_flags_ray_has():
    ray = Path(sys.executable).with_name("ray")
    helps: dict[str, str] = {}
    for where, command in COMMANDS:
        argv = _argv(command)
        if argv[0] != "ray":
            continue
        sub = argv[1]
        if sub not in helps:
            helps[sub] = subprocess.run([str(ray), sub, "--help"], capture_output=True, text=True, timeout=120).stdout
        for flag in (a for a in argv[2:] if a.startswith("--")):
            assert flag in helps[sub], f"{where}: '{command}': ray {sub} has no {flag}"
