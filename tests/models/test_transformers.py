"""The transformers provider on real weights: the embedded SmolLM2, as its GGUF and as a saved model folder."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from gptbuilder.agent import compile_agent
from gptbuilder.errors import ModelError
from gptbuilder.events import Done, TextDelta
from gptbuilder.loader import load_spec
from gptbuilder.models.embedded import default_model_path
from gptbuilder.models.registry import get_provider
from gptbuilder.spec import ModelConfig

# Tests never reach the Hugging Face Hub; set before anything imports huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"

from gptbuilder.models.transformers import ChatTransformers, TransformersProvider, load_model, provider

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="session")
def smollm2_hf_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded SmolLM2 GGUF saved as a plain transformers model folder, cached across test runs."""
    import transformers
    from transformers import AutoModelForCausalLM

    gguf = default_model_path()
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    target = Path(cache.mkdir("smollm2-hf")) if cache else tmp_path_factory.mktemp("smollm2-hf")
    marker = target / ".complete"
    stamp = f"{gguf.name} {gguf.stat().st_size} transformers {transformers.__version__}"
    if marker.is_file() and marker.read_text() == stamp:
        return target
    shutil.rmtree(target)
    target.mkdir()
    # A GGUF-loaded model refuses save_pretrained, so copy its weights into a fresh one. Loading through
    # load_model shares the GGUF runtime with test_a_gguf_file_loads_through_the_provider: read once.
    runtime = load_model(str(gguf))
    config = runtime.model.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(type(runtime.model.config).from_dict(config))
    plain.load_state_dict(runtime.model.state_dict())
    plain.save_pretrained(target)
    runtime.tokenizer.save_pretrained(target)
    marker.write_text(stamp)
    return target


@pytest.fixture(scope="module")
def model(smollm2_hf_dir: Path) -> ChatTransformers:
    config = ModelConfig(provider="transformers", name=str(smollm2_hf_dir), temperature=0, max_tokens=24)
    return provider.create(config, base_dir=Path("."))


def answer(chat_model: ChatTransformers, prompt: str = QUESTION, **options) -> str:
    return "".join(chunk.text for chunk in chat_model.stream(prompt, **options))


def test_provider_is_found_through_the_registry():
    found = get_provider("transformers")
    assert found is provider and isinstance(found, TransformersProvider)


@pytest.mark.slow
def test_streams_text_deltas_then_usage_and_finish_reason(model):
    chunks = list(model.stream(QUESTION))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 1 and "".join(texts).strip()
    last = next(c for c in reversed(chunks) if c.usage_metadata)
    usage = last.usage_metadata
    assert usage["input_tokens"] > 5 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert last.response_metadata["finish_reason"] in {"stop", "length"}
    assert last.response_metadata["model_name"] == model.model.rsplit("/", 1)[-1]


@pytest.mark.slow
def test_greedy_answers_are_repeatable(model):
    assert answer(model) == answer(model)
    assert model.invoke(QUESTION).text == answer(model)


@pytest.mark.slow
def test_max_tokens_cuts_the_answer_with_finish_reason_length(model):
    reply = model.invoke("Write a long poem about the sea.", max_tokens=3)
    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.usage_metadata["output_tokens"] == 3


@pytest.mark.slow
def test_stop_strings_end_the_answer_before_them(model):
    full = answer(model)
    stop = full.split()[2]
    assert answer(model, stop=[stop]) == full[: full.index(stop)]
    reply = model.invoke(QUESTION, stop=[stop])
    assert reply.response_metadata["finish_reason"] == "stop"


@pytest.mark.slow
def test_seeded_sampling_is_repeatable(model):
    first = answer(model, "Tell me a story.", temperature=1.0, seed=7, max_tokens=12)
    assert first and answer(model, "Tell me a story.", temperature=1.0, seed=7, max_tokens=12) == first


@pytest.mark.slow
def test_concurrent_chats_do_not_corrupt_each_other(model):
    prompts = [QUESTION, "Name three colors."]
    alone = [answer(model, p) for p in prompts]
    results: list[str | None] = [None, None]
    barrier = threading.Barrier(2)

    def chat(index: int) -> None:
        barrier.wait()
        results[index] = answer(model, prompts[index])

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == alone


@pytest.mark.slow
def test_an_abandoned_stream_releases_the_model(model):
    stream = model.stream("Write a long poem about the sea.", max_tokens=200)
    assert next(stream).text
    stream.close()
    assert not model.runtime.lock.locked()
    assert not any(t.name == "gptbuilder-transformers-generate" and t.is_alive() for t in threading.enumerate())
    assert answer(model).strip()


@pytest.mark.slow
def test_a_failure_inside_generate_is_a_model_error_and_frees_the_model(model):
    with pytest.raises(ModelError, match="generation failed: `max_new_tokens` must be greater than 0"):
        model.invoke(QUESTION, max_tokens=0)
    assert not model.runtime.lock.locked()
    assert answer(model).strip()


@pytest.mark.slow
def test_weights_load_once_and_are_shared_by_every_gpt(model, smollm2_hf_dir):
    config = ModelConfig(provider="transformers", name=str(smollm2_hf_dir), temperature=0.7)
    other = provider.create(config, base_dir=Path("/"))
    assert other.runtime is model.runtime


@pytest.mark.slow
def test_context_window_and_token_count(model, smollm2_hf_dir):
    assert model.context_window == 8192  # SmolLM2's max_position_embeddings
    config = ModelConfig(provider="transformers", name=str(smollm2_hf_dir), context_window=2048)
    assert provider.create(config, base_dir=Path(".")).context_window == 2048
    short = model.count_message_tokens([HumanMessage("hello")])
    longer = model.count_message_tokens([HumanMessage("hello " * 20)])
    assert 4 < short < longer


def test_missing_paths_are_clear_errors(tmp_path):
    for name, expected in [
        (str(tmp_path / "nope"), "model folder not found"),
        ("./nope", "model folder not found"),
        ("weights/model.gguf", "model file not found"),
    ]:
        with pytest.raises(ModelError, match=expected) as caught:
            provider.create(ModelConfig(provider="transformers", name=name), base_dir=tmp_path)
        assert str(tmp_path) in str(caught.value)


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not weights")
    with pytest.raises(ModelError, match=r"not a transformers model folder.*config\.json"):
        provider.create(ModelConfig(provider="transformers", name="notes"), base_dir=tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    broken = provider.create(ModelConfig(provider="transformers", name="broken"), base_dir=tmp_path)
    with pytest.raises(ModelError, match=r"transformers could not load the model in .*broken") as caught:
        broken.invoke("hi")
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_hub_id_that_cannot_be_fetched_is_a_clear_error(tmp_path):
    config = ModelConfig(provider="transformers", name="gptbuilder-tests/no-such-model")
    chat_model = provider.create(config, base_dir=tmp_path)
    with pytest.raises(ModelError, match=r"'gptbuilder-tests/no-such-model'.*Hugging Face Hub"):
        chat_model.invoke("hi")


def test_unknown_and_invalid_options_are_named(tmp_path):
    config = ModelConfig(provider="transformers", options={"temprature": 1, "n_threads": 2})
    with pytest.raises(ModelError, match=r"unknown option.*n_threads, temprature"):
        provider.create(config, base_dir=tmp_path)
    with pytest.raises(ModelError, match="dtype: 'fp8' is not one of"):
        provider.create(ModelConfig(provider="transformers", options={"dtype": "fp8"}), base_dir=tmp_path)


def test_cuda_asked_for_where_there_is_none_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")  # the device is checked before any weights load
    config = ModelConfig(provider="transformers", name="model", options={"device": "cuda"})
    with pytest.raises(ModelError, match="CUDA is not available"):
        provider.create(config, base_dir=tmp_path).invoke("hi")


def test_check_reports_problems_without_loading(tmp_path):
    def check(**fields) -> list[tuple[str, str]]:
        return provider.check(ModelConfig(provider="transformers", **fields), base_dir=tmp_path)

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert check(name="model") == []
    assert check(name="HuggingFaceTB/SmolLM2-360M-Instruct") == []  # a hub id: nothing to check offline
    [(field, message)] = check(name="./missing")
    assert field == "name" and "model folder not found" in message
    [(field, message)] = check(name="model", options={"gpu": True})
    assert field == "options" and "gpu" in message


@pytest.mark.slow
def test_a_gguf_file_loads_through_the_provider(model, smollm2_hf_dir):
    from_gguf = provider.create(ModelConfig(provider="transformers", temperature=0, max_tokens=24), base_dir=Path("."))
    assert from_gguf.model == str(default_model_path())
    text = answer(from_gguf)
    assert text.strip()
    # The folder holds the same weights, so greedy answers match token for token.
    assert text == answer(model)


@pytest.mark.slow
def test_compile_agent_over_a_spec_answers(tmp_path, smollm2_hf_dir):
    (tmp_path / "smollm2").symlink_to(smollm2_hf_dir, target_is_directory=True)
    spec = tmp_path / "helper.yaml"
    spec.write_text(
        "name: Helper\n"
        "instructions: You are a helpful assistant. Answer in one short sentence.\n"
        "model: {provider: transformers, name: smollm2, temperature: 0, max_tokens: 16}\n"
    )
    agent = compile_agent(load_spec(spec))
    assert isinstance(agent.model, ChatTransformers) and agent.context_window == 8192
    events = list(agent.stream(QUESTION))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    done = events[-1]
    assert deltas and isinstance(done, Done) and done.text == "".join(d.text for d in deltas)
    assert done.text.strip() and done.finish_reason in {"stop", "length"}
    assert done.usage.prompt_tokens > 0 and 0 < done.usage.completion_tokens <= 16



def _order_tools():
    from langchain_core.tools import tool

    @tool
    def get_order(order_id: str) -> str:
        """Look up a shop order by its id (like A1001) and return its status."""
        return order_id

    @tool
    def multiply(a: float, b: float) -> float:
        """Multiply two numbers."""
        return a * b

    return [get_order, multiply]


@pytest.mark.slow
@pytest.mark.needs_module("xgrammar", extra="gpu")
def test_tool_calls_are_decoded_under_a_grammar(model):
    """xgrammar holds the reply to the tool's argument schema: a routed call comes back as a valid tool call."""
    bound = model.bind_tools(_order_tools())
    reply = bound.invoke("Where is my order A1001?", max_tokens=40)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_order", {"order_id": "A1001"})]
    assert reply.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.slow
@pytest.mark.needs_module("xgrammar", extra="gpu")
def test_the_model_deciding_alone_still_replies_in_the_schema(model):
    """With routing off, the whole reply (answer or call) is constrained: it always parses."""
    import json

    from gptbuilder.models.tool_calling import openai_tools, reply_schema

    tools = _order_tools()
    bound = model.bind_tools(tools)
    for prompt in ("Hello!", "multiply 3 by 4"):
        reply = bound.invoke(prompt, max_tokens=60, tool_routing="model")
        if reply.tool_calls:
            call = reply.tool_calls[0]
            assert call["name"] in {"get_order", "multiply"}
        else:
            assert reply.text and not reply.text.lstrip().startswith("{"), "an answer is text, not raw JSON"
    schema = reply_schema(openai_tools(tools))
    processor = model._grammar_processor(model.runtime, schema)
    assert processor.compiled_grammars, "the schema compiles to a grammar for this tokenizer"
    assert json.dumps(schema, sort_keys=True) in model.runtime.grammars, "compiled once, then cached"


@pytest.mark.slow
def test_small_talk_is_answered_as_plain_streamed_text(model):
    bound = model.bind_tools(_order_tools())
    chunks = [c.text for c in bound.stream("Hello! How are you?", max_tokens=20)]
    assert len([c for c in chunks if c]) > 1, "answers stream token by token"
    assert not "".join(chunks).lstrip().startswith("{")


@pytest.mark.slow
def test_logprobs_logit_bias_and_penalties(model):
    chunks = list(model.stream(QUESTION, logprobs=True, top_logprobs=2))
    tokens = [t for c in chunks for t in (c.response_metadata.get("logprobs") or {}).get("content", [])]
    text = "".join(c.text for c in chunks)
    assert text.strip() and "".join(t["token"] for t in tokens) == text
    assert all(len(t["top_logprobs"]) == 2 and t["token"] == t["top_logprobs"][0]["token"] for t in tokens)  # greedy
    first = model.runtime.tokenizer.encode(tokens[0]["token"], add_special_tokens=False)[0]
    assert not answer(model, logit_bias={first: -100}).startswith(tokens[0]["token"])
    assert model.vocabulary_size() > first
    prompt, options = "List the numbers 1, 1, 1, 1, 1, 1, 1", {"max_tokens": 30}
    assert answer(model, prompt, frequency_penalty=1.5, **options).count("1,") < answer(model, prompt, **options).count("1,")
