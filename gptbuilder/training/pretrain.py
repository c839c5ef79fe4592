"""`train pretrain`: a small Llama-style model from scratch, for learning and toy domains, registered like a fine-tune.

The model starts from random weights built from a config (SIZES), optionally with a byte-level BPE trained
on the corpus with `tokenizers`; the random start is written once under `<data>/cache/pretrain/NAME` and
then trained by the fine-tune machinery with every weight trainable (checkpoints, Ctrl-C and --resume included).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import load_tokenizer, resolve_base
from .data import Corpus
from .finetune import FinetuneOptions, FinetuneResult, finetune
from .registry import check_name

END = "<|endoftext|>"
TRAIN_TOKENIZER = "train"
DEFAULT_PRETRAIN_LR = 1e-3  # from random weights; fine-tuning's 5e-5 would barely move them


@dataclass(frozen=True)
class Size:
    """The shape of a model built from scratch."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int  # of a tokenizer trained on the corpus (fewer when the corpus has fewer merges to learn)


SIZES = {
    "tiny": Size(hidden=128, layers=4, heads=4, intermediate=512, vocab=4096),  # ~1.3M parameters with its vocabulary
    "small": Size(hidden=512, layers=6, heads=8, intermediate=1536, vocab=16000),  # ~27M
}


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE learnt from ``texts`` (any byte can be encoded), as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=END, bos_token=END, pad_token=END)


def build_model(size: Size, tokenizer: Any, *, context: int, seed: int) -> Any:
    """A randomly initialised Llama-style causal LM of ``size`` for ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def pretrain(
    corpus: Corpus,
    name: str,
    options: FinetuneOptions,
    *,
    size: str = "tiny",
    tokenizer: str = TRAIN_TOKENIZER,
    data_dir: Path,
    overwrite: bool = False,
    resume: bool = False,
    command: str = "",
    callbacks: Sequence[Any] = (),
) -> FinetuneResult | None:
    """Build a ``size`` model from scratch, train it on ``corpus`` and register it as ``name``."""
    check_name(name)
    if size not in SIZES:
        raise InputError(f"--size must be one of {', '.join(SIZES)}, not {size!r}")
    init = Path(data_dir) / "cache" / "pretrain" / name
    if not (resume and (init / "config.json").is_file()):  # a resumed run goes on from the start it was given
        _write_start(init, corpus, SIZES[size], tokenizer, options, data_dir)
    lr = options.lr if options.lr is not None else DEFAULT_PRETRAIN_LR
    options = replace(options, method="full", lr=lr, extra=options.extra | {"size": size, "tokenizer": tokenizer})
    return finetune(
        str(init), corpus, name, options, data_dir=data_dir, overwrite=overwrite, resume=resume, command=command,
        callbacks=callbacks, recorded_as=(f"scratch:{size}", "pretrain"),
    )


def _write_start(init: Path, corpus: Corpus, size: Size, tokenizer_from: str, options: FinetuneOptions, data_dir: Path) -> None:
    texts = [d.text for d in corpus.documents if d.text is not None]
    if tokenizer_from == TRAIN_TOKENIZER:
        if not texts:
            raise InputError("--tokenizer train learns from plain text: give .txt or .md files, or a base's tokenizer")
        tokenizer = train_tokenizer(texts, size.vocab)
    else:
        tokenizer = load_tokenizer(resolve_base(tokenizer_from, data_dir))
    model = build_model(size, tokenizer, context=max(options.block_size, 256), seed=options.seed)
    staging = init.parent / f".{init.name}-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(init, ignore_errors=True)
        os.replace(staging, init)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
