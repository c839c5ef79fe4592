"""The admin's usage page: requests, tokens and estimated cost per GPT, API key and day."""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import date, timedelta

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from .errors import APIError
from .usage import UsageLine

router = APIRouter(prefix="/admin", include_in_schema=False)

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1f2328; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 2rem; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #d0d7de; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
@media (prefers-color-scheme: dark) { body { background: #0d1117; color: #e6edf3; } th, td { border-color: #30363d; } }
"""


def _cost(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _totals(lines: list[UsageLine], key: str) -> list[tuple[str, int, int, int, float | None]]:
    """(group, requests, prompt tokens, completion tokens, cost) per value of ``key``, busiest first."""
    groups: dict[str, list[UsageLine]] = defaultdict(list)
    for line in lines:
        groups[getattr(line, key)].append(line)
    rows = []
    for name, group in groups.items():
        costs = [g.cost for g in group if g.cost is not None]
        rows.append((
            name,
            sum(g.requests for g in group),
            sum(g.prompt_tokens for g in group),
            sum(g.completion_tokens for g in group),
            round(sum(costs), 6) if costs else None,
        ))
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def _table(caption: str, head: list[str], rows: list[list[str]], numeric_from: int) -> str:
    cells = "".join(f"<th{' class=n' if i >= numeric_from else ''}>{html.escape(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i >= numeric_from else ''}>{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    ) or f"<tr><td colspan={len(head)}>No usage in this period.</td></tr>"
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def render_usage(lines: list[UsageLine], start: date, end: date) -> str:
    """The usage page's HTML: totals per GPT and per key, then every day's lines."""
    summary = ["GPT", "requests", "prompt tokens", "completion tokens", "est. cost"]
    per_gpt = [[n, str(r), str(p), str(c), _cost(x)] for n, r, p, c, x in _totals(lines, "gpt_id")]
    per_key = [[n, str(r), str(p), str(c), _cost(x)] for n, r, p, c, x in _totals(lines, "key_id")]
    daily = [
        [line.day.isoformat(), line.gpt_id, line.key_id, str(line.requests), str(line.prompt_tokens),
         str(line.completion_tokens), _cost(line.cost)]
        for line in lines
    ]
    period = f"{start.isoformat()} to {end.isoformat()}"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>Usage — gptbuilder</title><style>{_STYLE}</style></head><body>"
        f"<h1>Usage</h1><p>{html.escape(period)} · keys are shown by their id, never the key itself.</p>"
        + _table("Per GPT", summary, per_gpt, 1)
        + _table("Per API key", ["key id", *summary[1:]], per_key, 1)
        + _table("Per day", ["day", "GPT", "key id", *summary[1:]], daily, 3)
        + "</body></html>"
    )


@router.get("/usage", response_class=HTMLResponse)
async def usage_page(request: Request, days: int = Query(30, ge=1, le=3660, description="How many days back")) -> HTMLResponse:
    """Everyone's usage for the last ``days`` days; admin keys only (every caller is admin when keys are off)."""
    state = request.app.state.gptbuilder
    caller = state.caller(request)
    if not caller.admin:
        raise APIError(403, "the usage page is for admin keys (GPTBUILDER_ADMIN_API_KEYS)", code="admin_only")
    end = date.today()
    start = end - timedelta(days=days - 1)
    lines = await run_in_threadpool(state.ledger.lines, start=start, end=end)
    return HTMLResponse(render_usage(lines, start, end))
