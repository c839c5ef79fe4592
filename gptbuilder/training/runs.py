"""One training run's folder: where the model is built, its Trainer checkpoints, what it was started with.

A run of model NAME lives in `<data>/models/.run-NAME/` (hidden: the registry never lists it) until it
finishes and the registry renames it into place. Its name does not change between attempts, so a run that
Ctrl-C stopped can be found again by `--resume`; a lock held for the run's life keeps two processes from
training the same NAME at once. Only the main process of a distributed launch opens, cleans or locks it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GPTBuilderError, InputError
from .registry import Registry, check_name

RUN_PREFIX = ".run-"
RUN_FILE = "run.json"
TRAINER_DIR = ".trainer"
_LOCK = ".lock"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class RunInterrupted(GPTBuilderError):
    """Ctrl-C stopped a run after a step; its checkpoint is kept for `--resume`."""


def is_main_process() -> bool:
    """False in the other processes of an `accelerate launch` (RANK > 0)."""
    return os.environ.get("RANK", "0") == "0"


def checkpoint_step(path: Path) -> int:
    """The step a Trainer checkpoint folder was saved at."""
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else -1


@dataclass
class Run:
    """The folder of one run and the lock this process holds on it."""

    name: str
    folder: Path
    lock_fd: int | None = None

    @property
    def trainer_dir(self) -> Path:
        """Trainer's output_dir: its checkpoints go here."""
        return self.folder / TRAINER_DIR

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (Trainer writes trainer_state.json last), or None."""
        if not self.trainer_dir.is_dir():
            return None
        for path in sorted(self.trainer_dir.iterdir(), key=checkpoint_step, reverse=True):
            if checkpoint_step(path) < 0:
                continue
            try:
                json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # killed while saving: the one before it is whole
            return path
        return None

    def recorded(self) -> dict[str, Any]:
        """What the run was started with (see `record`); empty for a fresh run."""
        try:
            data = json.loads((self.folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(self, data: dict[str, Any]) -> None:
        """Write what the run was started with, atomically."""
        temp = self.folder / f".{RUN_FILE}.tmp"
        temp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temp, self.folder / RUN_FILE)

    def strip(self) -> None:
        """Remove what only the run needed (checkpoints, run.json, the lock file) before it is registered."""
        shutil.rmtree(self.trainer_dir, ignore_errors=True)
        for leftover in (RUN_FILE, _LOCK):
            (self.folder / leftover).unlink(missing_ok=True)

    def close(self, *, keep: bool) -> None:
        """Release the lock; delete the folder unless ``keep`` (a checkpoint worth resuming)."""
        if not keep and is_main_process():
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def open_run(registry: Registry, name: str, *, resume: bool, overwrite: bool) -> Run:
    """Lock the run folder of ``name``; a fresh run starts it empty, ``resume`` needs a checkpoint in it."""
    check_name(name)
    run = Run(name, registry.root / f"{RUN_PREFIX}{name}")
    if not is_main_process():
        return run  # the main process prepared it; the others only write their checkpoint shards into it
    run.folder.mkdir(parents=True, exist_ok=True)
    run.lock_fd = os.open(run.folder / _LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(run.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        run.close(keep=True)
        raise InputError(f"a run named {name!r} is in progress in another process; wait for it, or pick another --name") from None
    checkpoint = run.last_checkpoint()
    if resume and checkpoint is None:
        run.close(keep=False)
        raise InputError(
            f"no stopped run named {name!r} to resume (a run keeps checkpoints with --save-every N, and when Ctrl-C stops it)"
        )
    if not resume:
        if checkpoint is not None and not overwrite:
            run.close(keep=True)
            raise InputError(
                f"a run named {name!r} stopped at step {checkpoint_step(checkpoint)} and kept its checkpoint; "
                "pass --resume to continue it, or --overwrite to start over"
            )
        for path in run.folder.iterdir():  # what an earlier attempt left
            if path.name != _LOCK:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return run
