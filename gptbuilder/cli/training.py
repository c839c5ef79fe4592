"""`gptbuilder train …` (prepare data, fine-tune, evaluate) and `gptbuilder models …` (the registry)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError
from ..settings import Settings

train_app = typer.Typer(help="Prepare data, fine-tune and evaluate your own models.", no_args_is_help=True)
models_app = typer.Typer(help="The models you trained: list, show, remove.", no_args_is_help=True)

DataOption = Annotated[list[Path], typer.Option("--data", help="Text (.txt/.md), chat records (.jsonl) or a folder of them; repeatable")]
FromGptOption = Annotated[list[str], typer.Option("--from-gpt", metavar="ID", help="Train on this GPT's knowledge files; repeatable")]
BlockOption = Annotated[int, typer.Option("--block-size", min=8, max=32_768, help="Tokens per training block")]
SkipBadOption = Annotated[bool, typer.Option("--skip-bad", help="Leave out JSONL lines that are not chat records, instead of stopping")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


def register(app: typer.Typer) -> None:
    """Add the `train` and `models` command groups to the app."""
    app.add_typer(train_app, name="train")
    app.add_typer(models_app, name="models")


@train_app.command("data")
def data(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(metavar="PATH...", help="Text, .jsonl chat records or folders")] = None,
    from_gpt: FromGptOption = [],  # noqa: B006 (typer reads the default; it is never mutated)
    base: Annotated[str, typer.Option("--base", help="Whose tokenizer and chat template to use")] = "embedded",
    block_size: BlockOption = 256,
    skip_bad: SkipBadOption = False,
    stats: Annotated[bool, typer.Option("--stats", help="Print statistics (a dry run: nothing is written)")] = True,
    as_json: JsonOption = False,
) -> None:
    """Dry-run data preparation: documents, tokens, blocks, and what was dropped and why."""
    from ..training.base import load_tokenizer, resolve_base
    from ..training.data import prepare
    from ..training.finetune import read_corpus

    settings: Settings = ctx.obj
    corpus = read_corpus(paths or [], from_gpt, gpts_dir=settings.gpts_dir, data_dir=settings.data_dir, skip_bad=skip_bad)
    prepared = prepare(corpus, load_tokenizer(resolve_base(base, settings.data_dir)), block_size=block_size)
    report = prepared.stats
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        typer.echo(
            f"documents: {report.documents} read, {report.kept} kept "
            f"({report.train_documents} train, {report.validation_documents} validation)\n"
            f"tokens: {report.train_tokens} train ({report.trainable_tokens} trained on), {report.validation_tokens} validation\n"
            f"blocks of {report.block_size}: {report.train_blocks} train, {report.validation_blocks} validation"
        )
        dropped = ", ".join(f"{count} {reason}" for reason, count in report.dropped.items())
        typer.echo(f"dropped: {dropped or 'nothing'}")
        for note in report.notes:
            typer.echo(f"  {note}")
    prepared.require_enough()


@train_app.command("finetune")
def finetune(
    ctx: typer.Context,
    base: Annotated[str, typer.Argument(metavar="BASE", help="embedded, a registered model, a checkpoint folder or a HF id")],
    name: Annotated[str, typer.Option("--name", help="Register the result under this name")],
    paths: DataOption = [],  # noqa: B006
    from_gpt: FromGptOption = [],  # noqa: B006
    lora: Annotated[bool, typer.Option("--lora/--full", help="Train a LoRA adapter (merged at the end) or every weight")] = True,
    epochs: Annotated[float, typer.Option("--epochs", min=0.01, help="Passes over the data")] = 3.0,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps (wins over --epochs)")] = None,
    lr: Annotated[float | None, typer.Option("--lr", min=0, help="Learning rate [default: 5e-4 LoRA, 5e-5 full]")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Blocks per step and device")] = 8,
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1, help="Batches summed into one step")] = 1,
    block_size: BlockOption = 256,
    eval_every: Annotated[int | None, typer.Option("--eval-every", min=1, help="Validation loss every N steps")] = None,
    save_every: Annotated[
        int | None, typer.Option("--save-every", min=1, help="Keep a checkpoint every N steps (Ctrl-C keeps one too)")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the stopped run of NAME from its last checkpoint")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation and data order")] = 42,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a registered model of the same name, or a stopped run's checkpoints")
    ] = False,
    skip_bad: SkipBadOption = False,
    as_json: JsonOption = False,
    print_launch: Annotated[
        bool, typer.Option("--print-launch", help="Do not train: write the accelerate config and print the launch command")
    ] = False,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="With --print-launch: GPUs (processes) to use; 0 for one CPU process")] = 1,
    deepspeed: Annotated[
        str | None, typer.Option("--deepspeed", metavar="zero2|zero3", help="With --print-launch: shard with DeepSpeed ZeRO")
    ] = None,
    fsdp: Annotated[bool, typer.Option("--fsdp", help="With --print-launch: shard with PyTorch FSDP")] = False,
) -> None:
    """Fine-tune BASE on your data with transformers' Trainer and register it as NAME.

    Ctrl-C stops after the current step and keeps a checkpoint; `--resume` continues from it.
    """
    from ..training import finetune as tuning

    settings: Settings = ctx.obj
    if print_launch:
        _print_launch(ctx, settings, name, gpus, deepspeed=deepspeed, fsdp=fsdp)
        return
    if deepspeed or fsdp or gpus != 1:
        raise InputError("--gpus, --deepspeed and --fsdp go with --print-launch, which writes the config for `accelerate launch`")
    options = tuning.FinetuneOptions(
        method="lora" if lora else "full",
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        block_size=block_size,
        eval_every=eval_every,
        save_every=save_every,
        seed=seed,
    )
    corpus = tuning.read_corpus(paths, from_gpt, gpts_dir=settings.gpts_dir, data_dir=settings.data_dir, skip_bad=skip_bad)
    command = shlex.join(["gptbuilder", *sys.argv[1:]])
    result = tuning.finetune(
        base, corpus, name, options, data_dir=settings.data_dir, overwrite=overwrite, resume=resume, command=command
    )
    if result is None:
        return  # another process of a distributed launch: the main one registers and reports
    _report(result, name, as_json)


def _report(result: Any, name: str, as_json: bool) -> None:
    """Print what was registered: its entry as JSON, or three lines."""
    if as_json:
        typer.echo(json.dumps(result.entry.to_dict(), ensure_ascii=False))
        return
    m = result.entry.metrics
    typer.echo(
        f"registered {name} ({result.entry.method} on {result.entry.base}) in {result.path}\n"
        f"validation perplexity {m['validation_perplexity_before']} -> {m['validation_perplexity_after']} "
        f"after {m['steps']} steps in {m['seconds']} s ({m['tokens_per_second']} tokens/s on {m['device']})\n"
        f"use it in a spec: model: {{provider: transformers, name: 'registry:{name}'}}"
    )


@train_app.command("pretrain")
def pretrain(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Register the result under this name")],
    paths: DataOption = [],  # noqa: B006
    size: Annotated[str, typer.Option("--size", metavar="tiny|small", help="tiny: ~1M parameters; small: ~27M")] = "tiny",
    tokenizer: Annotated[
        str, typer.Option("--tokenizer", metavar="train|BASE", help="Learn a byte-level BPE from the data, or use BASE's")
    ] = "train",
    epochs: Annotated[float, typer.Option("--epochs", min=0.01, help="Passes over the data")] = 3.0,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps (wins over --epochs)")] = None,
    lr: Annotated[float | None, typer.Option("--lr", min=0, help="Learning rate [default: 1e-3]")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Blocks per step and device")] = 8,
    block_size: BlockOption = 256,
    save_every: Annotated[int | None, typer.Option("--save-every", min=1, help="Keep a checkpoint every N steps")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the stopped run of NAME")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation and data order")] = 42,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a registered model of the same name")] = False,
    as_json: JsonOption = False,
) -> None:
    """Pre-train a small model from scratch on your text (for learning and toy domains) and register it as NAME."""
    from ..training import finetune as tuning
    from ..training import pretrain as scratch

    settings: Settings = ctx.obj
    options = tuning.FinetuneOptions(
        epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, block_size=block_size, save_every=save_every, seed=seed
    )
    corpus = tuning.read_corpus(paths, [], gpts_dir=settings.gpts_dir, data_dir=settings.data_dir, skip_bad=False)
    result = scratch.pretrain(
        corpus, name, options, size=size, tokenizer=tokenizer, data_dir=settings.data_dir, overwrite=overwrite,
        resume=resume, command=shlex.join(["gptbuilder", *sys.argv[1:]]),
    )
    if result is not None:
        _report(result, name, as_json)


LAUNCH_OPTIONS = frozenset({"print_launch", "gpus", "deepspeed", "fsdp"})


def _print_launch(ctx: typer.Context, settings: Settings, name: str, gpus: int, *, deepspeed: str | None, fsdp: bool) -> None:
    """Write accelerate's config for this very command and print the `accelerate launch` line that runs it."""
    from ..training.launch import write_launch
    from ..training.registry import check_name

    folder = settings.data_dir / "launch" / check_name(name)
    arguments = ["--gpts", str(settings.gpts_dir.resolve()), "--data", str(settings.data_dir.resolve()), "train", "finetune"]
    launch = write_launch(folder, name, gpus, arguments + replay(ctx, LAUNCH_OPTIONS), deepspeed=deepspeed, fsdp=fsdp)
    for path in launch.files:
        typer.echo(f"wrote {path}", err=True)
    for note in launch.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(launch.line)


def replay(ctx: typer.Context, leave_out: frozenset[str] = frozenset()) -> list[str]:
    """The arguments that give this command the values it was given (options at their default left out)."""
    from typer.core import TyperArgument, TyperOption

    arguments: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.name in leave_out or value is None or value == [] or value == ():
            continue
        if isinstance(param, TyperArgument):
            arguments += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            continue
        assert isinstance(param, TyperOption)
        if value == param.default:
            continue
        if param.is_flag:
            arguments.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        for item in value if param.multiple else [value]:
            arguments += [param.opts[0], str(item)]
    return arguments


@train_app.command("eval")
def evaluate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A registered model")],
    paths: DataOption = [],  # noqa: B006
    block_size: BlockOption = 256,
    as_json: JsonOption = False,
) -> None:
    """Perplexity of a registered model and of its base on the same held-out text."""
    from ..training.data import read_paths
    from ..training.evaluate import compare

    if not paths:
        raise InputError("give held-out text with --data PATH")
    result = compare(name, read_paths(paths), ctx.obj.data_dir, block_size=block_size)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    typer.echo(f"{result.model}: perplexity {result.perplexity}; {result.base}: {result.base_perplexity} ({result.tokens} tokens)")


def _entry_row(entry: Any) -> str:
    metrics = entry.metrics
    ppl = f"ppl {metrics.get('validation_perplexity_before')} -> {metrics.get('validation_perplexity_after')}"
    return f"{entry.name}\t{entry.method} on {entry.base}\t{ppl}\t{entry.size_bytes / 1e6:.0f} MB\t{entry.created}"


@models_app.command("list")
def list_models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The registered models."""
    from ..training.registry import Registry

    entries = Registry(ctx.obj.data_dir).entries()
    if as_json:
        typer.echo(json.dumps([entry.to_dict() for entry in entries], ensure_ascii=False))
    elif not entries:
        typer.echo("no registered model; train one with `gptbuilder train finetune embedded --data FILE --name NAME`")
    for entry in [] if as_json else entries:
        typer.echo(_entry_row(entry))


@models_app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """One model's entry (base, data and their hashes, hyper-parameters, metrics, command) as JSON."""
    from ..training.registry import Registry

    registry = Registry(ctx.obj.data_dir)
    entry = registry.get(name).to_dict()
    entry |= {"path": str(registry.path(name)), "used_by": registry.users(name, ctx.obj.gpts_dir)}
    typer.echo(json.dumps(entry, indent=2, ensure_ascii=False))


@models_app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Delete a registered model (refused while a GPT uses it)."""
    from ..training.registry import Registry

    Registry(ctx.obj.data_dir).remove(name, gpts_dir=ctx.obj.gpts_dir)
    typer.echo(f"removed {name}")
