"""Run one `KnowledgeIndex.update()` in a child process, so a test can SIGKILL it mid-run.

Usage: python index_worker.py SPEC DATA_DIR DELAY_S EMBED_BATCH
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gptbuilder.knowledge.index as index_module
from gptbuilder.knowledge.embeddings import FakeEmbedder
from gptbuilder.loader import load_spec


class SlowEmbedder(FakeEmbedder):
    """The fake embedder (same name, same vectors) taking `delay` seconds per call, like a busy model."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Sleep, then embed."""
        time.sleep(self.delay)
        return super().embed(texts)


def main(spec: str, data_dir: str, delay: str, batch: str) -> None:
    """Index the spec's knowledge with a slow embedder and small batches; print the report as JSON."""
    index_module.EMBED_BATCH = int(batch)
    loaded = load_spec(spec)
    index = index_module.KnowledgeIndex(
        loaded.id, loaded.spec.knowledge, loaded.folder, Path(data_dir), embedder=SlowEmbedder(float(delay))
    )
    print(json.dumps(index.update().to_dict()), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
