"""`model.options` checks: unknown names with a suggestion, then each value, as (field, message) pairs."""

from __future__ import annotations

from gptbuilder.models.options import boolean, expect, number, one_of, option_problems


def test_option_problems_lists_unknown_and_known_options():
    assert option_problems({"a": 1}, {"a", "b"}, "p") == []
    [(field, message)] = option_problems({"z": 1, "y": 2, "a": 3}, {"a", "b"}, "p")
    assert field == "options"
    assert message == "unknown option(s) for provider p: y, z (known: a, b)"


def test_option_problems_suggests_the_option_meant():
    [(_, message)] = option_problems({"devize": "cpu"}, {"device", "dtype"}, "p")
    assert message == "unknown option(s) for provider p: devize; did you mean 'device'? (known: device, dtype)"


def test_option_problems_checks_each_value_and_names_its_field():
    known = {"mode": one_of("fast", "slow"), "level": number(1, 9, whole=True), "free": None}
    assert option_problems({"mode": "fast", "level": 3, "free": object()}, known, "p") == []
    assert option_problems({"mode": None, "level": None}, known, "p") == []  # null leaves an option unset
    assert option_problems({"mode": "quick", "level": 3.5, "extra": 1}, known, "p") == [
        ("options", "unknown option(s) for provider p: extra (known: free, level, mode)"),
        ("options.mode", "'quick' is not one of fast, slow"),
        ("options.level", "3.5 is not a whole number from 1 to 9"),
    ]
    assert option_problems({"level": True}, known, "p") == [("options.level", "True is not a whole number from 1 to 9")]


def test_value_checks_say_what_the_value_should_be():
    assert boolean()(True) is None and boolean()("yes") == "'yes' is not true or false"
    assert one_of("a", "b")("c") == "'c' is not one of a, b"
    assert number()(1.5) is None and number()("1") == "'1' is not a number"
    assert number(0)(-1) == "-1 is not a number of at least 0"
    assert number(high=2)(3) == "3 is not a number of at most 2"
    assert number(-1, 1, meaning="a cosine similarity")(2) == "2 is not a number from -1 to 1 (a cosine similarity)"
    assert number(whole=True)(2.0) == "2.0 is not a whole number"
    assert expect(lambda v: isinstance(v, dict), "a mapping")([]) == "[] is not a mapping"
