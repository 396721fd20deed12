"""The README's examples, run as written.

Every ``console`` block is a session: each ``$ `` line runs in a shell, in a
scratch folder that sees the repository's ``fixtures/``, and must exit 0 (or
the status its comment names: ``# exits 1``); the lines after it are its
output, ``...`` standing for any lines (or, ending a line, for the rest
of it).  Every ``python`` block is a test
module of a user's suite and must pass under pytest with the plugin
installed.  The two commands at the top are the install commands, checked
against ``pyproject.toml`` here and run whole by CI on a clean clone.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vmstate.core.paths import REPO

pytest_plugins = ["pytester"]

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, re.S | re.M)


def _blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == kind]


def test_the_first_two_lines_install_and_run_the_demo_and_the_tests():
    demo, tests = _blocks("sh")[0].strip().splitlines()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert demo.endswith("pip install -q -e . && vmstate demo")
    assert tests.endswith("pip install -q -e '.[test]' && python -m pytest -q") and "test" in extras


def _sessions() -> list[tuple[int, str, int, list[str]]]:
    """(block number, command, expected status, expected output lines)."""
    found = []
    for number, body in enumerate(_blocks("console")):
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            status = re.search(r"#.*\bexits (\d)", command)
            command = re.sub(r"\s+# .*$", "", command)
            found.append((number, command, int(status.group(1)) if status else 0, output))
    return found


def _line(line: str) -> str:
    if line == "...":
        return ".*?"
    if line.endswith("..."):
        return re.escape(line[:-3]) + "[^\n]*\n"
    return re.escape(line + "\n")


def _matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` with ``...`` for any run of lines, and a line ending in
    ``...`` for any line that begins so."""
    pattern = "".join(_line(line) for line in expected)
    return re.fullmatch(pattern if expected else ".*", "".join(a + "\n" for a in actual), re.S) is not None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for every console block, in order: later commands use what
    earlier ones wrote (a snapshot, a trace)."""
    where = tmp_path_factory.mktemp("readme")
    (where / "fixtures").symlink_to(REPO / "fixtures")
    (where / "more.trace").write_text("clock_step 1000\ninb 0x40\n")
    return where


@pytest.mark.parametrize("block, command, status, output", _sessions(),
                         ids=[f"{b}:{c[:60]}" for b, c, _, _ in _sessions()])
def test_each_console_example_runs_as_written(block, command, status, output, scratch):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "100", "NO_COLOR": "1"}
    done = subprocess.run(["bash", "-c", command], cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == status, done.stdout + done.stderr
    assert _matches(output, done.stdout.splitlines()), done.stdout


@pytest.mark.parametrize("body", _blocks("python"), ids=lambda b: b.split("\n")[0][:50])
def test_each_python_example_passes_as_a_users_test_module(body, pytester):
    pytester.makepyfile(test_readme_example=body)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert result.ret == 0, "\n".join(result.outlines)
    assert result.parseoutcomes().get("passed", 0) >= 1
