"""Driving a stage, runner or output chain by hand: its events, and what its generator returned."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from gptbuilder.events import TextDelta


def drain(generator: Generator[Any, None, Any]) -> tuple[list[Any], Any]:
    """Every event the generator yields, and its return value."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


class HoldAll:
    """An output stage that holds every piece of text until the end, then lets it out in one piece."""

    halted = None

    def __init__(self):
        self.held: list[str] = []

    def feed(self, event):
        if isinstance(event, TextDelta):
            self.held.append(event.text)
            return ()
        return (event,)

    def finish(self):
        return (TextDelta("".join(self.held)),)
