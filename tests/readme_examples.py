"""The README's example outputs, produced by a real run of the shipped GPTs on the embedded model.

`python -m tests.readme_examples --write` reruns every listed command and writes its output into README.md
under the command's `$ ...` line; tests/test_readme_examples.py checks that the README still says what a
run prints. Timings are the only thing that differs from run to run, so they are compared as "N s".
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
WIDTH = 140  # terminal columns for tables, so wrapped rows read the same everywhere

# The README's example commands whose output is checked, in the order they run (index builds what search
# and chat read). The answers are greedy (the embedded model's default temperature 0), so they repeat.
COMMANDS = [
    "gptbuilder list",
    'gptbuilder chat assistant -m "What is the capital of France?"',
    'gptbuilder chat assistant -m "Hi" --json',
    "gptbuilder index acme-support",
    'gptbuilder search acme-support "how long do I have to send shoes back?" --k 1',
    "gptbuilder calibrate acme-support",
    'gptbuilder chat acme-support -m "How long does a refund take?"',
    'gptbuilder chat acme-support -m "What is your return window?"',
]
_TIMING = re.compile(r"\b\d+(\.\d+)? s\b")


@dataclass
class Example:
    """One `$ command` of a README console block and the output written under it."""

    command: str
    first: int  # index of the first output line in the README's lines
    end: int  # one past the last output line
    output: str


def examples(text: str) -> dict[str, Example]:
    """Every `$ gptbuilder ...` line in the README's console blocks (comments dropped) with its output."""
    lines = text.split("\n")
    found: dict[str, Example] = {}
    in_console = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            continue
        if not (in_console and line.startswith("$ gptbuilder ")) or line.rstrip().endswith("\\"):
            continue  # a command continued on the next line is shown, not one of the checked ones
        command = shlex.join(shlex.split(line[2:], comments=True))
        end = number + 1
        while end < len(lines) and not lines[end].startswith("$ ") and not lines[end].startswith("```"):
            end += 1
        while end > number + 1 and not lines[end - 1].strip():
            end -= 1  # the blank line before the next command separates, it is not output
        found[command] = Example(command, number + 1, end, "\n".join(lines[number + 1 : end]))
    return found


def normalise(output: str) -> str:
    """The output without what changes between runs (timings) or trailing spaces."""
    return "\n".join(_TIMING.sub("N s", line).rstrip() for line in output.strip("\n").split("\n"))


def key(command: str) -> str:
    """A command as `examples` spells it, for lookups."""
    return shlex.join(shlex.split(command, comments=True))


@contextmanager
def shipped_gpts(data_dir: Path) -> Iterator[None]:
    """Run from the repository root on the shipped GPTs, with fresh runtime data and fixed table width."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(
        GPTBUILDER_GPTS_DIR=str(REPO / "gpts"), GPTBUILDER_DATA_DIR=str(data_dir), COLUMNS=str(WIDTH),
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
    )
    for name in ("GPTBUILDER_CATALOG", "GPTBUILDER_CHROMA_URL", "TTY_COMPATIBLE", "FORCE_COLOR"):
        os.environ.pop(name, None)
    os.chdir(REPO)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run(command: str) -> str:
    """What the command prints to a terminal (stdout and stderr interleaved), through the CLI runner."""
    from typer.testing import CliRunner

    from gptbuilder.cli import app

    args = shlex.split(command, comments=True)
    assert args[0] == "gptbuilder", command
    result = CliRunner().invoke(app, args[1:])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, f"{command} failed:\n{result.output}"
    return result.output.rstrip("\n")


def real_outputs() -> dict[str, str]:
    """Run every command on the shipped GPTs, in order, in a fresh data folder."""
    with tempfile.TemporaryDirectory() as data, shipped_gpts(Path(data)):
        return {key(command): run(command) for command in COMMANDS}


def write(outputs: dict[str, str]) -> list[str]:
    """Put each command's real output under it in README.md; returns the commands that changed."""
    text = README.read_text(encoding="utf-8")
    found = examples(text)
    lines = text.split("\n")
    changed = []
    for command in sorted(outputs, key=lambda c: found[c].first, reverse=True):  # bottom up: indexes stay valid
        example = found[command]
        if normalise(example.output) != normalise(outputs[command]):
            lines[example.first : example.end] = [line.rstrip() for line in outputs[command].split("\n")]
            changed.append(command)
    README.write_text("\n".join(lines), encoding="utf-8")
    return changed


def main() -> None:
    """`python -m tests.readme_examples --write`: refresh the README's example outputs from a real run."""
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.readme_examples --write   (reruns the README's examples and writes their output)")
    missing = [c for c in COMMANDS if key(c) not in examples(README.read_text(encoding="utf-8"))]
    if missing:
        sys.exit(f"not in README.md (add a `$ ...` line in a console block first): {missing}")
    changed = write(real_outputs())
    print("\n".join(f"updated: {c}" for c in changed) or "README.md already matches a real run")
    print("then: cp README.md gpts/knowledge/gptbuilder-docs/README.md (the docs GPT reads its copy)")


if __name__ == "__main__":
    main()
