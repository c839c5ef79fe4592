"""The built-in tools a spec names by word: calculator, current_time, python and fetch_url."""

from __future__ import annotations

import ast
import html
import ipaddress
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ToolError, did_you_mean
from ..spec import BuiltinTool
from .compile import ToolProblem
from .functions import validation_handler
from .network import NetworkError, ResponseTooLargeError, guarded_client
from .sandbox import SandboxResult, require_sandbox, run_python

MAX_EXPRESSION_CHARS = 500
MAX_RESULT_BITS = 10_000  # about 3,000 decimal digits
MAX_ROUND_DIGITS = 100
MAX_CODE_CHARS = 100_000


# --- calculator -------------------------------------------------------------------------------


class CalculatorInput(BaseModel):
    """Arguments of the calculator tool."""

    expression: str = Field(description="Arithmetic to evaluate, e.g. '(1299 * 0.8) + 5.99' or 'sqrt(2) * pi'")


_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_SUPPORTED = "numbers, + - * / // % **, parentheses, " + ", ".join(_FUNCTIONS) + ", pi and e"


def calculate(expression: str) -> int | float:
    """Evaluate arithmetic without eval: ToolException with a clear message for anything else."""
    text = expression.strip().rstrip("=").strip()
    text = text.replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise ToolException("the expression is empty; write arithmetic like '2 * (3 + 4)'")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolException(
            f"the expression has {len(text):,} characters; the calculator takes at most {MAX_EXPRESSION_CHARS}. "
            "Split it into smaller steps"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = getattr(exc, "msg", None) or str(exc)
        raise ToolException(f"cannot read {text!r} as arithmetic ({detail}); supported: {_SUPPORTED}") from None
    try:
        value = _evaluate(tree.body)
    except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as exc:  # a case missed below
        raise ToolException(f"cannot evaluate {text!r}: {exc}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolException("the result is not a finite number (overflow or undefined)")
    return value


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolException(f"{node.value!r} is not a number; the calculator only works with real numbers")
        return node.value
    if isinstance(node, ast.Name | ast.Attribute):
        return _CONSTANTS[_known_name(node, _CONSTANTS, "constant")]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _evaluate(node.operand)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise ToolException("use ** for powers, e.g. 2 ** 10 (^ is not supported)")
        if type(node.op) not in _OPERATORS:
            raise ToolException(f"that operator is not supported; supported: {_SUPPORTED}")
        return _binary(node.op, _evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Tuple):
        raise ToolException("write one expression, and numbers without thousands separators (1000, not 1,000)")
    raise ToolException(f"{type(node).__name__.lower()} expressions are not supported; supported: {_SUPPORTED}")


def _known_name(node: ast.AST, table: dict[str, Any], kind: str) -> str:
    # Models often write math.sqrt or math.pi; accept the math. prefix.
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math":
        name = node.attr
    elif isinstance(node, ast.Name):
        name = node.id
    else:
        raise ToolException(f"only plain names are supported; supported: {_SUPPORTED}")
    if name not in table:
        raise ToolException(f"unknown {kind} {name!r}{did_you_mean(name, table)}; supported: {_SUPPORTED}")
    return name


def _binary(op: ast.operator, left: int | float, right: int | float) -> int | float:
    if isinstance(op, ast.Pow):
        _check_power(left, right)
    elif (isinstance(op, ast.Mult) and isinstance(left, int) and isinstance(right, int)
          and left.bit_length() + right.bit_length() > MAX_RESULT_BITS):
        raise _too_large()
    try:
        result = _OPERATORS[type(op)](left, right)
    except ZeroDivisionError:
        raise ToolException("division by zero") from None
    except OverflowError:
        raise _too_large() from None
    if isinstance(result, complex):
        raise ToolException("the result is not a real number (a negative number to a fractional power)")
    if isinstance(result, int) and result.bit_length() > MAX_RESULT_BITS:
        raise _too_large()
    return result


def _check_power(base: int | float, exponent: int | float) -> None:
    magnitude = abs(base)
    if magnitude <= 1 or exponent <= 0:
        return
    bits = exponent * math.log2(magnitude)
    if bits > MAX_RESULT_BITS:
        raise _too_large(digits=bits * math.log10(2))


def _too_large(digits: float | None = None) -> ToolException:
    size = f" (about {digits:,.0f} digits)" if digits else ""
    return ToolException(
        f"the result is too large{size}; the calculator handles numbers up to about "
        f"{int(MAX_RESULT_BITS * math.log10(2)):,} digits"
    )


def _call(node: ast.Call) -> int | float:
    name = _known_name(node.func, _FUNCTIONS, "function")
    if node.keywords:
        raise ToolException(f"{name}() takes positional arguments only, e.g. round(2.345, 2)")
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        raise ToolException(f"{name}() takes plain arguments")
    args = [_evaluate(arg) for arg in node.args]
    if name == "round" and len(args) == 2 and (not isinstance(args[1], int) or abs(args[1]) > MAX_ROUND_DIGITS):
        raise ToolException(f"round(x, n) needs a whole n between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}")
    try:
        result = _FUNCTIONS[name](*args)
    except OverflowError:
        raise _too_large() from None
    except ValueError as exc:
        shown = ", ".join(format_number(a) for a in args)
        raise ToolException(f"{name}({shown}) is undefined ({exc})") from None
    except TypeError as exc:
        raise ToolException(f"{name}(): {exc}") from None
    return result


def format_number(value: int | float) -> str:
    """A result as the model should read it: integers exactly, floats to 15 significant digits."""
    if isinstance(value, int):
        return str(value)
    return format(value, ".15g")


def _shown(expression: str) -> str:
    """The expression as the result repeats it: "1299 * 0.8 = 1039.2" rather than "1039.2", since with the
    sum beside it even the embedded 135M model restates the result instead of inventing one."""
    return " ".join(expression.split()).rstrip("= ")


def calculator_tool() -> BaseTool:
    """The calculator tool: exact arithmetic, safe for any input."""
    return StructuredTool.from_function(
        func=lambda expression: f"{_shown(expression)} = {format_number(calculate(expression))}",
        name="calculator",
        description=(
            "Evaluate an arithmetic expression and return the number. Use it for any arithmetic instead of "
            f"working it out yourself. Supports {_SUPPORTED} (angles in radians). Example: (1299 * 0.8) + 5.99"
        ),
        args_schema=CalculatorInput,
        handle_tool_error=True,
        handle_validation_error=validation_handler("calculator"),
    )


# --- current_time -----------------------------------------------------------------------------


class CurrentTimeInput(BaseModel):
    """Arguments of the current_time tool."""

    timezone: str = Field("UTC", description="IANA time zone such as 'Europe/Paris' or 'America/New_York'")


_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@lru_cache(maxsize=1)
def _zone_names() -> tuple[frozenset[str], dict[str, str]]:
    """Every IANA zone name, and lookups by lowercase name and by city (new_york → America/New_York)."""
    import zoneinfo

    names = frozenset(zoneinfo.available_timezones())
    lookup: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (n.count("/"), n)):  # prefer America/X over America/Y/X
        lookup.setdefault(name.lower(), name)
        lookup.setdefault(name.rsplit("/", 1)[-1].lower(), name)
    return names, lookup


def resolve_timezone(name: str) -> tuple[tzinfo, str]:
    """The zone for an IANA name, a city, or an offset like UTC+2; ToolException with a suggestion."""
    import zoneinfo

    text = name.strip() or "UTC"
    if text.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return UTC, "UTC"
    if match := _OFFSET.match(text):
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours <= 14 and minutes < 60:
            delta = timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
            return timezone(delta), f"UTC{sign}{hours:02d}:{minutes:02d}"
    names, lookup = _zone_names()
    key = text if text in names else lookup.get(text.lower().replace(" ", "_"))
    if key is not None:
        try:
            return zoneinfo.ZoneInfo(key), key
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise ToolException(
        f"unknown time zone {text!r}{did_you_mean(text, names)}; use an IANA name like 'Europe/Paris', "
        "'America/New_York' or 'Asia/Tokyo', or an offset like 'UTC+2'"
    )


def current_time_tool(*, clock: Callable[[], datetime] | None = None) -> BaseTool:
    """The current_time tool; `clock` returns an aware datetime (tests pass a fixed one)."""
    now = clock or (lambda: datetime.now(UTC))

    def current_time(timezone: str = "UTC") -> str:
        zone, label = resolve_timezone(timezone)
        moment = now().astimezone(zone)
        return f"{moment.isoformat(timespec='seconds')} ({moment:%A}, {label}, {moment.tzname()})"

    return StructuredTool.from_function(
        func=current_time,
        name="current_time",
        description=(
            "Get the current date, time and weekday, in ISO 8601 with the UTC offset. Use it whenever the "
            "answer depends on today's date or the time somewhere. Pass an IANA time zone like "
            "'Europe/Paris'; UTC when omitted."
        ),
        args_schema=CurrentTimeInput,
        handle_tool_error=True,
        handle_validation_error=validation_handler("current_time"),
    )


# --- python -----------------------------------------------------------------------------------


class PythonInput(BaseModel):
    """Arguments of the python tool."""

    code: str = Field(description="Python 3 source; print() what you want to see")


def python_tool(*, timeout: float = 10.0, memory_mb: int = 512, max_output_chars: int = 10_000) -> BaseTool:
    """The python tool: runs code in the sandbox and returns what it printed; ToolError when there is none."""
    require_sandbox()  # refuse to build, naming what to install, rather than fail on every call

    def python(code: str) -> str:
        if not code.strip():
            raise ToolException("the code is empty; send Python source that prints its result")
        if len(code) > MAX_CODE_CHARS:
            raise ToolException(f"the code has {len(code):,} characters; send at most {MAX_CODE_CHARS:,}")
        try:
            result = run_python(code, timeout=timeout, memory_mb=memory_mb, max_output_chars=max_output_chars)
        except ToolError as exc:
            raise ToolException(str(exc)) from None
        except OSError as exc:  # no room for the working folder, no processes left
            raise ToolException(f"the python tool could not run the code: {exc}") from None
        text = format_run(result)
        if result.error:
            raise ToolException(text)
        return text

    return StructuredTool.from_function(
        func=python,
        name="python",
        description=(
            "Run Python 3 code and get back what it prints (and any error). Use it for calculations over "
            "data, text processing, dates and checking code. Standard library only; no network, no other "
            "programs, no files kept: every call starts fresh, so define everything you use and print() "
            f"the results. Limits: {timeout:g} s, {memory_mb} MB."
        ),
        args_schema=PythonInput,
        handle_tool_error=True,
        handle_validation_error=validation_handler("python"),
    )


def format_run(result: SandboxResult) -> str:
    """A sandbox run as text for the model: output, then errors."""
    parts = []
    if result.stdout.strip():
        parts.append(result.stdout.rstrip())
    stderr = result.stderr.rstrip()
    if stderr:
        parts.append(f"stderr:\n{stderr}")
    if result.error and not stderr.endswith(result.error):
        parts.append(f"error: {result.error}")
    return "\n\n".join(parts) or "(no output; print() the values you want to see)"


# --- fetch_url --------------------------------------------------------------------------------


class FetchUrlInput(BaseModel):
    """Arguments of the fetch_url tool."""

    url: str = Field(description="The full http:// or https:// address of the page, e.g. https://example.com/docs")


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript", "application/x-ndjson",
                         "application/yaml", "application/x-yaml", "application/csv"})
_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_ACCEPT = "text/html, application/xhtml+xml, text/plain;q=0.9, application/json;q=0.9, text/*;q=0.8, */*;q=0.1"
_ERROR_EXCERPT_CHARS = 500


def check_fetch_url(url: str) -> str:
    """The URL stripped, or ToolException unless it is a full http(s) address."""
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and parts.netloc:
        return text
    if scheme and "://" in text:
        raise ToolException(f"fetch_url only fetches http:// and https:// URLs, not {scheme}:// ({text!r})")
    raise ToolException(
        f"{text!r} is not a full web address; write it with http:// or https://, e.g. https://example.com/page"
    )


def html_to_text(data: bytes | str) -> tuple[str, str]:
    """The page's title and its readable text (scripts, styles and the head dropped), headings and paragraphs kept."""
    from ..knowledge.loaders import html_sections  # the knowledge loader: same text the search index sees

    head = data[:65_536] if isinstance(data, str) else data[:65_536].decode("utf-8", errors="replace")
    match = _TITLE.search(head)
    title = " ".join(html.unescape(match.group(1)).split()) if match else ""
    sections = html_sections(data)
    return title, "\n\n".join(section.text for section in sections)


def _charset_given(content_type: str) -> bool:
    return any(part.partition("=")[0].strip().lower() == "charset" for part in content_type.split(";")[1:])


def _is_text(media_type: str) -> bool:
    return (media_type.startswith("text/") or media_type in _TEXT_TYPES or media_type.endswith(("+json", "+xml")))


def _looks_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return (f"{text[:max_chars].rstrip()}\n\n[truncated: showing the first {max_chars:,} of {len(text):,} "
            "characters]")


def fetch_url_tool(*, allow_private: bool = False, allow_hosts: list[str] | None = None, timeout: float = 15.0,
                   max_bytes: int = 2_000_000, max_chars: int = 8_000) -> BaseTool:
    """The fetch_url tool: GET a page through the SSRF guard and return it as readable text."""
    hosts = set(allow_hosts) if allow_hosts is not None else None

    def page_text(media_type: str, content_type: str, content: bytes, decoded: str) -> tuple[str, str]:
        if media_type in _HTML_TYPES or (not media_type and content[:1024].lstrip().lower().startswith(
                (b"<!doctype html", b"<html"))):
            return html_to_text(decoded if _charset_given(content_type) else content)
        return "", decoded

    def fetch_url(url: str) -> str:
        target = check_fetch_url(url)
        try:
            with guarded_client(allow_private=allow_private, allowed_hosts=hosts, timeout=timeout,
                                max_response_bytes=max_bytes) as client:
                response = client.get(target, headers={"Accept": _ACCEPT})
        except ResponseTooLargeError as exc:
            raise ToolException(f"could not fetch {target}: {exc} (fetch_url reads at most {max_bytes:,} bytes; "
                                "try a more specific page)") from None
        except NetworkError as exc:
            raise ToolException(f"could not fetch {target}: {exc}") from None
        status = f"{response.status_code} {response.reason_phrase}".strip()
        media_type = response.media_type
        content_type = response.headers.get("content-type", "")
        readable = (_is_text(media_type) or media_type in _HTML_TYPES
                    or (not media_type and not _looks_binary(response.content)))
        if not response.is_success:
            detail = ""
            if readable and response.content:
                _, body = page_text(media_type, content_type, response.content, response.text)
                detail = f": {_truncate(' '.join(body.split()), _ERROR_EXCERPT_CHARS)}" if body.strip() else ""
            raise ToolException(f"{response.url} answered HTTP {status}{detail}")
        if not readable:
            shown = media_type or "an unknown type"
            raise ToolException(
                f"{response.url} is {shown} ({len(response.content):,} bytes), not a page fetch_url can read; "
                "it reads HTML, plain text and JSON"
            )
        title, text = page_text(media_type, content_type, response.content, response.text)
        lines = [f"URL: {response.url}"]
        if response.redirects:
            lines[0] += f" (redirected from {target})"
        lines.append(f"Status: {status}")
        lines.append(f"Content-Type: {media_type or 'not given'}")
        if title:
            lines.append(f"Title: {title}")
        body = text.strip() or "(the page has no readable text; it may need JavaScript to show its content)"
        return "\n".join(lines) + "\n\n" + _truncate(body, max_chars)

    where = f" from {', '.join(sorted(hosts))}" if hosts else ""
    return StructuredTool.from_function(
        func=fetch_url,
        name="fetch_url",
        description=(
            f"Fetch a web page{where} with HTTP GET and read it as text: HTML comes back as its readable text, "
            "plain text and JSON as they are. Use it when the user gives a link or the answer needs a page's "
            f"current content. Pass the full http:// or https:// URL. Returns at most {max_chars:,} characters."
        ),
        args_schema=FetchUrlInput,
        handle_tool_error=True,
        handle_validation_error=validation_handler("fetch_url"),
    )


# --- registry ---------------------------------------------------------------------------------


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PythonOptions(_Options):
    """`options:` of the python tool in a spec."""

    timeout: float = Field(10.0, gt=0, le=600, description="Seconds the code may run (wall clock)")
    memory_mb: int = Field(512, ge=64, le=65_536, description="Address-space limit in MB")
    max_output_chars: int = Field(10_000, ge=200, le=1_000_000, description="Characters of output kept")


class FetchUrlOptions(_Options):
    """`options:` of the fetch_url tool in a spec (private networks follow the GPT's allow_private_network)."""

    allow_hosts: list[str] | None = Field(
        None, min_length=1, description="Host names the tool may fetch from, redirects included; any public host if unset"
    )
    timeout: float = Field(15.0, gt=0, le=300, description="Seconds for the whole fetch, redirects included")
    max_bytes: int = Field(2_000_000, ge=1_000, le=100_000_000, description="Largest response body read, in bytes")
    max_chars: int = Field(8_000, ge=200, le=1_000_000, description="Characters of page text given to the model")

    @field_validator("allow_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str] | None) -> list[str] | None:
        if hosts is None:
            return None
        names = []
        for host in hosts:
            name = host.strip().lower().strip("[]")
            if not name or (any(c in name for c in "/:@?#") and not _is_ipv6(name)):
                raise ValueError(f"{host!r} is not a host name; write just the host, e.g. 'example.com' "
                                 "(no scheme, port or path)")
            names.append(name)
        return names


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


@dataclass(frozen=True)
class Builtin:
    """How to build one built-in tool from its validated options."""

    options: type[BaseModel]
    build: Callable[..., BaseTool]  # (options, *, allow_private: bool) -> tool


BUILTINS: dict[str, Builtin] = {
    "calculator": Builtin(_Options, lambda _, **__: calculator_tool()),
    "current_time": Builtin(_Options, lambda _, **__: current_time_tool()),
    "python": Builtin(PythonOptions, lambda o, **__: python_tool(**o.model_dump())),
    "fetch_url": Builtin(FetchUrlOptions, lambda o, *, allow_private: fetch_url_tool(allow_private=allow_private,
                                                                                     **o.model_dump())),
}


def builtin_tool(name: str, options: dict[str, Any] | None = None, *, allow_private: bool = False) -> BaseTool:
    """Build the built-in tool `name` with its spec options; ToolError naming what to fix.

    `allow_private` is the GPT's allow_private_network: whether fetch_url may reach private addresses.
    """
    entry = BUILTINS.get(name)
    if entry is None:
        known = sorted(BUILTINS)
        raise ToolError(f"unknown built-in tool {name!r}{did_you_mean(name, known)}; built-ins: {', '.join(known)}")
    try:
        validated = entry.options.model_validate(options or {})
    except ValidationError as exc:
        problems = _option_problems(exc, entry.options)
        raise ToolError(f"{name}: " + "; ".join(message if inline else f"{field}: {message}"
                                               for field, message, inline in problems)) from None
    return entry.build(validated, allow_private=allow_private)


def option_problems(name: str, options: Any) -> list[tuple[str, str]]:
    """(field, message) for each problem of a built-in tool's `options:`, e.g. ("options.timeot", "unknown option ...")."""
    entry = BUILTINS[name]
    try:
        entry.options.model_validate(options or {})
    except ValidationError as exc:
        return [(field, message) for field, message, _ in _option_problems(exc, entry.options)]
    return []


class BuiltinKind:
    """`- calculator` or `- {builtin: python, options: {...}}` entries: checked and built by name."""

    imports_code = False

    def check(self, entry: BuiltinTool, *, folder: Path, allow_private: bool) -> list[ToolProblem]:
        """The entry's option problems (unknown names with did-you-mean, out-of-range values)."""
        return [ToolProblem(field, message) for field, message in option_problems(entry.builtin, entry.options)]

    def build(self, entry: BuiltinTool, *, folder: Path, allow_private: bool) -> list[BaseTool]:
        """The one tool this entry names."""
        return [builtin_tool(entry.builtin, dict(entry.options), allow_private=allow_private)]


def _option_problems(error: ValidationError, model: type[BaseModel]) -> list[tuple[str, str, bool]]:
    """(field, message, whether the message reads on its own without the field) per problem."""
    fields = list(model.model_fields)
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            accepted = f"options are: {', '.join(fields)}" if fields else "it takes no options"
            hint = did_you_mean(key, fields)
            problems.append((f"options.{key}", f"unknown option {key!r}{hint} ({accepted})" if hint
                             else f"unknown option {key!r}; {accepted}", True))
        elif not item["loc"]:
            problems.append(("options", f"options must be a mapping, e.g. {{{fields[0] if fields else 'name'}: ...}}", True))
        else:
            problems.append((f"options.{key}", item["msg"].removeprefix("Value error, "), False))
    return problems
