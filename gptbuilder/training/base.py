"""What a fine-tune starts from: the embedded model, a registered one, a local checkpoint folder or a hub id."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, did_you_mean
from ..models.embedded import DEFAULT_MODEL_ALIASES, default_model_path
from .registry import PREFIX, Registry

EMBEDDED = "embedded"
INSTALL_HINT = "pip install 'gptbuilder[train]'"


@dataclass(frozen=True)
class Base:
    """A resolved base model: what the user wrote and where its checkpoint is (or will be)."""

    label: str  # as given: embedded, registry:NAME, a folder, a hub id
    source: str  # a checkpoint folder or a hub id, for from_pretrained
    gguf: Path | None = None  # embedded only: the GGUF the checkpoint is converted from

    @property
    def ready(self) -> bool:
        """Whether the checkpoint folder exists already (a hub id counts as ready: from_pretrained fetches it)."""
        return self.gguf is None or (Path(self.source) / "config.json").is_file()


def resolve_base(name: str, data_dir: Path) -> Base:
    """Turn BASE into a Base; ModelError with did-you-mean when it names nothing."""
    registry = Registry(data_dir)
    if name == EMBEDDED or name.lower() in DEFAULT_MODEL_ALIASES:
        gguf = default_model_path()
        return Base(EMBEDDED, str(data_dir / "cache" / "embedded-base" / gguf.stem), gguf)
    if name.startswith(PREFIX) or registry.exists(name):
        return Base(name, str(registry.path(name.removeprefix(PREFIX))))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a transformers checkpoint folder (it has no config.json)")
        return Base(name, str(path.resolve()))
    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        return Base(name, name)  # a Hugging Face hub id: from_pretrained downloads it where the network allows
    known = [EMBEDDED, *registry.names()]
    raise ModelError(
        f"unknown base model {name!r}{did_you_mean(name, known)}: give {EMBEDDED!r}, a registered model "
        f"({', '.join(known[1:]) or 'none yet'}), a checkpoint folder or a Hugging Face id like org/model"
    )


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise ModelError(f"training needs transformers: `{INSTALL_HINT}` ({exc})") from exc
    return transformers


@functools.lru_cache(maxsize=4)
def _tokenizer(source: str, gguf: str | None) -> Any:
    transformers = _transformers()
    try:
        if gguf is not None:
            return transformers.AutoTokenizer.from_pretrained(str(Path(gguf).parent), gguf_file=Path(gguf).name)
        return transformers.AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # from_pretrained raises OSError, ValueError, KeyError...
        raise ModelError(f"cannot load the tokenizer of {source}: {exc}") from exc


def load_tokenizer(base: Base) -> Any:
    """The base model's tokenizer, without loading its weights (from the GGUF until the checkpoint exists)."""
    if base.ready:
        return _tokenizer(base.source, None)
    # Reading the tokenizer out of the GGUF takes ~10 s; a copy next to the future checkpoint makes it ~0.2 s.
    copy = Path(f"{base.source}.tokenizer")
    if (copy / "tokenizer_config.json").is_file():
        return _tokenizer(str(copy), None)
    tokenizer = _tokenizer("", str(base.gguf))
    staging = copy.parent / f".{copy.name}-{uuid.uuid4().hex[:8]}"
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(staging)
        os.replace(staging, copy)
    except OSError:
        pass  # only a cache: another process wrote it first, or the disk refused; the tokenizer is loaded either way
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


def ensure_checkpoint(base: Base) -> str:
    """The base's checkpoint folder, converting the embedded GGUF once (dequantised to float32) and caching it."""
    if base.ready:
        return base.source
    assert base.gguf is not None
    transformers = _transformers()
    import torch

    target = Path(base.source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(base.gguf.parent), gguf_file=base.gguf.name, dtype=torch.float32
        )
        # Loaded from GGUF, the model counts as quantised and save_pretrained refuses it, though its weights
        # are plain float32 tensors by now; dropping the marker makes it an ordinary checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        _tokenizer("", str(base.gguf)).save_pretrained(staging)
        os.replace(staging, target)
    except OSError as exc:
        if (target / "config.json").is_file():
            return base.source  # another process converted it at the same time
        raise ModelError(f"cannot write the embedded model's checkpoint to {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return base.source


def load_causal_lm(source: str, device: str) -> Any:
    """A causal LM for training or evaluation: float32 on CPU, bfloat16 on a GPU that supports it."""
    transformers = _transformers()
    import torch

    dtype = torch.float32
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    except Exception as exc:  # from_pretrained raises OSError, ValueError, KeyError...
        raise ModelError(f"cannot load the model {source}: {exc}") from exc


def pick_device() -> str:
    """cuda when present (this process's GPU under `accelerate launch`), else cpu."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local_rank = os.environ.get("LOCAL_RANK")
    return f"cuda:{local_rank}" if local_rank else "cuda"
