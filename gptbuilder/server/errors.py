"""OpenAI-shaped errors: the one place the HTTP edge translates gptbuilder's error hierarchy."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sse_starlette import ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..access import AccessError
from ..errors import DatabaseError, GPTBuilderError, InputError, ModelError, SpecError, StorageError, UnknownGPTError

logger = logging.getLogger("gptbuilder.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}
# Every error carries a code (OpenAI's own sometimes say null; a client can always branch on ours).
_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limit_exceeded",
    499: "client_closed",
    500: "server_error",
    503: "unavailable",
}
# pydantic's error types as OpenAI's codes; our own validators raise PydanticCustomError with OpenAI's names.
_VALIDATION_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "literal_error": "invalid_value",
    "enum": "invalid_value",
    "value_error": "invalid_value",
    "assertion_error": "invalid_value",
    "too_short": "invalid_value",
    "too_long": "invalid_value",
    "string_too_short": "invalid_value",
    "string_too_long": "string_above_max_length",
    "string_pattern_mismatch": "invalid_value",
    "greater_than": "below_min_value",
    "greater_than_equal": "below_min_value",
    "less_than": "above_max_value",
    "less_than_equal": "above_max_value",
}
_OUR_CODES = {"unknown_parameter", "unsupported_parameter", "unsupported_value", "invalid_value"}


class APIError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error object."""
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code or _CODES.get(self.status, "invalid_request"),
            }
        }

    def response(self) -> JSONResponse:
        """This error as a JSON response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class InternalError(APIError):
    """A bug or an unexpected failure: logged with its traceback, answered without one."""

    def __init__(self) -> None:
        super().__init__(500, "internal error; the server log has the details", code="server_error")


def from_gptbuilder(exc: GPTBuilderError) -> APIError:
    """Map the library's errors to statuses: who must act decides the code."""
    if isinstance(exc, UnknownGPTError):
        hint = str(exc).removeprefix(f"unknown GPT {exc.gpt_id!r}")
        return APIError(404, f"The model {exc.gpt_id!r} does not exist{hint}", code="model_not_found", param="model")
    if isinstance(exc, SpecError):
        return APIError(503, f"the GPT's spec is broken, so it cannot answer: {exc}", code="spec_error")
    if isinstance(exc, InputError):
        return APIError(400, str(exc), code="invalid_request")
    if isinstance(exc, AccessError):
        return APIError(403, str(exc), code="forbidden")
    if isinstance(exc, DatabaseError):
        logger.error("database error: %s", exc)
        return APIError(503, "the database is unavailable; try again shortly", code="database_unavailable")
    if isinstance(exc, ModelError):
        return APIError(500, str(exc), code="model_error")
    if isinstance(exc, StorageError):
        logger.error("storage error: %s", exc)
        return APIError(507, "the server's disk is full or refuses writes; try again later", code="insufficient_storage")
    return APIError(500, str(exc), code="server_error")


def as_api_error(exc: Exception) -> APIError:
    """Any exception as the error to answer with; unexpected ones are logged (with traceback) first."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, GPTBuilderError):
        return from_gptbuilder(exc)
    logger.error("unexpected error", exc_info=exc)
    return InternalError()


async def guarded_stream(
    events: AsyncGenerator[ServerSentEvent, None], on_error: Callable[[APIError], AsyncIterator[ServerSentEvent]]
) -> AsyncIterator[ServerSentEvent]:
    """A server-sent event stream whose failure ends it with ``on_error``'s events, never a traceback."""
    try:
        async for event in events:
            yield event
    except Exception as exc:  # every failure is answered; unexpected ones are logged by as_api_error
        async for event in on_error(as_api_error(exc)):
            yield event
    finally:
        await events.aclose()


def _validation_code(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in _OUR_CODES:
        return kind
    if kind.endswith(("_type", "_parsing")):
        return "invalid_type"
    return _VALIDATION_CODES.get(kind, "invalid_value")


def _validation_error(exc: RequestValidationError) -> APIError:
    """A body that fails validation as one 400: every problem in the message, the first one's param and code."""
    problems = []
    first: Mapping[str, Any] | None = None
    first_param = None
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        where = str((error.get("ctx") or {}).get("param") or ".".join(loc))
        message = str(error.get("msg"))
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        if first is None:
            first, first_param = error, where or None
        named = not where or message.startswith(("Unrecognized", "Unsupported", where))  # it names its parameter itself
        problems.append(message if named else f"{where}: {message}")
    code = _validation_code(first) if first is not None else "invalid_request"
    return APIError(400, "; ".join(problems) or "invalid request", param=first_param, code=code)


def _http_error(request: Request, exc: StarletteHTTPException) -> APIError:
    """Starlette's own 404s and 405s, in OpenAI's words under /v1 (its "Invalid URL (POST /v1/foo)")."""
    headers = dict(exc.headers or {})
    code = _CODES.get(exc.status_code)
    if not request.url.path.startswith("/v1") or exc.detail not in ("Not Found", "Method Not Allowed"):
        return APIError(exc.status_code, str(exc.detail), headers=headers, code=code)
    where = f"({request.method} {request.url.path})"
    if exc.status_code == 405:
        allowed = headers.get("allow") or headers.get("Allow")
        hint = f"; this path takes {allowed}" if allowed else ""
        return APIError(405, f"Method not allowed {where}{hint}", headers=headers, code=code)
    return APIError(exc.status_code, f"Invalid URL {where}; the API's paths are listed at /v1/docs", headers=headers, code=code)


def install_handlers(app: FastAPI) -> None:
    """Answer every error with the OpenAI error object; never a traceback."""

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(GPTBuilderError)
    async def _library_error(_request: Request, exc: GPTBuilderError) -> JSONResponse:
        return from_gptbuilder(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return APIError(400, "the request body is not valid JSON", code="invalid_json").response()
        return _validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_error(request, exc).response()

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return as_api_error(exc).response()
