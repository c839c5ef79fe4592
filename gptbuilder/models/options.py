"""Checking a spec's `model.options` the same way for every provider: known names, then each value.

A provider declares its options as a mapping from name to a check (or None when any value goes);
`option_problems` turns a spec's options into the (field, message) pairs `Provider.check` returns:
`("options", "unknown option(s) ...")` for names it does not know, `("options.<name>", "<value> is not ...")`
for a value its check refuses. An option set to null is left unset and not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..errors import did_you_mean

OptionCheck = Callable[[Any], "str | None"]
"""A value check: a message saying what the value should be when it is wrong, else None."""


def option_problems(
    options: Mapping[str, Any], known: Collection[str] | Mapping[str, OptionCheck | None], provider: str
) -> list[tuple[str, str]]:
    """(field, message) problems with `model.options`: unknown names first, then values their checks refuse."""
    problems = []
    unknown = sorted(set(map(str, options)) - set(known))
    if unknown:
        hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
        problems.append(
            ("options", f"unknown option(s) for provider {provider}: {', '.join(unknown)}{hint} (known: {', '.join(sorted(known))})")
        )
    if isinstance(known, Mapping):
        for name, check in known.items():
            value = options.get(name)
            if check is not None and value is not None and (message := check(value)) is not None:
                problems.append((f"options.{name}", message))
    return problems


def expect(accepts: Callable[[Any], bool], expected: str) -> OptionCheck:
    """A check that refuses values ``accepts`` rejects with "<value> is not <expected>"."""

    def check(value: Any) -> str | None:
        return None if accepts(value) else f"{value!r} is not {expected}"

    return check


def one_of(*choices: str) -> OptionCheck:
    """A check for a fixed set of words."""
    return expect(lambda value: value in choices, f"one of {', '.join(choices)}")


def boolean() -> OptionCheck:
    """A check for true or false."""
    return expect(lambda value: isinstance(value, bool), "true or false")


def number(low: float | None = None, high: float | None = None, *, whole: bool = False, meaning: str = "") -> OptionCheck:
    """A check for a number (an integer when ``whole``) within the inclusive bounds given."""
    kind = "a whole number" if whole else "a number"
    if low is not None and high is not None:
        expected = f"{kind} from {low:g} to {high:g}"
    elif low is not None:
        expected = f"{kind} of at least {low:g}"
    elif high is not None:
        expected = f"{kind} of at most {high:g}"
    else:
        expected = kind

    def accepts(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            return False
        return (low is None or value >= low) and (high is None or value <= high)

    return expect(accepts, f"{expected} ({meaning})" if meaning else expected)
