"""OpenAPI actions: auth, guarded calls and truncated results; each operation becomes a langchain-core tool."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from ..errors import SpecError, SpecProblem, ToolError
from ..spec import ActionAuth, ActionConfig, ActionTool
from .compile import ToolProblem
from .network import GuardedClient, GuardedResponse, NetworkError, guarded_client
from .openapi import ActionOperation, load_actions, read_actions

DEFAULT_MAX_RESULT_CHARS = 8_000


class ActionKind:
    """`- action: {openapi: ...}` entries: one tool per operation of an OpenAPI document."""

    imports_code = False

    def check(self, entry: ActionTool, *, folder: Path, allow_private: bool) -> list[ToolProblem]:
        """The auth settings, then the document: readable, valid, and naming the operations the entry names."""
        config = entry.action
        problems = [ToolProblem(f"action.auth.{name}" if name else "action.auth", message)
                    for name, message in auth_problems(config.auth)]
        _, found = read_actions(config, spec_folder=folder, allow_private=allow_private)
        problems += [problem if problem.file else ToolProblem(f"action.{problem.field}", problem.message) for problem in found]
        return problems

    def build(self, entry: ActionTool, *, folder: Path, allow_private: bool) -> list[BaseTool]:
        """One tool per selected operation; those needing approval say so in their metadata."""
        return action_tools(entry.action, spec_folder=folder, allow_private=allow_private)


def action_tools(config: ActionConfig, *, spec_folder: Path, allow_private: bool,
                 max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
                 environ: Mapping[str, str] | None = None) -> list[BaseTool]:
    """One tool per selected operation; secrets are read now, so a missing one fails at compile time."""
    operations = load_actions(config, spec_folder=spec_folder, allow_private=allow_private)
    auth = _Auth.build(config.auth, shown=config.openapi, environ=os.environ if environ is None else environ,
                       allow_private=allow_private, timeout=config.timeout)
    client = guarded_client(allow_private=allow_private, allowed_hosts={op.host for op in operations},
                            timeout=config.timeout, max_response_bytes=config.max_response_bytes)
    return [_make_tool(op, client, auth, max_result_chars) for op in operations]


# -- checking arguments ------------------------------------------------------------------------------------


def _checked_args(op: ActionOperation, args: dict[str, Any]) -> dict[str, Any]:
    """Arguments coerced where a model's habit is harmless (1001 for "1001"), then validated."""
    schema = op.args_schema
    properties = schema["properties"]
    fixed = {}
    for name, value in args.items():
        kind = properties.get(name, {}).get("type") if isinstance(properties.get(name), dict) else None
        if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif kind in ("integer", "number") and isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            value = float(value) if "." in value else int(value)
        elif kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        fixed[name] = value
    problems = [f"unknown argument {name!r}" for name in fixed if name not in properties]
    problems += [f"missing required argument {name!r}" for name in schema["required"] if fixed.get(name) is None]
    if not problems:
        problems = _schema_errors(schema, fixed)
    if problems:
        expected = ", ".join(f"{n}{'*' if n in schema['required'] else ''}" for n in properties) or "none"
        raise ToolException(f"{op.operation_id}: {'; '.join(problems[:5])} (arguments: {expected}; * = required)")
    return fixed


def _schema_errors(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    try:
        import jsonschema
    except ImportError:  # validation is a courtesy to the model; the API validates too
        return []
    try:
        validator = jsonschema.Draft202012Validator(schema)
        return [f"{'.'.join(str(p) for p in error.absolute_path) or 'arguments'}: {error.message}"
                for error in validator.iter_errors(args)]
    except (jsonschema.SchemaError, re.error, TypeError, ValueError):
        return []  # the document's schema is not valid JSON Schema; let the API judge


# -- auth and calls ----------------------------------------------------------------------------------------


@dataclass
class _Auth:
    """Credentials for one action, read from the environment when the tools are built."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    oauth: _ClientCredentials | None = None

    @classmethod
    def build(cls, auth: ActionAuth, *, shown: str, environ: Mapping[str, str], allow_private: bool,
              timeout: float) -> _Auth:
        """Check the auth settings (SpecError) and read the named variables (ToolError when one is missing)."""
        problems = auth_problems(auth)
        if problems:
            raise SpecError([SpecProblem(shown, f"auth.{name}" if name else "auth", message) for name, message in problems])
        needs = _AUTH_NEEDS[auth.type]
        values: dict[str, str] = {}
        missing: list[str] = []
        for name in needs:
            if name.endswith("_env"):
                variable = getattr(auth, name)
                value = environ.get(variable, "").strip()
                if value:
                    values[name] = value
                else:
                    missing.append(f"{variable} (auth.{name})")
        if missing:
            raise ToolError(f"{shown}: environment variable {', '.join(missing)} is not set; "
                            "set it to the API's credential before starting gptbuilder")
        result = cls()
        if auth.type == "api_key":
            key = auth.header or auth.query or ""  # auth_problems made sure exactly one is set
            (result.headers if auth.header else result.params)[key] = values["token_env"]
        elif auth.type == "bearer":
            result.headers["Authorization"] = f"Bearer {values['token_env']}"
        elif auth.type == "basic":
            result.headers["Authorization"] = _basic(values["username_env"], values["password_env"])
        elif auth.type == "oauth2_client_credentials":
            result.oauth = _ClientCredentials(auth.token_url or "", values["client_id_env"], values["client_secret_env"],
                                              auth.scopes, allow_private=allow_private, timeout=timeout)
        return result


_AUTH_NEEDS = {
    "none": [],
    "api_key": ["token_env"],
    "bearer": ["token_env"],
    "basic": ["username_env", "password_env"],
    "oauth2_client_credentials": ["client_id_env", "client_secret_env", "token_url"],
}


def auth_problems(auth: ActionAuth) -> list[tuple[str, str]]:
    """(field under `auth`, message) for settings the auth type needs but lacks; "" is `auth` itself."""
    problems = [(name, f"{auth.type} auth needs '{name}'") for name in _AUTH_NEEDS[auth.type] if not getattr(auth, name)]
    if auth.type == "api_key" and bool(auth.header) == bool(auth.query):
        problems.append(("", "api_key auth needs exactly one of 'header' (e.g. X-API-Key) or 'query' (e.g. api_key): "
                             "where the API expects the key"))
    if auth.token_url and urlsplit(auth.token_url).scheme not in ("http", "https"):
        problems.append(("token_url", f"{auth.token_url!r} is not an absolute http(s) URL"))
    return problems


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class _ClientCredentials:
    """OAuth2 client-credentials tokens, fetched on first use and cached until shortly before they expire."""

    def __init__(self, token_url: str, client_id: str, secret: str, scopes: list[str], *, allow_private: bool,
                 timeout: float):
        self.token_url = token_url
        self._client_id, self._secret, self._scopes = client_id, secret, scopes
        self._client = guarded_client(allow_private=allow_private, allowed_hosts={urlsplit(token_url).hostname or ""},
                                      timeout=timeout, max_response_bytes=64_000)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def token(self) -> str:
        """A valid access token, from the cache when it has not expired."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._fetch()
                self._expires = time.monotonic() + max(lifetime - 30, lifetime / 2)
            return self._token

    def forget(self) -> None:
        """Drop the cached token (the API refused it)."""
        with self._lock:
            self._token = None

    def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scopes:
            form["scope"] = " ".join(self._scopes)
        host = urlsplit(self.token_url).hostname
        try:
            # RFC 6749 §2.3.1: HTTP Basic first; some servers only read the credentials from the form
            response = self._client.request("POST", self.token_url, data=form, headers={
                "Authorization": _basic(quote(self._client_id, safe=""), quote(self._secret, safe="")),
                "Accept": "application/json"})
            if response.status_code in (400, 401):
                response = self._client.request("POST", self.token_url, headers={"Accept": "application/json"},
                                                data={**form, "client_id": self._client_id,
                                                      "client_secret": self._secret})
        except NetworkError as exc:
            raise ToolException(f"could not get an access token from {host}: {exc}") from None
        if not response.is_success:
            raise ToolException(f"the token endpoint {host} refused the client credentials: HTTP "
                                f"{response.status_code} {_excerpt(response.text, 300)}")
        try:
            payload = response.json()
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise ToolException(f"the token endpoint {host} did not answer with an access_token") from None
        if not isinstance(token, str) or not token:
            raise ToolException(f"the token endpoint {host} did not answer with an access_token")
        return token, lifetime


def _make_tool(op: ActionOperation, client: GuardedClient, auth: _Auth, max_result_chars: int) -> BaseTool:
    def call(**kwargs: Any) -> str:
        args = _checked_args(op, kwargs)
        url, query, headers, body = op.request_parts(args)
        query = [*query, *auth.params.items()]
        for attempt in (1, 2):
            request_headers = {"Accept": "application/json, text/plain;q=0.9, */*;q=0.5", **headers, **auth.headers}
            if auth.oauth:
                request_headers["Authorization"] = f"Bearer {auth.oauth.token()}"
            try:
                response = client.request(op.method.upper(), url, params=query, headers=request_headers, json=body)
            except NetworkError as exc:
                raise ToolException(f"{op.operation_id} failed: {exc}") from None
            if response.status_code == 401 and auth.oauth and attempt == 1:
                auth.oauth.forget()  # the cached token may have been revoked early
                continue
            break
        return _result(op, response, max_result_chars)

    return StructuredTool(
        name=op.operation_id,
        description=op.description,
        args_schema=op.args_schema,
        func=call,
        handle_tool_error=True,
        metadata={"requires_confirmation": op.requires_confirmation, "operation_id": op.operation_id,
                  "method": op.method.upper(), "path": op.path, "action": op.source},
    )


def _result(op: ActionOperation, response: GuardedResponse, max_chars: int) -> str:
    text = response.text
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), ensure_ascii=False)
    status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if not response.is_success:
        hint = " (check the action's auth settings)" if response.status_code in (401, 403) else ""
        raise ToolException(f"{op.operation_id} failed: {status}{hint}: {_excerpt(text, min(max_chars, 2000))}")
    return _excerpt(f"{status}\n{text}" if text else status, max_chars)


def _excerpt(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f"\n[truncated: {len(text):,} characters, showing the first {{kept:,}}]"
    kept = max(0, limit - len(marker) - 8)
    return text[:kept] + marker.format(kept=kept)
