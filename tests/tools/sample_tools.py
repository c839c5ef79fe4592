"""Typed functions the function-tool tests import by dotted path."""

from __future__ import annotations

import time
from typing import Literal

from langchain_core.tools import ToolException, tool

NOT_A_FUNCTION = 42


def lookup_order(order_id: str, include_history: bool = False, carrier: Literal["ups", "dhl"] = "ups") -> dict:
    """Look up an order's shipping status.

    Use it when a customer asks where their order is.

    Args:
        order_id: The order number, like A-1001.
        include_history: Also list every tracking event.
        carrier: Which carrier shipped it.
    """
    result = {"order_id": order_id, "status": "shipped", "carrier": carrier}
    if include_history:
        result["history"] = ["packed", "shipped"]
    return result


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


async def add_later(a: int, b: int) -> int:
    """Add two whole numbers, asynchronously."""
    return a + b


def explode(reason: str) -> str:
    """Fail with a ValueError."""
    raise ValueError(f"cannot handle {reason}")


def refuse(reason: str) -> str:
    """Fail with a message meant for the model."""
    raise ToolException(f"refused: {reason}")


def sleepy(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "awake"


def huge(size: int) -> str:
    """Return `size` characters."""
    return "x" * size


def nothing() -> None:
    """Return nothing at all."""


def untyped(a, b: int):  # `a` has no type hint on purpose
    """Has a parameter without a type hint."""
    return a


def undocumented(a: int) -> int:  # no docstring on purpose
    return a


def star_args(*values: int) -> int:
    """Takes *args."""
    return sum(values)


class Thing:
    """A class, not a function."""


@tool
def shout(text: str) -> str:
    """Repeat the text in capitals."""
    return text.upper()
