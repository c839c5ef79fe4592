"""Python functions named in a spec (`package.module:function`) as tools, with a timeout and a result budget.

A function tool runs in the server process with the server's rights: name only functions you would
put in the server's own code, and never accept function tools from specs written by untrusted users.

`base_dir` (the spec's folder) lets a spec ship its own module next to it. It is never put on
`sys.path`: only the top-level module or package the spec names is loaded from there (its own
submodules and relative imports work), so a stray `json.py` in a spec folder cannot shadow the
standard library or an installed package for the rest of the process. If that name is already
imported from somewhere else, loading fails with a message instead of mixing the two.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import re
import sys
import threading
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ValidationError

from ..errors import ToolError, did_you_mean
from ..spec import FUNCTION_PATH, FunctionTool
from .compile import ToolProblem

log = logging.getLogger(__name__)

DOTTED_PATH = re.compile(FUNCTION_PATH)  # what spec.FunctionTool accepts: package.module, function
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RESULT_CHARS = 20_000
_LOCAL_IMPORTS = threading.Lock()  # two specs compiled at once must not both load the same module


def function_tool(
    dotted: str,
    *,
    base_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
) -> BaseTool:
    """Import `package.module:function` and wrap it as a tool whose schema comes from its type hints."""
    dotted = dotted.strip()
    if timeout <= 0 or max_result_chars <= 0:
        raise ToolError(f"{dotted}: timeout and max_result_chars must be positive")
    target = load_function(dotted, base_dir=base_dir)
    name = dotted.rsplit(":", 1)[1]
    if isinstance(target, StructuredTool):  # already decorated with langchain's @tool
        func: Callable[..., Any] | None = target.func or target.coroutine
        if func is None:
            raise ToolError(f"{dotted} is a LangChain tool without a Python function to call")
        name, description, schema = target.name, target.description, target.args_schema
    else:
        func = target
        _check_signature(func, dotted)
        try:
            template = StructuredTool.from_function(func, name=name, parse_docstring=True)
        except (ValueError, TypeError) as exc:
            if "docstring" in str(exc):
                raise ToolError(
                    f"{dotted} has no docstring; add one saying what it does and when to use it "
                    "(the model reads it to decide when to call the tool)"
                ) from None
            raise ToolError(f"{dotted}: cannot build a tool schema from its signature: {exc}") from None
        description, schema = template.description, template.args_schema
    return StructuredTool(
        name=name,
        description=description,
        args_schema=schema,
        func=_call_with_timeout(func, name, timeout=timeout, max_result_chars=max_result_chars),
        handle_tool_error=True,
        handle_validation_error=validation_handler(name),
    )


class FunctionKind:
    """`- package.module:function` entries: a trusted spec's own Python functions."""

    imports_code = True

    def check(self, entry: FunctionTool, *, folder: Path, allow_private: bool) -> list[ToolProblem]:
        """Import the function and build its schema, as compiling would; the problem when that fails."""
        try:
            function_tool(entry.function, base_dir=folder)
        except ToolError as exc:
            return [ToolProblem("function", str(exc))]
        return []

    def build(self, entry: FunctionTool, *, folder: Path, allow_private: bool) -> list[BaseTool]:
        """The one tool this entry names."""
        return [function_tool(entry.function, base_dir=folder)]


def load_function(dotted: str, *, base_dir: Path | None = None) -> Callable[..., Any] | StructuredTool:
    """Import the object `package.module:function` names; ToolError saying what to fix if that fails."""
    match = DOTTED_PATH.match(dotted.strip())
    if not match:
        raise ToolError(f"{dotted!r} is not a function path; write it as 'package.module:function'")
    module_name, attribute = match.groups()
    module = _import(module_name, dotted, base_dir)
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        known = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        raise ToolError(
            f"{dotted}: module {module_name!r} has no function {attribute!r}{did_you_mean(attribute, known)}"
        ) from None
    if isinstance(obj, StructuredTool):
        return obj
    if inspect.isclass(obj) or not callable(obj):
        raise ToolError(f"{dotted} is a {type(obj).__name__}, not a function; point at a function defined with def")
    if not (inspect.isfunction(obj) or inspect.ismethod(obj)):
        raise ToolError(
            f"{dotted} is a {type(obj).__name__}, not a Python function, so it has no type hints to build "
            "the tool's arguments from; wrap it in a def with type hints and a docstring"
        )
    return obj


def _import(module_name: str, dotted: str, base_dir: Path | None) -> Any:
    top = module_name.split(".")[0]
    try:
        if base_dir is not None:
            with _LOCAL_IMPORTS:
                _load_local(top, Path(base_dir), dotted)
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            where = f", or put {top}.py next to the spec in {base_dir}" if base_dir is not None else ""
            raise ToolError(
                f"{dotted}: no module named {missing!r}; install the package that provides it{where}"
            ) from None
        raise ToolError(f"{dotted}: importing {module_name} failed: {exc}") from None
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(f"{dotted}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None


def _load_local(top: str, base_dir: Path, dotted: str) -> None:
    """Import the top-level module `top` from `base_dir` only, if it is there."""
    spec = importlib.machinery.PathFinder.find_spec(top, [str(base_dir)])
    if spec is None:
        return
    wanted = _origin_of(spec.origin, spec.submodule_search_locations)
    existing = sys.modules.get(top)
    if existing is not None:
        if _origin_of(getattr(existing, "__file__", None), getattr(existing, "__path__", None)) == wanted:
            return
        where = getattr(existing, "__file__", None) or "a built-in module"
        raise ToolError(
            f"{dotted}: the name {top!r} is already taken by {where}; rename the module next to the spec "
            f"({base_dir / top}) to something unique"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop(top, None)
        raise


def _origin_of(file: str | None, search: Any) -> tuple[str, ...]:
    if file and file not in ("namespace", "built-in", "frozen"):
        return (str(Path(file).resolve()),)
    return tuple(str(Path(p).resolve()) for p in (search or ()))


def _check_signature(func: Callable[..., Any], dotted: str) -> None:
    """Every parameter needs a type hint: the model's arguments are validated against them."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise ToolError(f"{dotted}: its type hints cannot be resolved: {type(exc).__name__}: {exc}") from None
    missing = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"{dotted}: *args and **kwargs cannot be described to a model; name each parameter")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolError(f"{dotted}: positional-only parameters cannot be passed by name; drop the '/'")
        if param.name not in hints:
            missing.append(param.name)
    if missing:
        raise ToolError(
            f"{dotted}: add type hints to {', '.join(missing)}, e.g. def {func.__name__}(order_id: str) -> str; "
            "the model's arguments are checked against them"
        )


def _call_with_timeout(
    func: Callable[..., Any], name: str, *, timeout: float, max_result_chars: int
) -> Callable[..., str]:
    """Wrap `func` to run in a worker thread, turning failures and hangs into messages for the model."""
    is_async = inspect.iscoroutinefunction(func)

    def call(**kwargs: Any) -> str:
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                value = func(**kwargs)
                outcome["value"] = asyncio.run(value) if is_async else value
            except BaseException as exc:
                outcome["error"] = exc

        # A Python thread cannot be stopped: after a timeout it runs on in the background (a daemon, so
        # it never blocks shutdown) and its eventual result is dropped. Functions that may hang should
        # use their own timeouts (HTTP clients, database drivers) as well.
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(work,), name=f"tool-{name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise ToolException(f"{name} did not finish within {timeout:g} s and was abandoned; try simpler input")
        if "error" in outcome:
            exc = outcome["error"]
            if isinstance(exc, ToolException):
                raise exc
            log.warning("function tool %s raised", name, exc_info=exc)
            raise ToolException(f"{name} failed: {type(exc).__name__}: {exc}")
        return truncate(render(outcome.get("value")), max_result_chars)

    call.__name__ = name
    return call


def render(value: Any) -> str:
    """A tool result as text: strings as they are, models, containers and numbers as JSON, the rest with str()."""
    if value is None:
        return "(no result)"
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, dict | list | tuple | int | float):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass
    return str(value)


def truncate(text: str, limit: int) -> str:
    """Keep the first `limit` characters of `text`, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... truncated: showing {limit:,} of {len(text):,} characters]"


def validation_handler(tool_name: str) -> Callable[[Any], str]:
    """A `handle_validation_error` callable telling the model which arguments to fix."""

    def describe(error: ValidationError) -> str:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ())) or "arguments"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return f"invalid arguments for {tool_name}: " + "; ".join(problems)

    return describe
