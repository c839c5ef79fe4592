"""The README's example outputs are what the shipped GPTs print on the embedded model (timings aside)."""

from __future__ import annotations

import pytest

from .readme_examples import COMMANDS, README, examples, key, normalise, real_outputs

FIX = "run `python -m tests.readme_examples --write` to put a real run's output into README.md"


def test_every_checked_command_is_in_the_readme():
    found = examples(README.read_text(encoding="utf-8"))
    assert [c for c in COMMANDS if key(c) not in found] == [], f"add these `$ ...` lines to a console block, then {FIX}"


def test_examples_are_parsed_with_their_output_and_without_the_blank_separator():
    text = "```console\n$ gptbuilder list   # all\nid  name\n\n$ gptbuilder chat x -m \"Hi\"\nHello!\n\nBye.\n```\n"
    found = examples(text)
    assert found["gptbuilder list"].output == "id  name"
    assert found[key('gptbuilder chat x -m "Hi"')].output == "Hello!\n\nBye."
    assert normalise("x: 2 added in 5.56 s [rebuilt]  \n") == "x: 2 added in N s [rebuilt]"


@pytest.mark.slow
def test_the_readme_shows_what_the_shipped_gpts_print():
    found = examples(README.read_text(encoding="utf-8"))
    drift = []
    for command, output in real_outputs().items():
        if normalise(found[command].output) != normalise(output):
            drift.append(f"$ {command}\n--- README.md says:\n{found[command].output}\n--- a run prints:\n{output}")
    assert not drift, f"{FIX}\n\n" + "\n\n".join(drift)
