"""The regex check: named patterns, compiled once, refused when broken, stopped when they run away."""

from __future__ import annotations

import time

import pytest

from gptbuilder.moderation import Patterns
from gptbuilder.moderation.patterns import PATTERN_WINDOW, compile_pattern, longest_match


def test_each_match_is_named_by_its_pattern():
    check = Patterns({"ticket": r"TCK-\d{4}", "secret": r"password\s*[:=]"})
    found = check.findings("Password: x and tck-1234")
    assert [(f.category, f.start) for f in found] == [("secret", 0), ("ticket", 16)]
    assert check.check("nothing here") is None


def test_a_broken_pattern_or_one_matching_empty_text_is_a_value_error():
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_pattern("(unclosed")
    with pytest.raises(ValueError, match="matches empty text"):
        compile_pattern("a*")


def test_longest_match_is_the_patterns_width_capped_by_the_window():
    assert longest_match(r"TCK-\d{4}") == 8
    assert longest_match(r"foo|barbaz") == 6
    assert longest_match(r"\d+") == PATTERN_WINDOW
    assert Patterns({"a": r"ab", "b": r"abcd"}).longest == 4


def test_a_runaway_pattern_is_stopped_and_counts_as_a_match():
    check = Patterns({"evil": r"(x+x+)+y"}, timeout=0.05)
    started = time.perf_counter()
    found = check.check("x" * 5000)
    assert time.perf_counter() - started < 2
    assert found is not None and found.category == "evil"
