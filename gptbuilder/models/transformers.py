"""The GPU path: any Hugging Face causal LM (hub id, local folder or .gguf file) run in-process by transformers."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict, Field, PrivateAttr

from ..errors import InputError, ModelError
from .base import DEFAULT_CONTEXT_WINDOW, Decoded, Piece
from .embedded import check_gguf, default_model_path, is_embedded
from .local import LocalChatModel, LocalProvider, Runtime, RuntimeCache
from .logprobs import Aligner, LogprobRecorder, bias_logits
from .options import OptionCheck, boolean, expect, one_of
from .structured import GrammarCache, schema_key

if TYPE_CHECKING:
    from ..spec import ModelConfig

INSTALL_HINT = "pip install 'gptbuilder[gpu]'"
DTYPES = ("auto", "bfloat16", "float16", "float32")
GRAMMAR_CACHE_BYTES = 64 << 20  # xgrammar's own cache of compiled grammars (unbounded by default)
# Some configs claim context windows of millions of tokens; attention cost grows with what we let in.
MAX_AUTO_CONTEXT = 32_768
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|xpu|cuda|cuda:\d+|xpu:\d+|npu|npu:\d+)$")
_HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(kw_only=True)
class TransformersRuntime(Runtime):
    """One loaded model and tokenizer, with what generation needs to know about them."""

    model: Any
    tokenizer: Any
    context_window: int
    eos_ids: frozenset[int]
    grammars: GrammarCache[Any] = field(default_factory=GrammarCache)  # JSON schema text -> compiled xgrammar grammar
    compiler: Any = None


_runtimes: RuntimeCache[TransformersRuntime] = RuntimeCache()


def _import_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise ModelError(f"the transformers provider needs torch and transformers: `{INSTALL_HINT}` ({exc})") from exc
    return transformers


def resolve_model(name: str | None, base_dir: Path) -> str:
    """Turn `model.name` into what from_pretrained takes: a local path, or a hub id left as written.

    Omitted or 'smollm2' is the embedded SmolLM2 GGUF; `registry:NAME` is a registered model's folder.
    Relative paths resolve against ``base_dir``;
    a name that is not on disk and looks like `org/model` is a Hugging Face Hub id.
    """
    if name is None or is_embedded(name):
        return str(default_model_path())
    if name.startswith("registry:"):  # a model `gptbuilder train finetune` registered under GPTBUILDER_DATA_DIR
        from ..training.registry import resolve

        return str(resolve(name))
    expanded = os.path.expanduser(name)
    path = Path(expanded) if os.path.isabs(expanded) else base_dir / expanded
    if path.exists() or _looks_like_path(name):
        return os.path.abspath(path)
    return name


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~", "\\"))
        or os.path.isabs(name)
        or name.lower().endswith(".gguf")
        or "\\" in name
        or not _HUB_ID_PATTERN.match(name)
    )


def _is_local(model: str) -> bool:
    return os.path.isabs(model) or _looks_like_path(model) or os.path.exists(model)


def check_model_source(model: str) -> None:
    """Raise ModelError unless ``model`` is a hub id, a model folder or a GGUF file (reads no weights)."""
    if not _is_local(model):
        return
    path = Path(model)
    hint = "give a model folder (with config.json), a .gguf file or a Hugging Face model id"
    if path.suffix.lower() == ".gguf" and not path.is_dir():
        check_gguf(path)
        return
    if not path.exists():
        raise ModelError(f"model folder not found: {path}; {hint}")
    if not path.is_dir():
        raise ModelError(f"{path} is neither a model folder nor a .gguf file; {hint}")
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not a transformers model folder (it has no config.json); "
            "save one with save_pretrained(), or point model.name at a .gguf file or a Hugging Face model id"
        )


def _pick_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"model.options.device is {device!r} but CUDA is not available here "
            f"(torch {torch.__version__}); use device: cpu or install a CUDA build of torch"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("model.options.device is 'mps' but MPS is not available here; use device: cpu")
    return device


def _pick_dtype(dtype: str | None, device: str) -> str:
    if dtype is None:
        # Half precision is slow or unsupported on CPU; accelerators get the checkpoint's own dtype.
        return "float32" if device == "cpu" else "auto"
    return dtype


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_model(
    model: str, *, device: str | None = None, dtype: str | None = None, trust_remote_code: bool = False
) -> TransformersRuntime:
    """Load a model once per process (per device and dtype) and share it; later calls return the same one."""
    transformers = _import_transformers()
    import torch

    check_model_source(model)
    folder, gguf_file = model, None
    if _is_local(model) and model.lower().endswith(".gguf") and not Path(model).is_dir():
        folder, gguf_file = str(Path(model).parent), Path(model).name
    if _is_local(model):
        folder = str(Path(folder).resolve())
    device = _pick_device(device)
    dtype = _pick_dtype(dtype, device)
    where = f"{folder}/{gguf_file}" if gguf_file else folder
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file

    def load() -> TransformersRuntime:
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **kwargs)
            loaded = transformers.AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype if dtype == "auto" else getattr(torch, dtype), device_map=device, **kwargs
            )
        except Exception as exc:  # from_pretrained raises OSError, ValueError, KeyError, ImportError...
            raise ModelError(_load_failure(model, where, exc)) from exc
        loaded.eval()
        return TransformersRuntime(
            model=loaded,
            tokenizer=tokenizer,
            context_window=_context_window(loaded, tokenizer),
            eos_ids=_eos_ids(loaded, tokenizer),
        )

    return _runtimes.get((folder, gguf_file, device, dtype, trust_remote_code), load)


def _load_failure(model: str, where: str, exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return f"transformers could not load {where}: a library it needs is missing ({_short(exc)}); `{INSTALL_HINT}`"
    if _is_local(model):
        return f"transformers could not load the model in {where}: {_short(exc)}"
    return (
        f"{model!r} is not a local folder, and loading it from the Hugging Face Hub failed: {_short(exc)}; "
        "check the model id and the network (set HF_TOKEN for gated models), "
        "or set model.name to a local model folder or .gguf file"
    )


def _context_window(model: Any, tokenizer: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return min(value, MAX_AUTO_CONTEXT)
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value <= MAX_AUTO_CONTEXT:
        return value
    return DEFAULT_CONTEXT_WINDOW


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


def _cancel_criteria(event: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return _Cancelled()


class ChatTransformers(LocalChatModel):
    """A langchain-core chat model over a shared, lock-protected transformers causal LM."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = Field(description="Hugging Face model id, local model folder, or .gguf file")
    device: str | None = Field(None, description="cpu, cuda, cuda:N, mps or auto; default CUDA when present")
    dtype: str | None = Field(None, description="auto, bfloat16, float16 or float32")
    trust_remote_code: bool = False
    max_context: int | None = Field(None, description="Tokens the model may see; default from its config")
    _runtime: TransformersRuntime | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "gptbuilder-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "dtype": self.dtype}

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to: the configured value, else the model config's (capped)."""
        return self.max_context or self.runtime.context_window

    @property
    def runtime(self) -> TransformersRuntime:
        """The shared model and tokenizer, loaded on first use."""
        if self._runtime is None:
            self._runtime = load_model(
                self.model, device=self.device, dtype=self.dtype, trust_remote_code=self.trust_remote_code
            )
        return self._runtime

    def count_text_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with the model's tokenizer."""
        return len(self.runtime.tokenizer.encode(text, add_special_tokens=False))

    def vocabulary_size(self) -> int:
        """Token ids the tokenizer has (added tokens included)."""
        return len(self.runtime.tokenizer)

    def token_bytes(self, token: int) -> bytes:
        """What one token spells on its own (special tokens spell nothing)."""
        return str(self.runtime.tokenizer.decode([token], skip_special_tokens=True)).encode("utf-8")

    def _processor(self, params: dict[str, Any], prompt_tokens: int) -> tuple[LogprobRecorder | None, Any]:
        """OpenAI's penalties and `logit_bias` as one logits processor, recording log probabilities when asked.

        transformers has only a multiplicative repetition penalty, so presence and frequency penalties are
        applied here the way OpenAI defines them, counting only the answer's own tokens.
        """
        bias = {int(k): float(v) for k, v in (params.get("logit_bias") or {}).items()}
        presence, frequency = float(params.get("presence_penalty") or 0), float(params.get("frequency_penalty") or 0)
        recorder = LogprobRecorder(self.token_bytes, top=params.get("top_logprobs") or 0) if params.get("logprobs") else None
        if not bias and not presence and not frequency and recorder is None:
            return None, None

        def process(input_ids: Any, scores: Any) -> Any:
            generated = input_ids[0, prompt_tokens:]
            if (presence or frequency) and generated.numel():
                counts = scores.new_zeros(scores.shape[-1]).scatter_add_(0, generated, scores.new_ones(generated.shape))
                scores = scores - (frequency * counts + presence * (counts > 0).to(scores.dtype))
            scores = bias_logits(scores, bias)
            if recorder is not None:
                recorder.step(int(input_ids[0, -1]), scores[0].float().cpu().numpy())
            return scores

        return recorder, process

    def _encode(self, chat: list[dict[str, Any]]) -> Any:
        tokenizer = self.runtime.tokenizer
        chat = [dict(m) for m in chat]
        if not getattr(tokenizer, "chat_template", None):
            # Base models ship no template; a plain transcript still lets them continue the text.
            prompt = "".join(f"{m['role']}: {m.get('content') or ''}\n" for m in chat) + "assistant:"
            return tokenizer(prompt, return_tensors="pt")
        from jinja2 import TemplateError

        options = {"add_generation_prompt": True, "return_tensors": "pt", "return_dict": True}
        try:
            return tokenizer.apply_chat_template(chat, **options)
        except TemplateError:
            if not any(m["role"] == "system" for m in chat):
                raise
        # Some templates (Gemma's) reject the system role: fold it into the first user turn.
        system = "\n\n".join(m.get("content") or "" for m in chat if m["role"] == "system")
        rest = [m for m in chat if m["role"] != "system"]
        for m in rest:
            if m["role"] == "user":
                m["content"] = f"{system}\n\n{m.get('content') or ''}"
                break
        return tokenizer.apply_chat_template(rest, **options)

    def _generate_kwargs(self, params: dict[str, Any], runtime: TransformersRuntime) -> dict[str, Any]:
        tokenizer = runtime.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(runtime.eos_ids), None)
        kwargs: dict[str, Any] = {"max_new_tokens": int(params["max_tokens"]), "pad_token_id": pad}
        if params["temperature"] and params["temperature"] > 0:
            kwargs.update(do_sample=True, temperature=float(params["temperature"]), top_p=float(params["top_p"]))
        else:
            # The checkpoint's generation_config may ask for sampling; 0 means greedy whatever it says.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if kwargs["do_sample"] and params.get("top_k") is not None:
            kwargs["top_k"] = int(params["top_k"]) if params["top_k"] > 0 else None  # 0 or -1: no top-k cut
        if kwargs["do_sample"] and params.get("min_p"):
            kwargs["min_p"] = float(params["min_p"])
        if params.get("repeat_penalty") is not None:
            kwargs["repetition_penalty"] = float(params["repeat_penalty"])
        if params["stop"]:
            kwargs.update(stop_strings=params["stop"], tokenizer=tokenizer)
        return kwargs

    def _grammar_processor(self, runtime: TransformersRuntime, schema: dict[str, Any]) -> Any:
        """A logits processor holding generation to ``schema`` (xgrammar; grammars cached per schema)."""
        from xgrammar.contrib.hf import LogitsProcessor

        return LogitsProcessor(self._grammar(runtime, schema))  # one per generate() call: it keeps matcher state

    def _grammar(self, runtime: TransformersRuntime, schema: dict[str, Any]) -> Any:
        """``schema`` compiled by xgrammar for this tokenizer, once; InputError when it cannot be."""
        try:
            import xgrammar
        except ImportError as exc:
            raise ModelError(f"constrained decoding on transformers needs xgrammar: `{INSTALL_HINT}` ({exc})") from exc
        key = schema_key(schema)

        def build() -> Any:
            if runtime.compiler is None:
                vocab = getattr(runtime.model.config, "vocab_size", None) or len(runtime.tokenizer)
                info = xgrammar.TokenizerInfo.from_huggingface(runtime.tokenizer, vocab_size=vocab)
                runtime.compiler = xgrammar.GrammarCompiler(info, cache_limit_bytes=GRAMMAR_CACHE_BYTES)
            try:
                return runtime.compiler.compile_json_schema(key)
            except (RuntimeError, ValueError) as exc:  # xgrammar's converter reports what it cannot read as RuntimeError
                raise InputError(f"the schema cannot be compiled to a grammar: {_xgrammar_message(exc)}") from None

        return runtime.grammars.get(key, build)

    def check_json_schema(self, schema: dict[str, Any]) -> None:
        """Raise InputError unless ``schema`` compiles to a grammar (kept for the answer that follows)."""
        self._grammar(self.runtime, schema)

    def _decode(
        self, chat: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None
    ) -> Generator[str | Piece, None, Decoded]:
        from transformers import LogitsProcessorList, StoppingCriteriaList, TextIteratorStreamer

        runtime = self.runtime
        stops: list[str] = params["stop"]
        completion_tokens = 0
        finish_reason = "stop"
        with runtime.lock:
            try:
                inputs = self._encode(chat).to(runtime.model.device)
            except Exception as exc:  # a checkpoint's own Jinja template can fail in any way
                raise ModelError(
                    f"{self.model_name()}: its chat template could not format the conversation: {_short(exc)}"
                ) from exc
            prompt_tokens = int(inputs["input_ids"].shape[-1])
            streamer = TextIteratorStreamer(runtime.tokenizer, skip_prompt=True, skip_special_tokens=True)
            cancel = threading.Event()
            result: dict[str, Any] = {}
            generate_kwargs = {
                **inputs,
                **self._generate_kwargs(params, runtime),
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([_cancel_criteria(cancel)]),
            }
            recorder, processor = self._processor(params, prompt_tokens)
            processors = [processor] if processor is not None else []
            if schema is not None:
                processors.append(self._grammar_processor(runtime, schema))
            if processors:
                generate_kwargs["logits_processor"] = LogitsProcessorList(processors)
            aligner = Aligner(recorder) if recorder else None

            def run() -> None:
                try:
                    result["output"] = runtime.model.generate(**generate_kwargs)
                except BaseException as exc:  # reported by the consumer, in its own thread
                    result["error"] = exc
                    # end() would decode what is cached and could fail again; the consumer must not wait forever.
                    streamer.text_queue.put(streamer.stop_signal)

            if params["seed"] is not None:
                import torch

                torch.manual_seed(int(params["seed"]))
            thread = threading.Thread(target=run, name="gptbuilder-transformers-generate", daemon=True)
            thread.start()
            stopped = False
            pending = ""
            try:
                for piece in streamer:
                    pending += piece
                    text, pending, stopped = _split_at_stop(pending, stops)
                    if text:
                        completion_tokens += 1
                        yield from _aligned(aligner, text)
                    if stopped:
                        break
                if pending and not stopped:
                    completion_tokens += 1
                    yield from _aligned(aligner, pending)
            finally:
                cancel.set()
                thread.join()
            if "error" in result:
                error = result["error"]
                raise ModelError(f"{self.model_name()}: generation failed: {_short(error)}") from error
            output = result.get("output")
            generated = []
            if output is not None:
                sequence = output[0] if getattr(output, "ndim", 1) > 1 else output
                generated = sequence[prompt_tokens:].tolist()
                completion_tokens = len(generated)
                ended_on_eos = bool(generated) and generated[-1] in runtime.eos_ids
                if not stopped and not ended_on_eos and completion_tokens >= int(params["max_tokens"]):
                    finish_reason = "length"
            if aligner and recorder:
                recorder.finish(generated[-1] if generated and generated[-1] not in runtime.eos_ids else None)
                if last := aligner.flush():
                    yield last
        return Decoded(prompt_tokens, completion_tokens, finish_reason)

    def model_name(self) -> str:
        """The hub id, or the folder/file name of a local model."""
        return Path(self.model).name if _is_local(self.model) else self.model


def _xgrammar_message(exc: BaseException) -> str:
    """xgrammar's message, short, without its log prefix ("[12:21:40] /project/cpp/json_schema_converter.cc:5082: ")."""
    text = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", " ".join(str(exc).split()))
    return text if len(text) <= 300 else text[:297] + "..."


def _aligned(aligner: Aligner | None, text: str) -> Iterator[str | Piece]:
    if aligner is None:
        yield text
    elif piece := aligner.feed(text):
        yield piece


def _split_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str, bool]:
    """Split streamed text into (safe to emit, held back, stop reached); nothing at or after a stop string."""
    if not stops:
        return text, "", False
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if hits:
        return text[: min(hits)], "", True
    # Hold back a tail that may be the start of a stop string split across pieces.
    held = 0
    for s in stops:
        for size in range(min(len(s) - 1, len(text)), held, -1):
            if text.endswith(s[:size]):
                held = size
                break
    return text[: len(text) - held], text[len(text) - held :], False


class TransformersProvider(LocalProvider):
    """`provider: transformers` — any Hugging Face causal LM (hub id, folder or .gguf), CUDA when present."""

    name = "transformers"
    options: ClassVar[Mapping[str, OptionCheck | None]] = {
        "device": expect(
            lambda value: isinstance(value, str) and bool(_DEVICE_PATTERN.match(value)),
            "a device like cpu, cuda, cuda:1, mps or auto",
        ),
        "dtype": one_of(*DTYPES),
        "trust_remote_code": boolean(),
    }
    requires = ("torch", "transformers")
    install_hint = INSTALL_HINT

    def check_source(self, config: ModelConfig, base_dir: Path) -> None:
        """A local model path exists and holds a model; a hub id is left for load time."""
        check_model_source(resolve_model(config.name, base_dir))

    def model_fields(self, config: ModelConfig, base_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The model source, device, dtype and context size."""
        return {
            "model": resolve_model(config.name, base_dir),
            "device": options.get("device"),
            "dtype": options.get("dtype"),
            "trust_remote_code": bool(options.get("trust_remote_code") or False),
            "max_context": config.context_window,
        }

    def build(self, **fields: Any) -> ChatTransformers:
        """A ChatTransformers."""
        return ChatTransformers(**fields)


provider = TransformersProvider()
