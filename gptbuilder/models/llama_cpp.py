"""The embedded default: a GGUF model run in-process by llama-cpp-python, shared by every GPT."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict, Field, PrivateAttr

from ..errors import InputError, ModelError
from .base import DEFAULT_CONTEXT_WINDOW, Decoded, Piece
from .embedded import check_gguf, default_model_path, is_embedded
from .local import MESSAGE_OVERHEAD, LocalChatModel, LocalProvider, Runtime, RuntimeCache
from .logprobs import Aligner, LogprobRecorder, bias_logits
from .options import OptionCheck, boolean, number
from .structured import GrammarCache, schema_key

if TYPE_CHECKING:
    from llama_cpp import Llama

    from ..spec import ModelConfig



@dataclass(kw_only=True)
class LlamaRuntime(Runtime):
    """One loaded Llama and its chat template."""

    llm: Llama
    formatter: Any | None
    grammars: GrammarCache[Any] = field(default_factory=GrammarCache)  # schema text -> checked LlamaGrammar


_runtimes: RuntimeCache[LlamaRuntime] = RuntimeCache()


def resolve_model_path(name: str | None, base_dir: Path) -> Path:
    """Turn `model.name` into a GGUF path: omitted or 'smollm2' is the embedded model."""
    if name is None or is_embedded(name):
        return default_model_path()
    path = Path(os.path.expanduser(name))
    if not path.is_absolute():
        path = base_dir / path
    return path


def _cpu_has_amx() -> bool:
    try:
        return " amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def default_extra_buffers() -> bool:
    """Whether to let llama.cpp use extra buffer types (weight repacking, AMX) on this CPU.

    Its AMX matmul kernels crash on some virtual machines that advertise AMX, and the plain
    CPU kernels are as fast for models this size, so they are off where AMX is present.
    """
    return not _cpu_has_amx()


@contextmanager
def extra_buffer_types(enabled: bool) -> Iterator[None]:
    """Within this block, new `llama_cpp.Llama` objects use extra buffer types only if ``enabled``."""
    try:
        import llama_cpp.llama as llama_module
    except ImportError as exc:
        raise ModelError(f"llama-cpp-python is not installed: `pip install llama-cpp-python` ({exc})") from exc
    bindings = llama_module.llama_cpp
    default_params = bindings.llama_model_default_params

    def model_params():
        params = default_params()
        params.use_extra_bufts = enabled
        return params

    # Llama() has no argument for this, so set it on the defaults it starts from (loads run under the cache's lock).
    bindings.llama_model_default_params = model_params
    try:
        yield
    finally:
        bindings.llama_model_default_params = default_params


def load_llama(path: Path, *, n_ctx: int, n_threads: int | None = None, extra_buffers: bool | None = None) -> LlamaRuntime:
    """Load a GGUF once per process (per context size) and share it; later calls return the same one."""
    check_gguf(path)
    threads = n_threads or os.cpu_count() or 1
    if extra_buffers is None:
        extra_buffers = default_extra_buffers()
    use_extra_buffers = extra_buffers

    def load() -> LlamaRuntime:
        try:
            with extra_buffer_types(use_extra_buffers):
                from llama_cpp import Llama

                llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
        return LlamaRuntime(llm=llm, formatter=_formatter(llm))

    return _runtimes.get((str(path.resolve()), n_ctx, threads, extra_buffers), load)


def _formatter(llm: Llama) -> Any | None:
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(token_id: int) -> str:
        return llm.detokenize([token_id], special=True).decode("utf-8", errors="ignore") if token_id >= 0 else ""

    return Jinja2ChatFormatter(template, eos_token=token_text(llm.token_eos()), bos_token=token_text(llm.token_bos()))


class ChatLlamaCpp(LocalChatModel):
    """A langchain-core chat model over a shared, lock-protected llama.cpp model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    n_ctx: int = DEFAULT_CONTEXT_WINDOW
    n_threads: int | None = None
    extra_buffers: bool | None = None
    # Greedy with a mild repeat penalty: small models such as the embedded 135M ramble or loop otherwise.
    temperature: float = 0.0
    sampling: dict[str, Any] = Field(
        default_factory=lambda: {"repeat_penalty": 1.1}, description="Other llama.cpp sampling options"
    )
    _runtime: LlamaRuntime | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "gptbuilder-llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx}

    @property
    def context_window(self) -> int:
        """Tokens the loaded context holds."""
        return self.n_ctx

    @property
    def runtime(self) -> LlamaRuntime:
        """The shared llama.cpp model, loaded on first use."""
        if self._runtime is None:
            self._runtime = load_llama(
                Path(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads, extra_buffers=self.extra_buffers
            )
        return self._runtime

    def count_text_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with the GGUF's tokenizer."""
        return len(self.runtime.llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=False, special=False))

    def _prompt_tokens(self, chat: list[dict[str, Any]]) -> int:
        formatter = self.runtime.formatter
        if formatter is None:
            text = "".join(str(m.get("content") or "") for m in chat)
            return len(self.runtime.llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=False)) + MESSAGE_OVERHEAD * len(chat)
        prompt = formatter(messages=chat).prompt
        return len(self.runtime.llm.tokenize(prompt.encode("utf-8", errors="replace"), add_bos=False, special=True))

    def vocabulary_size(self) -> int:
        """Token ids in the GGUF's vocabulary."""
        return int(self.runtime.llm.n_vocab())

    def token_bytes(self, token: int) -> bytes:
        """What one token spells (special tokens spell nothing)."""
        return bytes(self.runtime.llm.detokenize([token]))

    def decode_params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Sampling parameters with llama.cpp's extra keys (top_k, min_p, repeat_penalty)."""
        return {**self.sampling, **self.sampling_params(stop, kwargs)}

    def model_name(self) -> str:
        """The GGUF file name."""
        return Path(self.model_path).name

    def _decode(
        self, chat: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None
    ) -> Generator[str | Piece, None, Decoded]:
        runtime = self.runtime
        params = dict(params)
        if schema is not None:
            params["grammar"] = self.grammar(schema)  # nothing outside it can be sampled
        recorder, processor = self._processor(params)
        if processor is not None:
            from llama_cpp import LogitsProcessorList

            params["logits_processor"] = LogitsProcessorList([processor])
        aligner = Aligner(recorder) if recorder else None
        completion_tokens = 0
        finish_reason = "stop"
        with runtime.lock:
            prompt_tokens = self._prompt_tokens(chat)
            llm: Any = runtime.llm  # its stubs type messages as TypedDicts and the result as a union of both modes
            stream = llm.create_chat_completion(chat, stream=True, **params)
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = choice["delta"].get("content") or ""
                    if text:
                        completion_tokens += 1
                        piece = aligner.feed(text) if aligner else text
                        if piece:
                            yield piece
            finally:
                stream.close()
            if aligner and recorder:
                recorder.finish_spelling(aligner.tail())  # the last token is never fed back: find it by its text
                if last := aligner.flush():
                    yield last
        return Decoded(prompt_tokens, completion_tokens, finish_reason)

    def grammar(self, schema: dict[str, Any]) -> Any:
        """The llama.cpp grammar holding output to ``schema``, compiled and checked once; InputError if it cannot be.

        Not llama-cpp-python's `response_format`: on a schema its converter cannot read it falls back to
        any JSON without a word, and a grammar llama.cpp cannot parse crashes the process (see gbnf.py).
        """
        runtime = self.runtime

        def build() -> Any:
            import llama_cpp
            from llama_cpp import LlamaGrammar

            from .gbnf import schema_to_gbnf

            text = schema_to_gbnf(schema)
            # Parsed here once, where a NULL is an answer rather than a pointer the sampler chain would follow.
            sampler = llama_cpp.llama_sampler_init_grammar(runtime.llm._model.vocab, text.encode("utf-8"), b"root")
            if not sampler:
                raise InputError("the schema cannot be compiled to a grammar: llama.cpp refused the grammar (too many repetitions?)")
            llama_cpp.llama_sampler_free(sampler)
            return LlamaGrammar.from_string(text, verbose=False)

        return runtime.grammars.get(schema_key(schema), build)

    def check_json_schema(self, schema: dict[str, Any]) -> None:
        """Raise InputError unless ``schema`` compiles to a grammar (kept for the answer that follows)."""
        self.grammar(schema)

    def _processor(self, params: dict[str, Any]) -> tuple[LogprobRecorder | None, Any]:
        """Take `logit_bias` and `logprobs` out of ``params`` as one logits processor (and the recorder it fills).

        llama-cpp-python's own `logit_bias` is lost when another processor is given (it extends a list
        with `list.extend`'s None), and its logprobs need `logits_all`; both are done here instead.
        """
        bias = {int(k): float(v) for k, v in (params.pop("logit_bias", None) or {}).items()}
        wanted, top = params.pop("logprobs", False), params.pop("top_logprobs", 0) or 0
        recorder = LogprobRecorder(self.token_bytes, top=top) if wanted else None
        if not bias and recorder is None:
            return None, None

        def process(input_ids: Any, logits: Any) -> Any:
            logits = bias_logits(logits, bias)
            if recorder is not None:
                recorder.step(int(input_ids[-1]), logits)
            return logits

        return recorder, process


class LlamaCppProvider(LocalProvider):
    """`provider: local` — a GGUF file through llama.cpp; the embedded SmolLM2 when no name is given."""

    name = "local"
    options: ClassVar[Mapping[str, OptionCheck | None]] = {
        "n_threads": number(1, whole=True),
        "extra_buffers": boolean(),
        "top_k": number(whole=True),
        "min_p": number(0, 1),
        "repeat_penalty": number(0),
    }
    requires = ("llama_cpp",)
    install_hint = "pip install llama-cpp-python"

    def check_source(self, config: ModelConfig, base_dir: Path) -> None:
        """The model file exists and is GGUF."""
        check_gguf(resolve_model_path(config.name, base_dir))

    def model_fields(self, config: ModelConfig, base_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The GGUF path, context size and threads; the other options are llama.cpp sampling settings."""
        return {
            "model_path": str(resolve_model_path(config.name, base_dir)),
            "n_ctx": config.context_window or DEFAULT_CONTEXT_WINDOW,
            "n_threads": options.pop("n_threads", None),
            "extra_buffers": options.pop("extra_buffers", None),
            "sampling": {"repeat_penalty": 1.1, **{k: v for k, v in options.items() if v is not None}},
        }

    def build(self, **fields: Any) -> ChatLlamaCpp:
        """A ChatLlamaCpp."""
        return ChatLlamaCpp(**fields)


provider = LlamaCppProvider()
