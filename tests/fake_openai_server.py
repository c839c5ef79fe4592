"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions wire format, for tests.

Stdlib only (`http.server`), one background thread, an ephemeral port. It answers
`POST /v1/chat/completions` as JSON or as an SSE stream (HTTP/1.1 chunked, like api.openai.com),
checks `Authorization: Bearer <key>`, records every request, and can be told to hang or to
refuse unknown model names with OpenAI's 404 body. `POST /v1/moderations` flags a text that contains one
of `flagged_words` (under that word's category), in OpenAI's shape.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1_700_000_000


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeOpenAIServer:
    """Serves canned answers; change the attributes between requests to change its behaviour.

    `api_key=None` accepts any key; `models=None` accepts any model name; `hang` seconds makes
    every chat request wait before answering (released at once by `close`); `fail_with=(status,
    message)` answers every chat request with that status and OpenAI's error body.
    """

    api_key: str | None = "sk-test-key"
    models: set[str] | None = field(default_factory=lambda: {"gpt-test"})
    pieces: list[str] = field(default_factory=lambda: ["Hello", " there", ",", " friend", "."])
    finish_reason: str = "stop"
    prompt_tokens: int = 42
    completion_tokens: int = 7
    hang: float = 0.0
    fail_with: tuple[int, str] | None = None
    flagged_words: dict[str, str] = field(default_factory=lambda: {"nasty": "harassment", "bomb": "violence"})
    moderation_reply: Any = None  # answered to every moderation request instead, when set (a malformed one)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # a client that hung up is not news
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )

    @property
    def port(self) -> int:
        """The ephemeral port it listens on."""
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What a spec writes in `model.base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_bodies(self) -> list[dict[str, Any]]:
        """JSON bodies of every chat-completions request, in order."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions") and r.body is not None]

    @property
    def moderation_inputs(self) -> list[Any]:
        """The `input` of every moderations request, in order."""
        return [r.body.get("input") for r in self.requests if r.path.endswith("/moderations") and isinstance(r.body, dict)]

    def start(self) -> FakeOpenAIServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release any hanging request."""
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)


def _error(message: str, kind: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, chunked streams: what the real API does

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._record(None)
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models":
                names = sorted(server.models or {"gpt-test"})
                data = [{"id": n, "object": "model", "created": CREATED, "owned_by": "fake"} for n in names]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, _error(f"Invalid URL (GET {self.path})", "invalid_request_error", None))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            self._record(body)
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/moderations":
                self._moderate(body)
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, _error(f"Invalid URL (POST {self.path})", "invalid_request_error", None))
                return
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or "model" not in body:
                self._json(400, _error("We could not parse the JSON body of your request.", "invalid_request_error", None))
                return
            model = body["model"]
            if server.models is not None and model not in server.models:
                self._json(
                    404,
                    _error(
                        f"The model `{model}` does not exist or you do not have access to it.",
                        "invalid_request_error",
                        "model_not_found",
                    ),
                )
                return
            if self._failed_or_hung():
                return
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(model, include_usage)
            else:
                self._json(200, self._completion(model))

        def _failed_or_hung(self) -> bool:
            """Answer `fail_with` (True), or wait out `hang` first (False: answer as usual)."""
            if server.fail_with is not None:
                status, message = server.fail_with
                self._json(status, _error(message, "server_error" if status >= 500 else "invalid_request_error", None))
                return True
            if server.hang:
                server._released.wait(server.hang)
            return False

        def _moderate(self, body: Any) -> None:
            if self._failed_or_hung():
                return
            if server.moderation_reply is not None:
                self._json(200, server.moderation_reply)
                return
            texts = body.get("input") if isinstance(body, dict) else None
            texts = [texts] if isinstance(texts, str) else texts
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                self._json(400, _error("input must be a string or a list of strings", "invalid_request_error", None, "input"))
                return
            names = sorted(set(server.flagged_words.values()) | {"harassment", "violence", "sexual"})
            results = []
            for text in texts:
                hits = {category for word, category in server.flagged_words.items() if word in text.lower()}
                results.append({
                    "flagged": bool(hits),
                    "categories": {name: name in hits for name in names},
                    "category_scores": {name: 0.97 if name in hits else 0.01 for name in names},
                })
            self._json(200, {"id": "modr-fake", "model": body.get("model") or "omni-moderation-latest", "results": results})

        def _record(self, body: dict[str, Any] | None) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(Recorded(self.command, self.path, headers, body))

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            match = re.fullmatch(r"Bearer (.+)", self.headers.get("Authorization", ""))
            if match and match.group(1) == server.api_key:
                return True
            shown = match.group(1) if match else ""
            hint = f"{shown[:3]}*****{shown[-4:]}" if len(shown) > 8 else "*****"
            self._json(
                401,
                _error(
                    f"Incorrect API key provided: {hint}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
            return False

        def _usage(self) -> dict[str, int]:
            return {
                "prompt_tokens": server.prompt_tokens,
                "completion_tokens": server.completion_tokens,
                "total_tokens": server.prompt_tokens + server.completion_tokens,
            }

        def _completion(self, model: str) -> dict[str, Any]:
            message = {"role": "assistant", "content": "".join(server.pieces), "refusal": None}
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": server.finish_reason}],
                "usage": self._usage(),
            }

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, model: str, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
                base = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": choices,
                }
                if include_usage:
                    base["usage"] = None
                return {**base, **extra}

            def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
                return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

            events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
            events += [chunk([choice({"content": piece})]) for piece in server.pieces]
            events.append(chunk([choice({}, server.finish_reason)]))
            if include_usage:
                events.append(chunk([], usage=self._usage()))
            for event in events:
                self._send_chunk(f"data: {json.dumps(event)}\n\n".encode())
            self._send_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _send_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
