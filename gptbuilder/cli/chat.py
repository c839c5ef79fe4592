"""`gptbuilder chat`: talk to a GPT from the terminal."""
from __future__ import annotations
import typer
def register(app: typer.Typer) -> None:
    pass
