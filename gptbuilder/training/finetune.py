"""`train finetune`: LoRA (default) or full fine-tuning on transformers' Trainer, registered only when complete."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from .base import INSTALL_HINT, ensure_checkpoint, load_causal_lm, load_tokenizer, pick_device, resolve_base
from .data import Corpus, Prepared, gpt_knowledge, prepare, read_paths
from .evaluate import Perplexity, perplexity
from .registry import ADAPTER_DIR, Entry, Registry, check_name
from .runs import Run, RunInterrupted, checkpoint_step, is_main_process, open_run

DEFAULT_LR = {"lora": 5e-4, "full": 5e-5}
# What may change between a stopped run and its --resume: how long it goes on and how often it saves.
RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "eval_every", "save_every"})
_FLAGS = {"learning_rate": "--lr", "method": "--lora/--full"}  # hyper-parameters whose option is named otherwise
log = logging.getLogger(__name__)


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
    save_every: int | None = None  # steps between checkpoints (kept for --resume); None: only when Ctrl-C stops it
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
    resume: bool = False,
    command: str = "",
    callbacks: Sequence[Any] = (),
    recorded_as: tuple[str, str] | None = None,
) -> FinetuneResult | None:
    """Fine-tune ``base_name`` on ``corpus`` and register the result as ``name`` (all or nothing).

    ``recorded_as`` (base, method) replaces what the entry says the model came from (pre-training does).
    ``resume`` continues the stopped run of ``name`` from its last checkpoint; ``callbacks`` are extra
    TrainerCallbacks. RunInterrupted when Ctrl-C stopped it (the checkpoint is kept). In the other
    processes of a distributed launch nothing is registered and the result is None.
    """
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
    started = {"base": base.label, "sources": prepared.stats.sources, "hyperparameters": _hyperparameters(options)}
    run = open_run(registry, name, resume=resume, overwrite=overwrite)
    try:
        if resume:
            _check_same_run(run, started)
        metrics = _train(ensure_checkpoint(base), tokenizer, prepared, options, run, command=command, callbacks=callbacks, started=started)
        if not is_main_process():
            return None
        entry = Entry(
            name=name,
            base=recorded_as[0] if recorded_as else base.label,
            method=recorded_as[1] if recorded_as else options.method,
            sources=prepared.stats.sources,
            hyperparameters=_hyperparameters(options),
            metrics=metrics | {"data": {k: v for k, v in prepared.stats.to_dict().items() if k not in ("sources", "notes")}},
            command=command,
        )
        run.strip()
        path = registry.commit(run.folder, entry, overwrite=overwrite)
    except RunInterrupted:
        run.close(keep=True)  # its message says where the checkpoint is and how to go on
        raise
    except BaseException:
        kept = run.last_checkpoint()
        run.close(keep=kept is not None)
        if kept is not None and is_main_process():
            log.warning("the checkpoint of step %d is kept in %s; continue with --resume", checkpoint_step(kept), kept)
        raise
    run.close(keep=False)
    return FinetuneResult(entry, path)


def _check_same_run(run: Run, started: dict[str, Any]) -> None:
    """Refuse a --resume whose base, data or hyper-parameters differ from the stopped run's."""
    recorded = run.recorded()
    if not recorded:
        return
    differ = [key for key in ("base", "sources") if recorded.get(key) != started[key]]
    old, new = recorded.get("hyperparameters", {}), started["hyperparameters"]
    keys = sorted((set(old) | set(new)) - RESUMABLE_CHANGES)
    differ += [_FLAGS.get(key, f"--{key.replace('_', '-')}") for key in keys if old.get(key) != new.get(key)]
    if differ:
        raise InputError(
            f"--resume continues the stopped run of {run.name!r} with the same base, data and options, "
            f"but these differ: {', '.join(differ)}; give them as before, or start over with --overwrite"
        )


class _StopRequest:
    """Ctrl-C during training: finish the current step, save a checkpoint, stop (a second Ctrl-C stops at once)."""

    def __init__(self) -> None:
        self.requested = False

    def callback(self) -> Any:
        """A TrainerCallback that turns the request into save-and-stop at the end of a step."""
        from transformers import TrainerCallback

        request = self

        class StopOnRequest(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if request.requested:
                    control.should_save = True
                    control.should_training_stop = True
                return control

        return StopOnRequest()

    @contextlib.contextmanager
    def on_sigint(self) -> Iterator[None]:
        """While inside, the first SIGINT requests a stop instead of raising KeyboardInterrupt."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers belong to the main thread; a run in a worker thread is stopped by its owner
            return

        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            print("\nstopping after this step and saving a checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


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
        "save_every": options.save_every,
        "seed": options.seed,
    }
    if options.method == "lora":
        values |= {"lora_r": options.lora_r, "lora_alpha": options.lora_alpha, "lora_dropout": options.lora_dropout}
    return values | options.extra


def _train(
    source: str,
    tokenizer: Any,
    prepared: Prepared,
    options: FinetuneOptions,
    run: Run,
    *,
    command: str,
    callbacks: Sequence[Any],
    started: dict[str, Any],
) -> dict[str, Any]:
    """Run Trainer; save the merged model and tokenizer into the run folder (and the LoRA adapter under adapter/)."""
    import torch
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed

    out = run.folder
    checkpoint = run.last_checkpoint()
    set_seed(options.seed)
    device = pick_device()
    model = load_causal_lm(source, device)
    recorded = run.recorded().get("before") if checkpoint is not None else None
    before = Perplexity(**recorded) if recorded else perplexity(model, prepared.validation, batch_size=options.batch_size)
    if is_main_process():
        run.record(started | {"before": asdict(before)})
    if options.method == "lora":
        model = _lora(model, options)
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    arguments = TrainingArguments(
        output_dir=str(run.trainer_dir),
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps if options.max_steps is not None else -1,
        eval_strategy="steps" if options.eval_every else "no",
        eval_steps=options.eval_every,
        logging_steps=max(1, min(10, options.eval_every or 10)),
        save_strategy="steps" if options.save_every else "no",
        save_steps=options.save_every or 500,
        save_total_limit=2,  # the newest, and the one before in case the process dies while writing it
        report_to="none",
        seed=options.seed,
        use_cpu=device == "cpu",
        bf16=bf16,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    stop = _StopRequest()
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=_Blocks(prepared.train),
        eval_dataset=_Blocks(prepared.validation),
        data_collator=default_data_collator,
        callbacks=[stop.callback(), *callbacks],
    )
    first_step = checkpoint_step(checkpoint) if checkpoint is not None else 0
    began = time.monotonic()
    # Trainer prints its log lines; stdout carries only the result (--json)
    with contextlib.redirect_stdout(sys.stderr), stop.on_sigint():
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    seconds = time.monotonic() - began
    steps = int(result.global_step)
    if stop.requested:
        again = f": {command} --resume" if command and "--resume" not in command.split() else " (the same command with --resume)"
        raise RunInterrupted(
            f"stopped at step {steps}; the model is not registered, its checkpoint is kept in {run.trainer_dir}; continue with{again}"
        )
    model = _final_model(trainer, model, source, options, out, device)
    if model is None:
        return {}
    after = perplexity(model, prepared.validation, batch_size=options.batch_size)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tokens = (steps - first_step) * options.batch_size * options.grad_accum * options.block_size
    return {
        "validation_loss_before": round(before.loss, 4),
        "validation_perplexity_before": round(before.perplexity, 3),
        "validation_loss_after": round(after.loss, 4),
        "validation_perplexity_after": round(after.perplexity, 3),
        "validation_tokens": after.tokens,
        "train_loss": round(float(result.training_loss), 4),
        "steps": steps,
        "resumed_from_step": first_step or None,
        "seconds": round(seconds, 1),
        "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
        "device": device,
    }


def _final_model(trainer: Any, model: Any, source: str, options: FinetuneOptions, out: Path, device: str) -> Any:
    """The trained model with LoRA merged in (None outside the main process); the adapter is saved under adapter/."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        if options.method == "lora":
            model.save_pretrained(out / ADAPTER_DIR)
            model = model.merge_and_unload()
        return model
    # Under DDP, FSDP or ZeRO-3 each process holds a copy or a shard: Trainer gathers the weights to save them,
    # and the main process reads them back whole.
    trainer.save_model(str(out / ADAPTER_DIR) if options.method == "lora" else str(out))
    trainer.accelerator.wait_for_everyone()
    if not is_main_process():
        return None
    if options.method == "full":
        return load_causal_lm(str(out), device)
    from peft import PeftModel

    return PeftModel.from_pretrained(load_causal_lm(source, device), str(out / ADAPTER_DIR)).merge_and_unload()
