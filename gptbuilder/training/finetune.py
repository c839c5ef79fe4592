"""`train finetune`: LoRA (default) or full fine-tuning on transformers' Trainer, registered only when complete."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from .base import INSTALL_HINT, ensure_checkpoint, load_causal_lm, load_tokenizer, pick_device, resolve_base
from .data import Corpus, Prepared, gpt_knowledge, prepare, read_paths
from .evaluate import perplexity
from .registry import ADAPTER_DIR, Entry, Registry, check_name

DEFAULT_LR = {"lora": 5e-4, "full": 5e-5}


@dataclass
class FinetuneOptions:
    """The hyper-parameters of one run, as `entry.json` records them."""

    method: str = "lora"  # lora | full
    epochs: float = 3.0
    max_steps: int | None = None  # wins over epochs
    lr: float | None = None  # default: DEFAULT_LR[method]
    batch_size: int = 8
    grad_accum: int = 1
    block_size: int = 256
    eval_every: int | None = None  # steps between validation passes; None: only before and after
    seed: int = 42
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        """The learning rate this run uses."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]


@dataclass(frozen=True)
class FinetuneResult:
    """The registered entry and where it lies."""

    entry: Entry
    path: Path


def read_corpus(paths: Sequence[Path], gpt_ids: Sequence[str], *, gpts_dir: Path, data_dir: Path, skip_bad: bool) -> Corpus:
    """Every document of the given files, folders and GPTs' knowledge."""
    if not paths and not gpt_ids:
        raise InputError("give training data: --data PATH (text, .md or .jsonl chats) or --from-gpt ID")
    corpus = read_paths(paths, skip_bad=skip_bad)
    for gpt_id in gpt_ids:
        corpus.extend(gpt_knowledge(gpts_dir, data_dir, gpt_id))
    return corpus


class _Blocks:
    """The tokenised blocks as the torch Dataset Trainer iterates."""

    def __init__(self, items: list[dict[str, list[int]]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]


def _lora(model: Any, options: FinetuneOptions) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ModelError(f"LoRA fine-tuning needs peft: `{INSTALL_HINT}` ({exc})") from exc
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules="all-linear",
    )
    try:
        return get_peft_model(model, config)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"LoRA cannot target the layers of {type(model).__name__} ({exc}); fine-tune it with --full") from exc


def finetune(
    base_name: str,
    corpus: Corpus,
    name: str,
    options: FinetuneOptions,
    *,
    data_dir: Path,
    overwrite: bool = False,
    command: str = "",
) -> FinetuneResult:
    """Fine-tune ``base_name`` on ``corpus`` and register the result as ``name`` (all or nothing)."""
    if options.method not in DEFAULT_LR:
        raise InputError(f"method must be lora or full, not {options.method!r}")
    registry = Registry(data_dir)
    check_name(name)
    if registry.exists(name) and not overwrite:
        raise InputError(f"a model named {name!r} is already registered; pass --overwrite to replace it, or pick another --name")
    base = resolve_base(base_name, data_dir)
    tokenizer = load_tokenizer(base)
    prepared = prepare(corpus, tokenizer, block_size=options.block_size)
    prepared.require_enough()
    staging = registry.staging(name)
    try:
        metrics = _train(ensure_checkpoint(base), tokenizer, prepared, options, staging)
        entry = Entry(
            name=name,
            base=base.label,
            method=options.method,
            sources=prepared.stats.sources,
            hyperparameters=_hyperparameters(options),
            metrics=metrics | {"data": {k: v for k, v in prepared.stats.to_dict().items() if k not in ("sources", "notes")}},
            command=command,
        )
        path = registry.commit(staging, entry, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after commit renamed it; what a failed run left otherwise
    return FinetuneResult(entry, path)


def _hyperparameters(options: FinetuneOptions) -> dict[str, Any]:
    values = {
        "method": options.method,
        "epochs": options.epochs,
        "max_steps": options.max_steps,
        "learning_rate": options.learning_rate,
        "batch_size": options.batch_size,
        "grad_accum": options.grad_accum,
        "block_size": options.block_size,
        "eval_every": options.eval_every,
        "seed": options.seed,
    }
    if options.method == "lora":
        values |= {"lora_r": options.lora_r, "lora_alpha": options.lora_alpha, "lora_dropout": options.lora_dropout}
    return values | options.extra


def _train(source: str, tokenizer: Any, prepared: Prepared, options: FinetuneOptions, out: Path) -> dict[str, Any]:
    """Run Trainer; save the merged model and tokenizer into ``out`` (and the LoRA adapter under adapter/)."""
    import torch
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed

    set_seed(options.seed)
    device = pick_device()
    model = load_causal_lm(source, device)
    before = perplexity(model, prepared.validation, batch_size=options.batch_size)
    if options.method == "lora":
        model = _lora(model, options)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    arguments = TrainingArguments(
        output_dir=str(out / ".trainer"),
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps if options.max_steps is not None else -1,
        eval_strategy="steps" if options.eval_every else "no",
        eval_steps=options.eval_every,
        logging_steps=max(1, min(10, options.eval_every or 10)),
        save_strategy="no",
        report_to="none",
        seed=options.seed,
        use_cpu=device == "cpu",
        bf16=bf16,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=_Blocks(prepared.train),
        eval_dataset=_Blocks(prepared.validation),
        data_collator=default_data_collator,
    )
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its log lines; stdout carries only the result (--json)
        result = trainer.train()
    seconds = time.monotonic() - started
    if options.method == "lora":
        model.save_pretrained(out / ADAPTER_DIR)
        model = model.merge_and_unload()
    after = perplexity(model, prepared.validation, batch_size=options.batch_size)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    shutil.rmtree(out / ".trainer", ignore_errors=True)
    steps = int(result.global_step)
    tokens = steps * options.batch_size * options.grad_accum * options.block_size
    return {
        "validation_loss_before": round(before.loss, 4),
        "validation_perplexity_before": round(before.perplexity, 3),
        "validation_loss_after": round(after.loss, 4),
        "validation_perplexity_after": round(after.perplexity, 3),
        "validation_tokens": after.tokens,
        "train_loss": round(float(result.training_loss), 4),
        "steps": steps,
        "seconds": round(seconds, 1),
        "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
        "device": device,
    }
