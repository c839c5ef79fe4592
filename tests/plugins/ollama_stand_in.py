"""A loopback stand-in for Ollama's native chat API (`POST /api/chat`, streamed NDJSON), for tests.

Stdlib only, one background thread, an ephemeral port on 127.0.0.1. Each request gets the next
scripted reply (the last one repeats); every request body is recorded. A reply is a list of message
pieces (text, or a list of tool calls), an (HTTP status, error text) pair, or raw bytes sent as they are.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Piece = str | list[dict[str, Any]]  # text, or tool calls as Ollama writes them
Reply = list[Piece] | tuple[int, str] | bytes


@dataclass
class OllamaStandIn:
    """Answers /api/chat with scripted replies; `requests` holds the JSON bodies it received."""

    replies: list[Reply] = field(default_factory=lambda: [["Bonjour", " from", " the", " stand-in", "."]])
    prompt_eval_count: int = 31
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        """Where a spec's `model.base_url` points."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OllamaStandIn:
        """Serve in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (if it started) and free the port."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        """Record a request and pick its reply."""
        with self._lock:
            self.requests.append(body)
            return self.replies[min(len(self.requests), len(self.replies)) - 1]


def _handler_for(server: OllamaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path != "/api/chat":
                return self._send(404, [{"error": "404 page not found"}])
            reply = server.next_reply(body)
            if isinstance(reply, tuple):
                return self._send(reply[0], [{"error": reply[1]}])
            if isinstance(reply, bytes):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(reply)
                return None
            events = []
            for piece in reply:
                message = {"role": "assistant", "content": piece} if isinstance(piece, str) else {
                    "role": "assistant", "content": "", "tool_calls": piece
                }
                events.append({"model": body.get("model"), "message": message, "done": False})
            events.append({
                "model": body.get("model"),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": server.prompt_eval_count,
                "eval_count": len(reply),
            })
            self._send(200, events)

        def _send(self, status: int, events: list[dict[str, Any]]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-ndjson" if status == 200 else "application/json")
            self.end_headers()
            for event in events:  # one line at a time, as Ollama streams them
                self.wfile.write(json.dumps(event).encode() + b"\n")
                self.wfile.flush()

    return Handler
