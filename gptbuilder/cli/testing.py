"""`gptbuilder test`: run the `tests:` of GPT specs, print a table, write a JSON report, exit 1 on any failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..catalog import load_catalog
from ..settings import Settings
from ..store import Store
from ..testing import TestProgress, TestReport, parse_model_override, run_tests, write_report
from .progress import StderrProgress, Update, progress_of


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("test")(test)


def test(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="GPT ids [default: every GPT]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table")] = False,
    model_override: Annotated[
        list[str] | None,
        typer.Option(
            "--model-override",
            help="Run on another model: provider:name (openai:gpt-4o-mini) or key=value of model: "
            "(base_url=..., api_key_env=...); repeatable",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Where to write the JSON report [default: DATA/tests/report.json]")
    ] = None,
) -> None:
    """Run GPTs' test cases (greedy, seeded) and store the results per spec version."""
    settings: Settings = ctx.obj
    override = parse_model_override(model_override or [])
    store = Store(settings.gpts_dir, data_dir=settings.data_dir, catalog=load_catalog(settings.catalog_path))
    result = run_tests(
        store, ids or [], data_dir=settings.data_dir, model_override=override, progress=_case_bars(progress_of(ctx))
    )
    path = write_report(result, report or settings.data_dir / "tests" / "report.json")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_table(result)
        typer.echo(_summary(result) + f" — report: {path}")
    if not result.ok:
        raise typer.Exit(1)


def _case_bars(display: StderrProgress) -> TestProgress:
    """One bar per GPT, moved as its cases finish (a GPT that fails to load leaves its bar to the next one)."""
    current: dict[str, tuple[Update, int]] = {}

    def progress(gpt_id: str, done: int, total: int) -> None:
        for other, (update, other_total) in list(current.items()):
            if other != gpt_id:
                update(other_total, other_total)
                del current[other]
        if gpt_id not in current:
            current[gpt_id] = (display.bar(f"testing {gpt_id} (cases)", total), total)
        current[gpt_id][0](done, total)

    return progress


def _print_table(report: TestReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("gpt", "case", "result", "ms", "detail", box=None, pad_edge=False)
    for gpt in report.results:
        if gpt.error is not None:
            table.add_row(gpt.gpt, "", "ERROR", "", gpt.error)
        elif not gpt.cases:
            table.add_row(gpt.gpt, "", "no tests", "", "add a tests: block to its spec")
        for case in gpt.cases:
            detail = "; ".join(case.failures) or _passed_detail(case)
            table.add_row(gpt.gpt, case.name, case.status.upper(), str(case.latency_ms or ""), detail)
        if gpt.cases:
            corrected = sum(case.corrected for case in gpt.cases)
            grounding = f"{gpt.unsupported_claims} unsupported claims in {gpt.total} answers; {corrected} sentences corrected"
            table.add_row(gpt.gpt, "(grounding)", "", "", grounding)
    Console(markup=False, highlight=False, soft_wrap=True).print(table)


def _passed_detail(case) -> str:
    if case.curated:
        return "curated answer"
    if case.tool_calls:
        return "called " + ", ".join(call["name"] for call in case.tool_calls)
    if case.retrieved and not case.answer:
        return "retrieved " + ", ".join(dict.fromkeys(Path(source).name for source in case.retrieved))
    answer = " ".join(case.answer.split())
    return answer if len(answer) <= 60 else answer[:59] + "…"


def _summary(report: TestReport) -> str:
    counts = report.counts()
    parts = [f"{counts['passed']} passed", f"{counts['failed']} failed", f"{counts['errors']} errors"]
    extra = []
    if counts["gpts_in_error"]:
        extra.append(f"{counts['gpts_in_error']} could not load")
    if counts["gpts_without_tests"]:
        extra.append(f"{counts['gpts_without_tests']} without tests")
    gpts = f"{counts['gpts']} GPT{'s' if counts['gpts'] != 1 else ''}" + (f" ({', '.join(extra)})" if extra else "")
    return f"{', '.join(parts)} in {gpts}, {report.seconds:.1f} s"
