"""Perplexity of a model on held-out text, next to its base's: did the fine-tune help?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .base import ensure_checkpoint, load_causal_lm, load_tokenizer, pick_device, resolve_base
from .data import IGNORE, Corpus, blocks, dedupe, encode
from .registry import Registry


@dataclass(frozen=True)
class Perplexity:
    """Mean next-token loss over the labelled tokens of some blocks, and its exponential."""

    loss: float
    perplexity: float
    tokens: int


def perplexity(model: Any, data: Sequence[dict[str, list[int]]], *, batch_size: int = 4) -> Perplexity:
    """Token-weighted perplexity of ``model`` on tokenised blocks (labels -100 are not counted)."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = {key: torch.tensor([b[key] for b in data[start : start + batch_size]], device=device) for key in data[0]}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
            )
            total += float(losses)
            count += int((targets != IGNORE).sum())
    loss = total / max(count, 1)
    return Perplexity(loss, math.exp(min(loss, 50.0)), count)


@dataclass(frozen=True)
class Comparison:
    """What `train eval --json` prints."""

    model: str
    base: str
    perplexity: float
    base_perplexity: float
    tokens: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def compare(name: str, corpus: Corpus, data_dir: Path, *, block_size: int = 256) -> Comparison:
    """Perplexity of registered model ``name`` and of its base on all of ``corpus`` (held-out text, not split)."""
    from .data import DataError

    registry = Registry(data_dir)
    entry = registry.get(name)
    base = resolve_base(entry.base, data_dir)
    tokenizer = load_tokenizer(base)
    documents = dedupe(corpus.documents, corpus.dropped)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    held_out = blocks((encode(d, tokenizer) for d in documents), block_size, pad)
    if not held_out:
        raise DataError("the evaluation data holds no text to measure; give .txt/.md text or .jsonl chats with assistant turns")
    device = pick_device()
    results = []
    for source in (str(registry.path(name)), ensure_checkpoint(base)):
        model = load_causal_lm(source, device)
        results.append(perplexity(model, held_out))
        del model
    return Comparison(name, entry.base, round(results[0].perplexity, 3), round(results[1].perplexity, 3), results[0].tokens)
