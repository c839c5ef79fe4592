"""Driving a stage, runner or output chain by hand: its events, and what its generator returned."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


def drain(generator: Generator[Any, None, Any]) -> tuple[list[Any], Any]:
    """Every event the generator yields, and its return value."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value
