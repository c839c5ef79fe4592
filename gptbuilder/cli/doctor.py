"""`gptbuilder doctor`: what this installation can do here, as a list of checks (text or --json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import typer

from ..settings import Settings

CheckStatus = Literal["ok", "warning", "error"]
# How each sandbox kind reads in the report; any other kind means the python tool is off.
_SANDBOX_STATUS: dict[str, CheckStatus] = {"bubblewrap": "ok", "unsafe-local": "warning"}


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ok, warning (works with a caveat) or error (a feature is off)."""

    name: str
    status: CheckStatus
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def sandbox_check(settings: Settings) -> Check:
    """Which sandbox the `python` tool runs code in, and why."""
    from ..tools.sandbox import sandbox_status

    sandbox = sandbox_status()
    status = _SANDBOX_STATUS.get(sandbox.kind, "error")
    return Check("sandbox", status, f"python tool: {sandbox.kind}: {sandbox.detail}",
                 {"kind": sandbox.kind, "version": sandbox.version, "reason": sandbox.detail})


# Each entry checks one thing; a check that raises is reported as an error of its own, never a traceback.
CHECKS: list[tuple[str, Callable[[Settings], Check]]] = [
    ("sandbox", sandbox_check),
]


def run_checks(settings: Settings) -> list[Check]:
    """Every check's outcome, in order."""
    results = []
    for name, check in CHECKS:
        try:
            results.append(check(settings))
        except Exception as exc:
            results.append(Check(name, "error", f"the check itself failed: {type(exc).__name__}: {exc}"))
    return results


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("doctor")(doctor)


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON")] = False,
) -> None:
    """Check what this machine can do (which sandbox the python tool uses, and why); exit 1 on any error."""
    results = run_checks(ctx.obj)
    failed = any(check.status == "error" for check in results)
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "checks": [asdict(check) for check in results]}, indent=2))
    else:
        for check in results:
            typer.echo(f"{check.status:<7} {check.summary}")
    if failed:
        raise typer.Exit(1)
