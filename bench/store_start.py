"""Store start-up against a bare Gradio app, in the same run.

Measures, from process start: the page answering 200, and the first streamed token of a chat
(through gradio_client). The store runs `python app.py`'s path (build_ui over a GPTs folder with the
deterministic fake model, so the number is the store's own overhead, plus the embedded model for
reference); the baseline is a bare `gr.ChatInterface` echo app. Target: store ≤ 2× the bare app.

    python bench/store_start.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STORE = """
import sys
from gptbuilder.catalog import load_catalog
from gptbuilder.settings import Settings
from gptbuilder.store import Store
from gptbuilder.ui import build_ui, store_css, store_theme
settings = Settings.from_env()
store = Store(settings.gpts_dir, data_dir=settings.data_dir, catalog=load_catalog(settings.catalog_path))
build_ui(store).queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), theme=store_theme(), css=store_css(), quiet=True)
"""

BARE = """
import sys, time
import gradio as gr
def echo(message, history):
    text = ""
    for word in ("You said: " + message).split(" "):
        text += word + " "
        yield text
gr.ChatInterface(echo, api_name="chat").queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), quiet=True)
"""

ECHO_GPT = "name: Echo\ninstructions: Repeat.\nmodel: {provider: fake}\n"
REAL_GPT = "name: Real\ninstructions: You are a helpful assistant.\nmodel: {temperature: 0, max_tokens: 16}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_200(url: str, start: float, timeout: float = 120) -> float:
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


def first_token(url: str, start: float, args: tuple) -> float:
    from gradio_client import Client

    client = Client(url, verbose=False)
    for update in client.submit(*args, api_name="/chat"):
        chat = update[0] if isinstance(update, (list, tuple)) and update and isinstance(update[0], list) else update
        if isinstance(chat, str) and chat.strip():
            return time.perf_counter() - start
        if isinstance(chat, list) and chat and chat[-1].get("role") == "assistant" and _text(chat[-1]).strip():
            return time.perf_counter() - start
    raise RuntimeError(f"{url}: the chat ended without a token")


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def measure(code: str, env: dict[str, str], chat_args: tuple) -> tuple[float, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, str(port)], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = wait_for_200(url, start)
        token = first_token(url, start, chat_args)
        return page, token
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gpts = Path(tmp) / "gpts"
        gpts.mkdir()
        (gpts / "echo.yaml").write_text(ECHO_GPT, encoding="utf-8")
        (gpts / "real.yaml").write_text(REAL_GPT, encoding="utf-8")
        env = {**os.environ, "GPTBUILDER_GPTS_DIR": str(gpts), "GPTBUILDER_DATA_DIR": str(Path(tmp) / "data"),
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        env.pop("GPTBUILDER_DATABASE_URL", None)
        results: dict[str, list[tuple[float, float]]] = {"bare": [], "store": [], "store-real": []}
        for _ in range(options.rounds):  # interleaved, so a busy moment hits both
            results["bare"].append(measure(BARE, env, ("hello",)))
            results["store"].append(measure(STORE, env, ("hello", "echo")))
            results["store-real"].append(measure(STORE, env, ("What is 2 + 2?", "real")))
    median = {name: (statistics.median(p for p, _ in runs), statistics.median(t for _, t in runs)) for name, runs in results.items()}
    print(f"{'app':<12} {'page 200 (s)':>13} {'first token (s)':>16}   (median of {options.rounds})")
    for name, (page, token) in median.items():
        print(f"{name:<12} {page:>13.2f} {token:>16.2f}")
    bare_page, bare_token = median["bare"]
    store_page, store_token = median["store"]
    print(f"store / bare: page {store_page / bare_page:.2f}x, first token {store_token / bare_token:.2f}x (target <= 2x)")
    print(f"store with the embedded model: first token {median['store-real'][1] / bare_token:.2f}x the bare echo app")


if __name__ == "__main__":
    main()
