"""Local backend vs raw llama-cpp-python: load time, time to first token and decode speed, same run.

    python bench/local_model.py [--rounds 5] [--max-tokens 128] [--strict]

Both sides load the same GGUF (the embedded SmolLM2-135M), with the same context size, threads and
extra-buffer setting, and answer the same prompt greedily, so they decode the same tokens. Rounds
alternate between the two to spread machine noise evenly. Targets (issue #2): our decode speed
>= 0.9x raw, our load time <= 1.5x raw.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gptbuilder.agent import compile_agent
from gptbuilder.events import Done, TextDelta
from gptbuilder.loader import load_spec
from gptbuilder.models import llama_cpp as backend

SYSTEM = "You are a helpful assistant."
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
N_CTX = 4096
REPEAT_PENALTY = 1.1  # the local backend's default, so both sides decode the same tokens


def raw_load(path: Path, threads: int):
    """Load the GGUF with plain llama_cpp.Llama, timed."""
    from llama_cpp import Llama

    start = time.perf_counter()
    with backend.extra_buffer_types(backend.default_extra_buffers()):
        llm = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=threads, verbose=False)
    return llm, time.perf_counter() - start


def raw_generate(llm, max_tokens: int) -> tuple[float, float, int]:
    """(seconds to first token, decode tokens/s after it, tokens) for raw create_chat_completion."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    start = time.perf_counter()
    first = None
    tokens = 0
    for chunk in llm.create_chat_completion(
        messages, temperature=0, repeat_penalty=REPEAT_PENALTY, max_tokens=max_tokens, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            tokens += 1
            first = first or time.perf_counter()
    end = time.perf_counter()
    return first - start, (tokens - 1) / (end - first), tokens


def ours_load(spec_path: Path) -> tuple[object, float]:
    """Load through gptbuilder (spec → agent → shared llama runtime), timed; the cache is emptied first."""
    backend._runtimes.clear()
    start = time.perf_counter()
    agent = compile_agent(load_spec(spec_path))
    agent.model.runtime  # noqa: B018 - force the weights to load now
    return agent, time.perf_counter() - start


def ours_generate(agent, max_tokens: int) -> tuple[float, float, int]:
    """(seconds to first token, decode tokens/s after it, tokens) through Agent.stream."""
    start = time.perf_counter()
    first = None
    tokens = 0
    for event in agent.stream(PROMPT, max_tokens=max_tokens):
        if isinstance(event, TextDelta):
            first = first or time.perf_counter()
        elif isinstance(event, Done):
            tokens = event.usage.completion_tokens
    end = time.perf_counter()
    return first - start, (tokens - 1) / (end - first), tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    path = backend.default_model_path()
    threads = os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp())
    spec_path = folder / "bench.yaml"
    spec_path.write_text(
        f"name: Bench\ninstructions: {SYSTEM}\nmodel: {{temperature: 0, context_window: {N_CTX}}}\n", encoding="utf-8"
    )

    loads = {"raw": [], "ours": []}
    ttft = {"raw": [], "ours": []}
    speed = {"raw": [], "ours": []}
    for _ in range(args.rounds):
        llm, seconds = raw_load(path, threads)
        loads["raw"].append(seconds)
        agent, seconds = ours_load(spec_path)
        loads["ours"].append(seconds)
        runs = (
            ("raw", functools.partial(raw_generate, llm, args.max_tokens)),
            ("ours", functools.partial(ours_generate, agent, args.max_tokens)),
        )
        for name, run in runs:
            first, rate, tokens = run()
            ttft[name].append(first)
            speed[name].append(rate)
        del llm, agent, runs  # free this round's models before the next round loads them again

    med = {k: {"load": statistics.median(loads[k]), "ttft": statistics.median(ttft[k]), "tps": statistics.median(speed[k])} for k in loads}
    print(f"model: {path.name}  threads: {threads}  rounds: {args.rounds}  max_tokens: {args.max_tokens}  tokens/answer: {tokens}")
    print(f"{'':12}{'raw llama_cpp':>16}{'gptbuilder':>14}{'ratio':>9}")
    print(f"{'load s':12}{med['raw']['load']:16.3f}{med['ours']['load']:14.3f}{med['ours']['load'] / med['raw']['load']:9.2f}x")
    print(f"{'ttft s':12}{med['raw']['ttft']:16.3f}{med['ours']['ttft']:14.3f}{med['ours']['ttft'] / med['raw']['ttft']:9.2f}x")
    print(f"{'decode tok/s':12}{med['raw']['tps']:16.1f}{med['ours']['tps']:14.1f}{med['ours']['tps'] / med['raw']['tps']:9.2f}x")
    decode_ok = med["ours"]["tps"] >= 0.9 * med["raw"]["tps"]
    load_ok = med["ours"]["load"] <= 1.5 * med["raw"]["load"]
    print(f"target decode >= 0.90x raw: {'PASS' if decode_ok else 'FAIL'};  target load <= 1.50x raw: {'PASS' if load_ok else 'FAIL'}")
    return 0 if (decode_ok and load_ok) or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
