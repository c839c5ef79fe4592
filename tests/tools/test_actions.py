"""OpenAPI actions against the real Acme Shoes demo service (uvicorn on a loopback port), and bad documents."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from langchain_core.messages import ToolMessage
from langchain_core.tools import ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool

from gptbuilder.errors import SpecError, ToolError
from gptbuilder.spec import ActionAuth, ActionConfig
from gptbuilder.tools.actions import ActionOperation, action_tools, load_actions

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DOC = ROOT / "gpts" / "actions" / "orders.openapi.yaml"
SERVICE_FILE = ROOT / "gpts" / "actions" / "orders_service.py"
_spec = importlib.util.spec_from_file_location("acme_orders_service", SERVICE_FILE)
orders_service = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(orders_service)


# -- the service, the document, the network safety net -------------------------------------------------


class Service:
    """A FastAPI app served by uvicorn on 127.0.0.1 in a background thread; records raw request paths."""

    def __init__(self, app: FastAPI):
        self.app = app
        self.raw_paths: list[str] = []

        @app.middleware("http")
        async def record(request: Request, call_next):
            self.raw_paths.append(request.scope["raw_path"].decode())
            return await call_next(request)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(app: FastAPI | None = None, **auth: Any) -> Service:
        started.append(Service(app or orders_service.create_app(**auth)))
        return started[-1]

    yield start
    for service in started:
        service.stop()



def orders_action(folder: Path, service: Service, **config: Any) -> ActionConfig:
    """The shipped orders document, pointed at the test service, as an action of a spec in ``folder``."""
    text = SHIPPED_DOC.read_text(encoding="utf-8").replace("http://127.0.0.1:8765", service.url)
    (folder / "actions").mkdir(exist_ok=True)
    (folder / "actions" / "orders.openapi.yaml").write_text(text, encoding="utf-8")
    return ActionConfig(openapi="actions/orders.openapi.yaml", **config)


def tools_by_name(config: ActionConfig, folder: Path, **kwargs: Any) -> dict[str, Any]:
    return {t.name: t for t in action_tools(config, spec_folder=folder, allow_private=True, **kwargs)}


def write_doc(folder: Path, doc: dict[str, Any] | str, name: str = "api.yaml") -> ActionConfig:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    (folder / name).write_text(text, encoding="utf-8")
    return ActionConfig(openapi=name)


def minimal(paths: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A small valid OpenAPI 3.1 document."""
    ok = {"200": {"description": "ok"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": "1"},
        "servers": [{"url": "https://api.example.com/v1"}],
        "paths": paths if paths is not None else {"/things": {"get": {"operationId": "listThings", "responses": ok}}},
        **extra,
    }


def problems_of(config: ActionConfig, folder: Path, allow_private: bool = False) -> str:
    with pytest.raises(SpecError) as caught:
        load_actions(config, spec_folder=folder, allow_private=allow_private)
    return str(caught.value)


# -- the shipped document ------------------------------------------------------------------------------


def test_shipped_document_loads_with_confirmation_defaults() -> None:
    config = ActionConfig(openapi="actions/orders.openapi.yaml")
    ops = {op.operation_id: op for op in load_actions(config, spec_folder=ROOT / "gpts", allow_private=True)}
    assert list(ops) == ["getOrder", "listOrders", "cancelOrder"]
    assert ops["cancelOrder"].requires_confirmation and not ops["getOrder"].requires_confirmation
    assert not ops["listOrders"].requires_confirmation
    assert ops["getOrder"].description.startswith("Look up one order")
    assert ops["getOrder"].args_schema["required"] == ["order_id"]
    assert set(ops["cancelOrder"].args_schema["properties"]) == {"order_id", "reason"}
    assert ops["cancelOrder"].host == "127.0.0.1"


def test_shipped_document_needs_allow_private_network() -> None:
    config = ActionConfig(openapi="actions/orders.openapi.yaml")
    message = problems_of(config, ROOT / "gpts")
    assert "http://127.0.0.1:8765 is a loopback address" in message and "allow_private_network: true" in message
    assert message.count("servers") == 1  # said once, not once per operation


def test_tools_are_structured_tools_with_metadata(tmp_path: Path, serve) -> None:
    tools = tools_by_name(orders_action(tmp_path, serve()), tmp_path)
    cancel = tools["cancelOrder"]
    assert cancel.metadata == {"requires_confirmation": True, "operation_id": "cancelOrder", "method": "POST",
                               "path": "/orders/{order_id}/cancel", "action": "actions/orders.openapi.yaml"}
    assert tools["getOrder"].metadata["requires_confirmation"] is False
    assert cancel.handle_tool_error is True
    function = convert_to_openai_tool(cancel)["function"]
    assert function["name"] == "cancelOrder"
    assert function["parameters"]["properties"]["order_id"]["type"] == "string"


def test_explicit_confirm_list_and_operation_filter(tmp_path: Path, serve) -> None:
    config = orders_action(tmp_path, serve(), operations=["getOrder", "cancelOrder"], confirm=["getOrder"])
    tools = tools_by_name(config, tmp_path)
    assert list(tools) == ["getOrder", "cancelOrder"]
    assert tools["getOrder"].metadata["requires_confirmation"] is True
    assert tools["cancelOrder"].metadata["requires_confirmation"] is False


# -- every operation against the real service ----------------------------------------------------------


def test_get_list_and_cancel_orders(tmp_path: Path, serve) -> None:
    tools = tools_by_name(orders_action(tmp_path, serve()), tmp_path)
    order = tools["getOrder"].invoke({"order_id": "A1001"})
    assert order.startswith("HTTP 200 OK\n")
    assert json.loads(order.split("\n", 1)[1])["tracking_number"] == "JD014600003828"

    listed = json.loads(tools["listOrders"].invoke({"email": "jane@example.com"}).split("\n", 1)[1])
    assert [o["order_id"] for o in listed] == ["A1002", "A1001"]

    cancelled = tools["cancelOrder"].invoke({"order_id": "A1002", "reason": "ordered the wrong size"})
    body = json.loads(cancelled.split("\n", 1)[1])
    assert body["status"] == "cancelled" and body["cancel_reason"] == "ordered the wrong size"


def test_api_errors_go_back_to_the_model(tmp_path: Path, serve) -> None:
    tools = tools_by_name(orders_action(tmp_path, serve()), tmp_path)
    shipped = tools["cancelOrder"].invoke({"order_id": "A1001"})
    assert shipped.startswith("cancelOrder failed: HTTP 409 Conflict")
    assert "already shipped; start a return instead" in shipped
    message = tools["getOrder"].invoke(
        {"type": "tool_call", "id": "call-1", "name": "getOrder", "args": {"order_id": "Z9"}})
    assert isinstance(message, ToolMessage) and message.status == "error"
    assert "HTTP 404 Not Found" in message.content and "no order 'Z9'" in message.content


def test_path_values_cannot_change_the_route(tmp_path: Path, serve) -> None:
    app = orders_service.create_app()
    admin_hits: list[str] = []

    @app.get("/admin")
    def admin() -> dict[str, str]:
        admin_hits.append("hit")
        return {"secret": "admin area"}

    service = serve(app)
    tools = tools_by_name(orders_action(tmp_path, service), tmp_path)
    answer = tools["getOrder"].invoke({"order_id": "../admin"})
    assert "HTTP 404" in answer and "admin area" not in answer
    assert tools["getOrder"].invoke({"order_id": ".."}).count("no order '..'") == 1
    assert "HTTP 404" in tools["getOrder"].invoke({"order_id": "A1001?x=1#frag"})
    assert admin_hits == []
    assert service.raw_paths == ["/orders/..%2Fadmin", "/orders/%2E%2E", "/orders/A1001%3Fx%3D1%23frag"]


def test_arguments_are_checked_and_harmlessly_coerced(tmp_path: Path, serve) -> None:
    service = serve()
    tools = tools_by_name(orders_action(tmp_path, service), tmp_path)
    missing = tools["getOrder"].invoke({})
    assert "missing required argument 'order_id'" in missing and "arguments: order_id*" in missing
    assert "unknown argument 'id'" in tools["getOrder"].invoke({"order_id": "A1001", "id": "x"})
    assert "is too long" in tools["getOrder"].invoke({"order_id": "A" * 65})
    assert "no order '1001'" in tools["getOrder"].invoke({"order_id": 1001})  # a number where a string is due
    assert service.raw_paths == ["/orders/1001"]


# -- auth ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "service_auth, auth, env",
    [
        ({"api_key": "k-123"}, {"type": "api_key", "header": "X-API-Key", "token_env": "ACME_KEY"},
         {"ACME_KEY": "k-123"}),
        ({"api_key": "k-123"}, {"type": "api_key", "query": "api_key", "token_env": "ACME_KEY"}, {"ACME_KEY": "k-123"}),
        ({"bearer_token": "t-456"}, {"type": "bearer", "token_env": "ACME_TOKEN"}, {"ACME_TOKEN": "t-456"}),
        ({"basic": ("clerk", "s3:cret")}, {"type": "basic", "username_env": "ACME_USER", "password_env": "ACME_PW"},
         {"ACME_USER": "clerk", "ACME_PW": "s3:cret"}),
    ],
    ids=["api_key-header", "api_key-query", "bearer", "basic"],
)
def test_auth_schemes(tmp_path: Path, serve, monkeypatch, service_auth, auth, env) -> None:
    service = serve(**service_auth)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tools = tools_by_name(orders_action(tmp_path, service, auth=ActionAuth(**auth)), tmp_path)
    assert tools["getOrder"].invoke({"order_id": "A1003"}).startswith("HTTP 200")
    for name in env:
        monkeypatch.setenv(name, "wrong")
    refused = tools_by_name(orders_action(tmp_path, service, auth=ActionAuth(**auth)), tmp_path)
    answer = refused["getOrder"].invoke({"order_id": "A1003"})
    assert "HTTP 401 Unauthorized (check the action's auth settings)" in answer


def test_without_credentials_a_protected_service_refuses(tmp_path: Path, serve) -> None:
    tools = tools_by_name(orders_action(tmp_path, serve(api_key="k")), tmp_path)
    assert "HTTP 401" in tools["getOrder"].invoke({"order_id": "A1001"})


def test_oauth2_client_credentials_token_is_fetched_once_and_cached(tmp_path: Path, serve) -> None:
    service = serve(oauth_client=("acme-gpt", "shh/secret"))
    auth = ActionAuth(type="oauth2_client_credentials", client_id_env="CID", client_secret_env="CSECRET",
                      token_url=f"{service.url}/oauth/token", scopes=["orders:read"])
    environ = {"CID": "acme-gpt", "CSECRET": "shh/secret"}
    tools = tools_by_name(orders_action(tmp_path, service, auth=auth), tmp_path, environ=environ)
    assert tools["getOrder"].invoke({"order_id": "A1001"}).startswith("HTTP 200")
    assert tools["listOrders"].invoke({"email": "sam@example.com"}).startswith("HTTP 200")
    assert service.app.state.tokens_issued == 1
    assert service.raw_paths.count("/oauth/token") == 1

    wrong = tools_by_name(orders_action(tmp_path, service, auth=auth), tmp_path,
                          environ={"CID": "acme-gpt", "CSECRET": "guess"})
    answer = wrong["getOrder"].invoke({"order_id": "A1001"})
    assert "token endpoint 127.0.0.1 refused the client credentials: HTTP 401" in answer


def test_missing_secret_fails_when_tools_are_built(tmp_path: Path, serve, monkeypatch) -> None:
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    config = orders_action(tmp_path, serve(), auth=ActionAuth(type="bearer", token_env="ACME_TOKEN"))
    with pytest.raises(ToolError, match=r"environment variable ACME_TOKEN \(auth.token_env\) is not set"):
        action_tools(config, spec_folder=tmp_path, allow_private=True)
    auth = ActionAuth(type="oauth2_client_credentials", client_id_env="CID", client_secret_env="CSECRET",
                      token_url="https://auth.example.com/token")
    with pytest.raises(ToolError, match=r"CID \(auth.client_id_env\), CSECRET \(auth.client_secret_env\)"):
        action_tools(orders_action(tmp_path, serve(), auth=auth), spec_folder=tmp_path, allow_private=True,
                     environ={"CSECRET": "   "})


@pytest.mark.parametrize(
    "auth, expected",
    [
        ({"type": "api_key", "token_env": "K"}, "exactly one of 'header'"),
        ({"type": "api_key", "token_env": "K", "header": "X-Key", "query": "key"}, "exactly one of 'header'"),
        ({"type": "bearer"}, "auth.token_env: bearer auth needs 'token_env'"),
        ({"type": "oauth2_client_credentials", "client_id_env": "A", "client_secret_env": "B"}, "needs 'token_url'"),
        ({"type": "oauth2_client_credentials", "client_id_env": "A", "client_secret_env": "B", "token_url": "/token"},
         "not an absolute http(s) URL"),
    ],
)
def test_incomplete_auth_settings_are_spec_errors(tmp_path: Path, serve, auth, expected) -> None:
    config = orders_action(tmp_path, serve(), auth=ActionAuth(**auth))
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        action_tools(config, spec_folder=tmp_path, allow_private=True, environ={"K": "1", "A": "1", "B": "1"})


# -- hostile responses and redirects -------------------------------------------------------------------


def export_app() -> FastAPI:
    app = FastAPI()
    big = json.dumps([{"order_id": f"A{n:06d}", "note": "x" * 63} for n in range(100_000)])  # 10 MB

    @app.get("/export")
    def export() -> Response:
        return Response(big, media_type="application/json")

    @app.get("/elsewhere")
    def elsewhere() -> RedirectResponse:
        return RedirectResponse("http://internal.example/orders", status_code=302)

    return app


def export_doc(folder: Path, service: Service, **config: Any) -> ActionConfig:
    ok = {"200": {"description": "ok"}}
    doc = minimal({"/export": {"get": {"operationId": "exportOrders", "summary": "Every order", "responses": ok}},
                   "/elsewhere": {"get": {"operationId": "goElsewhere", "responses": ok}}},
                  servers=[{"url": service.url}])
    return write_doc(folder, doc).model_copy(update=config)


def test_a_10mb_response_is_refused_over_the_byte_cap(tmp_path: Path, serve) -> None:
    tools = tools_by_name(export_doc(tmp_path, serve(export_app())), tmp_path)
    answer = tools["exportOrders"].invoke({})
    assert answer.startswith("exportOrders failed: the response from 127.0.0.1 is 10,000,000 bytes")
    assert "over the 1,000,000-byte limit" in answer


def test_a_large_allowed_response_is_truncated_for_the_model(tmp_path: Path, serve) -> None:
    config = export_doc(tmp_path, serve(export_app()), max_response_bytes=20_000_000)
    answer = tools_by_name(config, tmp_path, max_result_chars=8_000)["exportOrders"].invoke({})
    assert len(answer) <= 8_000
    assert answer.startswith('HTTP 200 OK\n[{"order_id": "A000000"')
    assert answer.rstrip().endswith("]") and "[truncated: 10," in answer


def test_a_redirect_away_from_the_server_host_is_refused(tmp_path: Path, serve, monkeypatch, connections) -> None:
    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake(host, port, *args, **kwargs):
        lookups.append(host)
        if host == "internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    tools = tools_by_name(export_doc(tmp_path, serve(export_app())), tmp_path)
    answer = tools["goElsewhere"].invoke({})
    assert "refused to contact internal.example: not an allowed host (allowed: 127.0.0.1)" in answer
    assert "internal.example" not in lookups and set(connections) == {"127.0.0.1"}


# -- request building without a server -----------------------------------------------------------------


def test_query_styles_headers_and_a_whole_body(tmp_path: Path) -> None:
    ok = {"200": {"description": "ok"}}
    doc = minimal({"/search/{kind}": {"post": {
        "operationId": "search",
        "parameters": [
            {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
            {"name": "ids", "in": "query", "explode": False, "schema": {"type": "array", "items": {"type": "integer"}}},
            {"name": "filter", "in": "query", "style": "deepObject", "schema": {"type": "object"}},
            {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
            {"name": "config", "in": "query", "schema": {"type": "string"}},
            {"name": "Authorization", "in": "header", "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "array", "items": {"type": "string"}}}}},
        "responses": ok}}})
    (op,) = load_actions(write_doc(tmp_path, doc), spec_folder=tmp_path, allow_private=False)
    assert isinstance(op, ActionOperation) and op.requires_confirmation and op.body == "whole"
    assert set(op.args_schema["properties"]) == {"kind", "tag", "ids", "filter", "X-Trace", "query_config", "body"}
    assert op.args_schema["required"] == ["kind", "body"]
    url, query, headers, body = op.request_parts({
        "kind": "a/b c", "tag": ["x", "y"], "ids": [1, 2], "filter": {"status": "open"}, "X-Trace": "t1",
        "query_config": "c", "body": ["one"]})
    assert url == "https://api.example.com/v1/search/a%2Fb%20c"
    assert query == [("tag", "x"), ("tag", "y"), ("ids", "1,2"), ("filter[status]", "open"), ("config", "c")]
    assert headers == {"X-Trace": "t1"} and body == ["one"]
    with pytest.raises(ToolException, match="line breaks"):
        op.request_parts({"kind": "k", "X-Trace": "a\r\nInjected: yes", "body": []})


def test_openapi_30_quirks_and_a_recursive_schema(tmp_path: Path) -> None:
    doc = minimal({"/nodes": {"post": {
        "operationId": "addNode",
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}},
        "responses": {"200": {"description": "ok"}}}}},
        components={"schemas": {"Node": {"type": "object", "properties": {
            "name": {"type": "string", "nullable": True, "example": "root"},
            "weight": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "id": {"type": "string", "readOnly": True},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}})
    doc["openapi"] = "3.0.3"
    (op,) = load_actions(write_doc(tmp_path, doc), spec_folder=tmp_path, allow_private=False)
    props = op.args_schema["properties"]
    assert props["name"] == {"type": ["string", "null"], "examples": ["root"]}
    assert props["weight"] == {"type": "number", "exclusiveMinimum": 0}
    assert "id" not in props  # read-only: never sent
    assert props["children"]["items"]["description"].startswith("(recursive")
    assert op.body == "flat" and op.args_schema["required"] == []


def test_json_documents_load(tmp_path: Path) -> None:
    config = write_doc(tmp_path, json.dumps(minimal()), name="api.json")
    (op,) = load_actions(config, spec_folder=tmp_path, allow_private=False)
    assert op.operation_id == "listThings" and op.base_url == "https://api.example.com/v1"


# -- bad documents -------------------------------------------------------------------------------------


def _ref_bomb() -> dict[str, Any]:
    schemas = {f"L{i}": {"type": "object", "properties": {f"p{j}": {"$ref": f"#/components/schemas/L{i + 1}"}
                                                           for j in range(10)}} for i in range(8)}
    schemas["L8"] = {"type": "string"}
    return minimal({"/x": {"post": {"operationId": "bomb", "requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/L0"}}}}, "responses": {"200": {"description": "ok"}}}}},
        components={"schemas": schemas})


def _with_op(op: dict[str, Any], path: str = "/x", method: str = "get") -> dict[str, Any]:
    return minimal({path: {method: {"responses": {"200": {"description": "ok"}}, **op}}})


BAD_DOCUMENTS = {
    "yaml syntax": ("openapi: 3.1.0\ninfo: [unclosed\n", "invalid YAML"),
    "json syntax": ('{"openapi": "3.1.0",', "invalid JSON"),
    "not a mapping": ("- just\n- a list\n", "must be a mapping (openapi: 3.1.0"),
    "empty": ("\n\n", "the OpenAPI file is empty"),
    "swagger 2": ({"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}},
                  "Swagger 2.0 is not supported"),
    "version": ({**minimal(), "openapi": "4.0.0"}, "openapi: '4.0.0' is not a supported version"),
    "invalid structure": (_with_op({"operationId": "x", "parameters": [{"name": "a", "in": "body"}]}),
                          "paths./x.get.parameters.0.in: invalid OpenAPI: Input should be 'query'"),
    "missing info": ({k: v for k, v in minimal().items() if k != "info"}, "info: invalid OpenAPI: Field required"),
    "no operations": (minimal({}), "the document defines no operations"),
    "no operationId": (minimal({"/things/{id}": {"delete": {"responses": {"200": {"description": "ok"}}}}}),
                       "paths./things/{id}.delete: DELETE /things/{id} has no operationId; add one"),
    "bad operationId": (_with_op({"operationId": "get order!"}), "'get order!' cannot be a tool name"),
    "external file ref": (_with_op({"operationId": "x", "parameters": [{"$ref": "common.yaml#/parameters/Id"}]}),
                          "$ref 'common.yaml#/parameters/Id' points outside this document"),
    "external url ref": (_with_op({"operationId": "x", "responses": {"200": {"$ref": "https://evil.example/r.json"}}}),
                         "$ref 'https://evil.example/r.json' points outside this document"),
    "dangling ref": (_with_op({"operationId": "x", "parameters": [{"$ref": "#/components/parameters/Nope"}]}),
                     "$ref '#/components/parameters/Nope' points to nothing"),
    "circular ref": ({**_with_op({"operationId": "x", "parameters": [{"$ref": "#/components/parameters/A"}]}),
                      "components": {"parameters": {"A": {"$ref": "#/components/parameters/B"},
                                                    "B": {"$ref": "#/components/parameters/A"}}}},
                     "leads round in a circle"),
    "ref bomb": (_ref_bomb(), "the schemas expand to more than 10,000 parts through $ref"),
    "relative server": ({**minimal(), "servers": [{"url": "/api"}]}, "'/api' is not an absolute http(s) URL"),
    "no server": ({k: v for k, v in minimal().items() if k != "servers"}, "the document names no server"),
    "undescribed path param": (_with_op({"operationId": "x"}, path="/x/{id}"), "path parameter {id} is not described"),
    "form body": (_with_op({"operationId": "x", "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object"}}}}}, method="post"),
        "the request body is multipart/form-data; only JSON bodies are supported"),
}


@pytest.mark.parametrize("name", list(BAD_DOCUMENTS))
def test_bad_documents_name_the_file_and_the_problem(tmp_path: Path, name: str) -> None:
    doc, expected = BAD_DOCUMENTS[name]
    file = "api.json" if name == "json syntax" else "api.yaml"
    message = problems_of(write_doc(tmp_path, doc, name=file), tmp_path)
    assert message.startswith(f"{file}: ")
    assert expected in message
    assert "\n" not in message  # one problem, said once


def test_every_problem_is_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = (
        "openapi: 3.1.0\ninfo: {title: T, version: '1'}\nservers: [{url: 'https://api.example.com'}]\npaths:\n"
        "  /a:\n    get:\n      responses: {'200': {description: ok}}\n"
        "  /b:\n    post:\n      responses: {'200': {description: ok}}\n"
    )
    message = problems_of(write_doc(tmp_path, text), tmp_path)
    assert "paths./a.get: GET /a has no operationId" in message and "(line 6)" in message
    assert "paths./b.post: POST /b has no operationId" in message and "(line 9)" in message


def test_unknown_operations_and_confirm_names_get_did_you_mean(tmp_path: Path) -> None:
    config = write_doc(tmp_path, minimal()).model_copy(update={"operations": ["listThing"], "confirm": ["listThigns"]})
    message = problems_of(config, tmp_path)
    assert "operations: no operation 'listThing' in the document; did you mean 'listThings'?" in message
    assert "confirm: no operation 'listThigns' in the document; did you mean 'listThings'?" in message


def test_duplicate_operation_ids(tmp_path: Path) -> None:
    ok = {"200": {"description": "ok"}}
    doc = minimal({"/a": {"get": {"operationId": "fetch", "responses": ok}},
                   "/b": {"get": {"operationId": "fetch", "responses": ok}}})
    assert "operationId 'fetch' is also used by GET /a" in problems_of(write_doc(tmp_path, doc), tmp_path)


def test_file_problems(tmp_path: Path) -> None:
    assert "OpenAPI file not found" in problems_of(ActionConfig(openapi="missing.yaml"), tmp_path)
    assert "may not leave the spec's folder" in problems_of(ActionConfig(openapi="../outside.yaml"), tmp_path)
    (tmp_path / "huge.yaml").write_bytes(b"#" * 2_000_001)
    assert "over 2,000,000 bytes" in problems_of(ActionConfig(openapi="huge.yaml"), tmp_path)


def test_private_literal_server_needs_the_flag_but_names_are_checked_at_call_time(tmp_path: Path) -> None:
    for url in ("http://10.1.2.3/api", "http://localhost:8000", "http://[::1]:9000"):
        doc = {**minimal(), "servers": [{"url": url}]}
        assert "allow_private_network: true" in problems_of(write_doc(tmp_path, doc), tmp_path)
    doc = {**minimal(), "servers": [{"url": "https://{region}.api.example.com", "variables": {
        "region": {"default": "eu"}}}]}
    (op,) = load_actions(write_doc(tmp_path, doc), spec_folder=tmp_path, allow_private=False)
    assert op.base_url == "https://eu.api.example.com" and op.host == "eu.api.example.com"


# -- the demo service as a program ---------------------------------------------------------------------


def test_demo_service_runs_as_a_script() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACME_ORDERS_")}
    process = subprocess.Popen([sys.executable, str(SERVICE_FILE), "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/orders/A1003", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the demo service did not start"
                time.sleep(0.1)
        assert response.json()["status"] == "delivered"
    finally:
        process.terminate()
        process.wait(10)
