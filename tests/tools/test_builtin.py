"""Built-in tools: calculator, current_time, python and fetch_url, and building them from a spec's options."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from gptbuilder.errors import ToolError
from gptbuilder.spec import BUILTIN_TOOLS, BuiltinTool
from gptbuilder.tools.builtin import BUILTINS, builtin_tool, calculate, current_time_tool


def call(tool: BaseTool, **args) -> ToolMessage:
    """Invoke `tool` the way an agent does, with a tool call, and return its message."""
    return tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})


# --- calculator -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 2", "4"),
        ("(3 + 4) * 2 / 7", "2"),
        ("0.1 + 0.2", "0.3"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("-(+3)", "-3"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(2.345, 2)", "2.35"),
        ("min(4, 2, 8) + max(1, 9)", "11"),
        ("log(100, 10)", "2"),
        ("exp(0) + sin(0) + cos(0) + tan(0)", "2"),
        ("pi", "3.14159265358979"),
        ("e", "2.71828182845905"),
        ("math.sqrt(2) ** 2", "2"),
        ("12 × 3 ÷ 4 − 1", "8"),
        ("2 + 2 =", "4"),
        ("2 ** 100", "1267650600228229401496703205376"),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: str):
    message = call(builtin_tool("calculator"), expression=expression)
    assert message.status == "success"
    assert message.content == f"{' '.join(expression.split()).rstrip('= ')} = {expected}"


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("2 ^ 10", "use ** for powers"),
        ("sqrt(-1)", "sqrt(-1) is undefined"),
        ("log(0)", "undefined"),
        ("sqr(4)", "did you mean 'sqrt'?"),
        ("x + 1", "unknown constant 'x'"),
        ("1,000 + 1", "without thousands separators"),
        ("'text'", "not a number"),
        ("True + 1", "not a number"),
        ("1j", "not a number"),
        ("(-8) ** (1/3)", "not a real number"),
        ("1e308 * 10", "not a finite number"),
        ("exp(1000)", "too large"),
        ("10 ** 3000 * 10 ** 3000", "too large"),
        ("round(5, -10 ** 9)", "round(x, n) needs a whole n"),
        ("round(x=1)", "positional arguments only"),
        ("round(1.5, ndigits=1)", "positional arguments only"),
        ("min()", "min()"),
        ("2 +", "cannot read"),
        ("", "empty"),
        ("1 < 2", "compare expressions are not supported"),
        ("[1, 2]", "list expressions are not supported"),
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('echo hacked')", "only plain names"),
        ("(1).__class__", "only plain names"),
        ("lambda: 1", "not supported"),
    ],
)
def test_calculator_explains_bad_input_to_the_model(expression: str, says: str):
    message = call(builtin_tool("calculator"), expression=expression)
    assert message.status == "error"
    assert says in message.content


@pytest.mark.parametrize("expression", ["9**9**9", "10**10**10", "2**(2**(2**(2**(2**2))))", "9**9**9**9"])
def test_calculator_refuses_huge_powers_quickly(expression: str):
    started = time.monotonic()
    content = builtin_tool("calculator").invoke({"expression": expression})
    assert time.monotonic() - started < 1
    assert "too large" in content and "digits" in content


def test_calculator_refuses_long_expressions_quickly():
    started = time.monotonic()
    content = builtin_tool("calculator").invoke({"expression": "1+" * 5_000 + "1"})
    assert time.monotonic() - started < 1
    assert "10,001 characters" in content and "at most 500" in content
    nested = builtin_tool("calculator").invoke({"expression": "(" * 240 + "1" + ")" * 240})
    assert "cannot read" in nested  # the parser's nesting limit, reported, not raised


def test_calculate_returns_numbers():
    assert calculate("6 / 4") == 1.5
    assert calculate("2 ** 9999").bit_length() == 10_000


def test_invalid_arguments_go_back_to_the_model():
    calculator = builtin_tool("calculator")
    assert calculator.invoke({}) == "invalid arguments for calculator: expression: Field required"
    message = call(calculator, expression=["1"])
    assert message.status == "error"
    assert "expression: Input should be a valid string" in message.content


def test_calculator_works_async():
    assert asyncio.run(builtin_tool("calculator").ainvoke({"expression": "3 * 3"})) == "3 * 3 = 9"


# --- current_time -----------------------------------------------------------------------------

WINTER = datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
SUMMER = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (WINTER, "UTC", "2026-11-28T12:00:05+00:00 (Saturday, UTC, UTC)"),
        (WINTER, "Europe/Paris", "2026-11-28T13:00:05+01:00 (Saturday, Europe/Paris, CET)"),
        (SUMMER, "Europe/Paris", "2026-07-02T00:30:00+02:00 (Thursday, Europe/Paris, CEST)"),
        (SUMMER, "america/new_york", "2026-07-01T18:30:00-04:00 (Wednesday, America/New_York, EDT)"),
        (WINTER, "New York", "2026-11-28T07:00:05-05:00 (Saturday, America/New_York, EST)"),
        (WINTER, "Tokyo", "2026-11-28T21:00:05+09:00 (Saturday, Asia/Tokyo, JST)"),
        (WINTER, "Asia/Kolkata", "2026-11-28T17:30:05+05:30 (Saturday, Asia/Kolkata, IST)"),
        (WINTER, "UTC+2", "2026-11-28T14:00:05+02:00 (Saturday, UTC+02:00, UTC+02:00)"),
        (WINTER, "-03:30", "2026-11-28T08:30:05-03:30 (Saturday, UTC-03:30, UTC-03:30)"),
        (WINTER, " ", "2026-11-28T12:00:05+00:00 (Saturday, UTC, UTC)"),
    ],
)
def test_current_time_in_a_zone(moment: datetime, zone: str, expected: str):
    tool = current_time_tool(clock=lambda: moment)
    assert tool.invoke({"timezone": zone}) == expected


def test_current_time_defaults_to_utc_now():
    before = datetime.now(UTC).replace(microsecond=0)
    text = builtin_tool("current_time").invoke({})
    stamp = datetime.fromisoformat(text.split(" ")[0])
    assert stamp.utcoffset().total_seconds() == 0
    assert before <= stamp <= datetime.now(UTC)
    assert f"({stamp:%A}, UTC, UTC)" in text


@pytest.mark.parametrize(
    ("zone", "says"),
    [
        ("Europe/Pari", "unknown time zone 'Europe/Pari'; did you mean 'Europe/Paris'?"),
        ("America/New_Yrok", "did you mean 'America/New_York'?"),
        ("Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("../../../etc/passwd", "use an IANA name like 'Europe/Paris'"),
        ("UTC+99", "unknown time zone"),
    ],
)
def test_current_time_explains_unknown_zones(zone: str, says: str):
    message = call(builtin_tool("current_time"), timezone=zone)
    assert message.status == "error"
    assert says in message.content


# --- python -----------------------------------------------------------------------------------


def test_python_tool_returns_what_the_code_prints():
    tool = builtin_tool("python")
    assert tool.invoke({"code": "import statistics\nprint(statistics.mean([1, 2, 3, 4]))"}) == "2.5"
    assert tool.invoke({"code": "x = 1"}).startswith("(no output")
    assert "stderr:\nwarned" in tool.invoke({"code": "import sys\nprint('out')\nprint('warned', file=sys.stderr)"})


def test_python_tool_errors_come_back_as_error_messages():
    message = call(builtin_tool("python"), code="def f():\n    return 1 / 0\nprint('before')\nf()")
    assert message.status == "error"
    assert message.content.startswith("before")
    assert 'File "main.py", line 2, in f' in message.content
    assert message.content.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "<sandbox>" not in message.content


def test_python_tool_uses_the_spec_options():
    tool = builtin_tool("python", {"timeout": 1, "max_output_chars": 500})
    started = time.monotonic()
    message = call(tool, code="print('started', flush=True)\nwhile True:\n    pass")
    assert time.monotonic() - started < 5
    assert message.status == "error"
    assert message.content.startswith("started")
    assert "timed out after 1 s" in message.content
    long = tool.invoke({"code": "print('y' * 100_000)"})
    assert len(long) < 700 and "characters omitted" in long
    assert "Limits: 1 s, 512 MB." in tool.description


def test_python_tool_refuses_empty_and_oversized_code():
    tool = builtin_tool("python")
    assert "empty" in tool.invoke({"code": "   "})
    assert "at most 100,000" in tool.invoke({"code": "#" * 100_001})


def test_python_tool_memory_limit_is_reported():
    message = call(builtin_tool("python", {"memory_mb": 128}), code="data = bytearray(1024 ** 3)")
    assert message.status == "error"
    assert "ran out of memory (limit 128 MB)" in message.content


# --- building from a spec ---------------------------------------------------------------------


def test_every_builtin_named_by_the_spec_is_buildable():
    for name in BUILTIN_TOOLS:
        tool = builtin_tool(name)
        assert isinstance(tool, BaseTool)
        assert tool.name == name
        assert tool.handle_tool_error is True
        assert 40 < len(tool.description) < 600
        assert tool.tool_call_schema.model_json_schema()["properties"]
    assert set(BUILTINS) == set(BUILTIN_TOOLS)


def test_tools_have_argument_schemas_for_the_model():
    assert builtin_tool("calculator").args["expression"]["type"] == "string"
    assert builtin_tool("current_time").args["timezone"]["default"] == "UTC"
    assert "print()" in builtin_tool("python").args["code"]["description"]


def test_builtin_from_a_spec_entry():
    entry = BuiltinTool.model_validate({"builtin": "python", "options": {"timeout": 3, "memory_mb": 256}})
    tool = builtin_tool(entry.builtin, entry.options)
    assert "Limits: 3 s, 256 MB." in tool.description


@pytest.mark.parametrize(
    ("name", "options", "says"),
    [
        ("calculater", {}, "unknown built-in tool 'calculater'; did you mean 'calculator'?"),
        ("shell", {}, "built-ins: calculator, current_time, fetch_url, python"),
        ("fetch_url", {"timout": 5}, "fetch_url: unknown option 'timout'; did you mean 'timeout'?"),
        ("fetch_url", {"max_chars": 10}, "options.max_chars: Input should be greater than or equal to 200"),
        ("fetch_url", {"allow_hosts": ["https://example.com/docs"]}, "write just the host, e.g. 'example.com'"),
        ("fetch_url", {"allow_hosts": []}, "options.allow_hosts: List should have at least 1 item"),
        ("python", {"timout": 5}, "python: unknown option 'timout'; did you mean 'timeout'?"),
        ("python", {"memory": 5}, "options are: timeout, memory_mb, max_output_chars"),
        ("python", {"timeout": 0}, "options.timeout: Input should be greater than 0"),
        ("python", {"memory_mb": "lots"}, "options.memory_mb: Input should be a valid integer"),
        ("python", ["timeout"], "options must be a mapping"),
        ("calculator", {"precision": 3}, "calculator: unknown option 'precision'; it takes no options"),
    ],
)
def test_builtin_tool_names_what_to_fix(name: str, options, says: str):
    with pytest.raises(ToolError) as caught:
        builtin_tool(name, options)
    assert says in str(caught.value)


# --- fetch_url --------------------------------------------------------------------------------

PAGE = b"""<!doctype html><html><head><title>Acme &amp; Co</title><style>body { color: red }</style>
<script>var secret = "SCRIPT-CONTENT";</script></head>
<body><h1>Returns</h1><p>Shoes can be returned within <b>30 days</b>.</p>
<script>document.write("MORE-SCRIPT")</script><noscript>enable js</noscript></body></html>"""
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


class Pages(BaseHTTPRequestHandler):
    """Fixed routes: path -> (status, headers, body)."""

    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {
        "/page": (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE),
        "/latin1": (200, {"Content-Type": "text/html; charset=iso-8859-1"}, "<p>café</p>".encode("latin-1")),
        "/text": (200, {"Content-Type": "text/plain"}, b"line one\nline two"),
        "/json": (200, {"Content-Type": "application/json"}, b'{"size": 42, "name": "runner"}'),
        "/missing": (404, {"Content-Type": "text/html"}, b"<html><body><p>No such page, sorry.</p></body></html>"),
        "/image": (200, {"Content-Type": "image/png"}, PNG),
        "/big": (200, {"Content-Type": "text/plain"}, b"word " * 20_000),
        "/empty": (200, {"Content-Type": "text/html"}, b"<html><body><script>app()</script></body></html>"),
        "/to-page": (302, {"Location": "/page"}, b""),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    }

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"not here"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """A stdlib HTTP server on a loopback port in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)  # quick shutdown
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)



def fetch(url: str, *, allow_private: bool = True, **options) -> ToolMessage:
    return call(builtin_tool("fetch_url", options, allow_private=allow_private), url=url)


def test_fetch_url_returns_an_html_page_as_readable_text(site: str):
    message = fetch(f"{site}/page")
    assert message.status == "success"
    head, _, body = message.content.partition("\n\n")
    assert head.splitlines() == [f"URL: {site}/page", "Status: 200 OK", "Content-Type: text/html",
                                 "Title: Acme & Co"]
    assert body == "Returns\n\nShoes can be returned within 30 days."
    for hidden in ("SCRIPT-CONTENT", "MORE-SCRIPT", "color: red", "enable js", "<"):
        assert hidden not in message.content


def test_fetch_url_decodes_with_the_declared_charset(site: str):
    assert fetch(f"{site}/latin1").content.endswith("\n\ncafé")


def test_fetch_url_returns_text_and_json_as_is(site: str):
    assert fetch(f"{site}/text").content.endswith("Content-Type: text/plain\n\nline one\nline two")
    assert fetch(f"{site}/json").content.endswith('\n\n{"size": 42, "name": "runner"}')


def test_fetch_url_shows_the_final_url_after_a_redirect(site: str):
    message = fetch(f"{site}/to-page")
    assert message.status == "success"
    assert message.content.startswith(f"URL: {site}/page (redirected from {site}/to-page)\nStatus: 200 OK")
    assert "30 days" in message.content


def test_fetch_url_refuses_loopback_unless_private_networks_are_allowed(site: str, connections: list[str]):
    message = fetch(f"{site}/page", allow_private=False)
    assert message.status == "error"
    assert "refused to connect to 127.0.0.1: it is a loopback address" in message.content
    assert "allow_private_network: true" in message.content
    assert connections == []
    assert builtin_tool("fetch_url").invoke({"url": f"{site}/page"}).startswith("could not fetch")  # the default
    assert fetch(f"{site}/page", allow_private=True).status == "success"


def test_fetch_url_refuses_a_redirect_to_the_metadata_service_even_with_private_allowed(
    site: str, connections: list[str]
):
    message = fetch(f"{site}/to-metadata", allow_private=True)
    assert message.status == "error"
    assert "refused to connect to 169.254.169.254: it is a cloud metadata address" in message.content
    assert set(connections) == {"127.0.0.1"}


def test_fetch_url_refuses_a_redirect_to_a_file_url(site: str):
    message = fetch(f"{site}/to-file")
    assert message.status == "error"
    assert "only http and https" in message.content


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "fetch_url only fetches http:// and https:// URLs, not file://"),
        ("ftp://127.0.0.1/pub/file.txt", "fetch_url only fetches http:// and https:// URLs, not ftp://"),
        ("FILE:///etc/passwd", "not file://"),
        ("example.com/page", "'example.com/page' is not a full web address; write it with http:// or https://"),
        ("", "is not a full web address"),
    ],
)
def test_fetch_url_refuses_other_schemes(url: str, says: str, connections: list[str]):
    message = fetch(url)
    assert message.status == "error"
    assert says in message.content
    assert connections == []


def test_fetch_url_reports_an_http_error_readably(site: str):
    message = fetch(f"{site}/missing")
    assert message.status == "error"
    assert message.content == f"{site}/missing answered HTTP 404 Not Found: No such page, sorry."


def test_fetch_url_refuses_a_body_over_max_bytes(site: str):
    message = fetch(f"{site}/big", max_bytes=10_000)
    assert message.status == "error"
    assert "100,000 bytes, over the 10,000-byte limit" in message.content
    assert "fetch_url reads at most 10,000 bytes" in message.content


def test_fetch_url_truncates_long_text_to_max_chars(site: str):
    message = fetch(f"{site}/big", max_chars=1_000)
    assert message.status == "success"
    body = message.content.partition("\n\n")[2]
    assert body.startswith("word word")
    assert body.endswith("[truncated: showing the first 1,000 of 99,999 characters]")
    assert len(body) < 1_100


def test_fetch_url_names_a_content_type_it_cannot_read(site: str):
    message = fetch(f"{site}/image")
    assert message.status == "error"
    assert message.content == (
        f"{site}/image is image/png (208 bytes), not a page fetch_url can read; it reads HTML, plain text and JSON"
    )


def test_fetch_url_says_when_a_page_has_no_readable_text(site: str):
    assert "no readable text; it may need JavaScript" in fetch(f"{site}/empty").content


def test_fetch_url_allow_hosts_limits_where_it_goes(site: str, connections: list[str]):
    message = fetch(f"{site}/page", allow_hosts=["example.com"])
    assert message.status == "error"
    assert "refused to contact 127.0.0.1: not an allowed host (allowed: example.com)" in message.content
    assert connections == []
    assert fetch(f"{site}/page", allow_hosts=["127.0.0.1"]).status == "success"


def test_fetch_url_times_out(connections: list[str]):
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        message = fetch(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.5)
    assert message.status == "error"
    assert "within 0.5 s" in message.content
    assert time.monotonic() - started < 5


def test_fetch_url_from_a_spec_entry_has_the_url_argument():
    entry = BuiltinTool.model_validate({"builtin": "fetch_url", "options": {"allow_hosts": ["Docs.Example.com"]}})
    tool = builtin_tool(entry.builtin, entry.options)
    assert "from docs.example.com" in tool.description
    assert set(tool.args) == {"url"}
