"""`gptbuilder serve` throughput and concurrency, against baselines measured in the same run.

    python bench/serve.py [--requests 600] [--concurrency 8] [--streams 16] [--max-tokens 48] [--rounds 2]
                          [--only PART] [--strict]

1. Overhead: requests/s and p50/p99 latency of POST /v1/chat/completions on a fake-model GPT (auth,
   rate limits, queue, usage row in SQLite, metrics — everything a real request pays) against a bare
   FastAPI endpoint returning the same JSON. Each app runs in its own uvicorn process; the client keeps
   ``--concurrency`` requests in flight; rounds alternate the two. Target: >= 0.5x the bare endpoint's requests/s.
2. Concurrency on the embedded model (SmolLM2-135M, llama.cpp): each of ``--streams`` prompts is first
   streamed alone, one after another (single-stream tokens/s and the reference answers, temperature 0),
   then all at once; ``--rounds`` alternate the two, keeping each side's best. Targets: all complete; every
   concurrent answer equals its solo answer (no token of one stream lands in another); aggregate tokens/s
   >= 0.9x a single stream.
3. Warm start on the embedded model: `gptbuilder serve` is started as a process for a GPT with a calculator
   tool and knowledge (indexed beforehand, as on any restart), once with ``--lazy`` (each GPT loads on its
   first request: the before) and once warming every GPT before /ready says ready (the default). Each run
   times process start to /ready 200, then the first tool-using request against the same request asked
   again ``--later`` times, each after another question (median). Target: with warm-up, the first
   request within 2x a later one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import Request  # module level: FastAPI resolves the endpoint's (string) annotations here
from fastapi.responses import Response

FAKE_SPEC = "name: Bench\ninstructions: Be brief.\nmodel: {provider: fake, options: {replies: ['The answer is forty-two, as always.']}}\n"
REAL_SPEC = "name: Smol\ninstructions: You are a helpful assistant. Answer in one or two sentences.\n"
TOOL_SPEC = """name: Shop calculator
instructions: You help with the shop's prices. Use the calculator for any arithmetic.
conversation_starters: ["What do 3 pairs of boots cost?"]
model: {max_tokens: 48}
knowledge: {files: ["knowledge/*.md"], on_no_match: answer}
tools: [{builtin: calculator}]
"""
PRICES = "# Prices\n\nA pair of hiking boots costs 120 euros. Socks cost 9 euros a pair. Shipping is free over 50 euros.\n"
# Each of these is routed to the calculator (the router's similarity clears its threshold): tool-using requests.
TOOL_QUESTIONS = ["Calculate 120 * 3.", "Calculate 12 * 7.", "Calculate 9 * 14.", "Calculate 64 / 8.", "Calculate 3 * 120 + 2 * 9."]
TOPICS = [
    "the sea", "mountains", "coffee", "bicycles", "the moon", "libraries", "rain", "trains",
    "gardens", "music", "bread", "winter", "bees", "maps", "clocks", "rivers",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_gptbuilder(port: int, gpts: str, data: str) -> None:
    import uvicorn

    from gptbuilder.server import ServerConfig, create_app
    from gptbuilder.store import Store

    config = ServerConfig(requests_per_minute_per_ip=10**9, workers=4, queue_size=64)
    app = create_app(Store(gpts, data_dir=data), config=config)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _serve_bare(port: int, body: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    payload = body.encode()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        await request.json()
        return Response(payload, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _start(target, *args) -> tuple[multiprocessing.Process, str]:
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(port, *args), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health" if target is _serve_gptbuilder else f"{url}/docs", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


async def _load(url: str, body: dict, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(range(total))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            while queue:
                queue.pop()
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started), latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def overhead(args: argparse.Namespace, folder: Path) -> float:
    """Part 1: gptbuilder vs bare FastAPI on the same JSON."""
    gpts = folder / "gpts"
    gpts.mkdir()
    (gpts / "bench.yaml").write_text(FAKE_SPEC, encoding="utf-8")
    body = {"model": "bench", "messages": [{"role": "user", "content": "What is the answer?"}]}
    ours, url = _start(_serve_gptbuilder, str(gpts), str(folder / "data"))
    sample = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).json()
    bare, bare_url = _start(_serve_bare, json.dumps(sample))
    results = {}
    try:
        for target in (bare_url, url):
            asyncio.run(_load(target, body, max(50, args.requests // 10), args.concurrency))  # warm-up
        for _ in range(args.rounds):  # alternate the two sides, keep each one's best round
            for name, target in (("bare", bare_url), ("gptbuilder", url)):
                result = asyncio.run(_load(target, body, args.requests, args.concurrency))
                if name not in results or result[0] > results[name][0]:
                    results[name] = result
    finally:
        ours.terminate()
        bare.terminate()
    print(f"1. /v1/chat/completions, fake model, {args.requests} requests, {args.concurrency} in flight")
    for name, (rps, lat) in results.items():
        print(f"   {name:<11} {rps:8.1f} req/s   p50 {_pct(lat, 50):6.1f} ms   p99 {_pct(lat, 99):6.1f} ms")
    ratio = results["gptbuilder"][0] / results["bare"][0]
    print(f"   ratio {ratio:.2f}x the bare endpoint (target >= 0.5x)")
    return ratio


async def _stream(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> tuple[str, int, float]:
    body = {
        "model": "smol",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 7,
    }
    parts: list[str] = []
    tokens = 0
    started = time.perf_counter()
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk["choices"]:
                parts.append(chunk["choices"][0]["delta"].get("content") or "")
            elif chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return "".join(parts), tokens, time.perf_counter() - started


async def _concurrency(url: str, prompts: list[str], max_tokens: int, rounds: int) -> tuple[list, list, float, float]:
    """Alternate solo and concurrent passes; keep each side's best round (a shared machine's load drifts)."""
    best_solo: tuple[float, list] = (0.0, [])
    best_together: tuple[float, list, float] = (0.0, [], 0.0)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await _stream(client, "Hello!", 8)  # load the weights before timing
        for _ in range(rounds):
            solo = [await _stream(client, p, max_tokens) for p in prompts]
            rate = statistics.mean(tokens / seconds for _, tokens, seconds in solo)
            if rate > best_solo[0]:
                best_solo = (rate, solo)
            started = time.perf_counter()
            together = list(await asyncio.gather(*(_stream(client, p, max_tokens) for p in prompts)))
            wall = time.perf_counter() - started
            aggregate = sum(tokens for _, tokens, _ in together) / wall
            if aggregate > best_together[0]:
                best_together = (aggregate, together, wall)
    return best_solo[1], best_together[1], best_together[2], best_solo[0]


def embedded(args: argparse.Namespace, folder: Path) -> tuple[bool, bool, float]:
    """Part 2: concurrent streams on the embedded model."""
    gpts = folder / "gpts-real"
    gpts.mkdir()
    (gpts / "smol.yaml").write_text(REAL_SPEC, encoding="utf-8")
    server, url = _start(_serve_gptbuilder, str(gpts), str(folder / "data-real"))
    prompts = [f"Write one sentence about {TOPICS[i % len(TOPICS)]}." for i in range(args.streams)]
    try:
        solo, together, wall, single = asyncio.run(_concurrency(url, prompts, args.max_tokens, args.rounds))
    finally:
        server.terminate()
    aggregate = sum(tokens for _, tokens, _ in together) / wall
    complete = all(tokens > 0 for _, tokens, _ in together) and len(together) == len(prompts)
    same = [a[0] == b[0] for a, b in zip(solo, together)]
    print(f"2. embedded SmolLM2-135M, {args.streams} concurrent streams of up to {args.max_tokens} tokens")
    print(f"   single stream {single:7.1f} tokens/s   {args.streams} at once: {aggregate:7.1f} tokens/s aggregate in {wall:.1f} s")
    print(f"   all complete: {complete}   each equals its solo answer: {sum(same)}/{len(same)}")
    print(f"   ratio {aggregate / single:.2f}x a single stream (target >= 0.9x)")
    return complete, all(same), aggregate / single


def _serve_process(gpts: Path, data: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str, float]:
    """Start `gptbuilder serve` as a process; its URL and the seconds from start to /ready 200."""
    port = _free_port()
    command = shutil.which("gptbuilder") or str(Path(sys.executable).with_name("gptbuilder"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTBUILDER_")}  # no keys, no lazy from the shell
    started = time.monotonic()
    process = subprocess.Popen(
        [command, "--gpts", str(gpts), "--data", str(data), "serve", "--port", str(port), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - started < 600:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return process, url, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a process's readiness from outside: there is no event to wait on
    process.terminate()
    raise RuntimeError("serve was not ready in 600 s")


def _ask(url: str, question: str) -> float:
    body = {"model": "shop", "messages": [{"role": "user", "content": question}], "temperature": 0, "seed": 7}
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    seconds = time.perf_counter() - started
    if not response.json()["choices"][0]["message"].get("tool_steps"):
        raise RuntimeError(f"{question!r} was answered without the calculator: not a tool-using request")
    return seconds


def warm_start(args: argparse.Namespace, folder: Path) -> float:
    """Part 3: process start to /ready, and the first tool-using request against later ones, lazy and warmed."""
    gpts, data = folder / "gpts-warm", folder / "data-warm"
    (gpts / "knowledge").mkdir(parents=True)
    (gpts / "knowledge" / "prices.md").write_text(PRICES, encoding="utf-8")
    (gpts / "shop.yaml").write_text(TOOL_SPEC, encoding="utf-8")
    command = shutil.which("gptbuilder") or str(Path(sys.executable).with_name("gptbuilder"))
    subprocess.run([command, "--gpts", str(gpts), "--data", str(data), "index", "shop"], check=True, capture_output=True)
    print("3. warm start, embedded SmolLM2-135M, a GPT with a calculator tool and knowledge;")
    print(f"   later = the same request again, median of {args.later}, each after another question")
    ratios = {}
    for name, extra in (("lazy", ("--lazy",)), ("warmed", ())):
        log = folder / f"serve-{name}.log"
        process, url, ready = _serve_process(gpts, data, log, *extra)
        try:
            first = _ask(url, TOOL_QUESTIONS[0])
            again = []
            for other in TOOL_QUESTIONS[1 : 1 + args.later]:
                _ask(url, other)  # another request in between, as in real traffic (the model keeps the last prompt)
                again.append(_ask(url, TOOL_QUESTIONS[0]))  # the same answer again: the same tokens to generate
            later = statistics.median(again)
        finally:
            process.terminate()
            process.wait(30)
        ratios[name] = first / later
        warmed = re.search(r"warm-up: \d+ of \d+ GPTs in ([\d.]+) s", log.read_text())
        took = f" (warm-up {warmed.group(1)} s of it)" if warmed else ""
        print(f"   {name:<7} /ready after {ready:5.1f} s{took}   first tool request {first:5.2f} s   "
              f"later {later:5.2f} s   ratio {ratios[name]:.1f}x")
    print(f"   first request within {ratios['warmed']:.1f}x a later one with warm-up, {ratios['lazy']:.1f}x with --lazy (target <= 2x)")
    return ratios["warmed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2, help="rounds alternating the two sides of each part, best kept")
    parser.add_argument("--later", type=int, default=3, help="later tool requests timed after the first (part 3)")
    parser.add_argument("--only", choices=("overhead", "embedded", "warm"), help="run one part")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "overhead"):
            ok = overhead(args, Path(tmp)) >= 0.5
        if args.only in (None, "embedded"):
            complete, clean, stream_ratio = embedded(args, Path(tmp))
            ok = ok and complete and clean and stream_ratio >= 0.9
        if args.only in (None, "warm"):
            ok = warm_start(args, Path(tmp)) <= 2 and ok
    print("all targets met" if ok else "a target was missed")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
