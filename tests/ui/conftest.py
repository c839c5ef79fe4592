"""Launch the store for real on a free loopback port and drive it through gradio_client."""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gradio_client import Client

from gptbuilder.store import Store
from gptbuilder.ui import build_ui


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def launch(gpts_dir, tmp_path) -> Iterator[Callable[..., tuple[Any, Client]]]:
    """Start the store (closed after the test); returns (demo, client)."""
    demos = []

    def start(store: Store | None = None, **options: Any) -> tuple[Any, Client]:
        store = store or Store(gpts_dir, data_dir=tmp_path / "data")
        demo = build_ui(store, **options)
        demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
        demos.append(demo)
        return demo, Client(demo.local_url, verbose=False)

    yield start
    for demo in demos:
        demo.close()


def text_of(message: dict[str, Any]) -> str:
    """A chatbot message's visible text, whether gradio sent a string or a list of parts (answers come as HTML)."""
    content = content_of(message)
    return visible_text(content) if message.get("role") == "assistant" and content.startswith("<") else content


def content_of(message: dict[str, Any]) -> str:
    """A chatbot message's content as sent: a string, or its text parts joined."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def visible_text(html_text: str) -> str:
    """What the page shows of an answer's HTML: the text, tags dropped, entities (``&#10;`` too) decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", html_text))
