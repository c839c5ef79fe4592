"""Checkpoints, Ctrl-C and --resume on a tiny random model: a stopped run is never registered and resumes to the end."""

from __future__ import annotations

import os
import signal

import pytest
from transformers import TrainerCallback

from gptbuilder.errors import InputError
from gptbuilder.training import finetune as tuning
from gptbuilder.training.registry import Registry
from gptbuilder.training.runs import RunInterrupted, open_run

from .conftest import FIXTURES

pytestmark = pytest.mark.slow  # each test loads model weights (the tiny random base) through transformers


class CtrlCAt(TrainerCallback):
    """Sends this process SIGINT during step ``step``, as Ctrl-C in a terminal would."""

    def __init__(self, registry: Registry, step: int):
        self.registry, self.step = registry, step
        self.listed: list[list[str]] = []

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGINT)

    def on_step_end(self, args, state, control, **kwargs):
        self.listed.append(self.registry.names())


def _run(tiny_base, data_dir, name, *, callbacks=(), resume=False, overwrite=False, **options):
    settings = {"max_steps": 6, "batch_size": 2, "block_size": 32, "lr": 1e-2, "seed": 1} | options
    return tuning.finetune(
        str(tiny_base), tuning.read_paths([FIXTURES / "shop.md"]), name, tuning.FinetuneOptions(**settings),
        data_dir=data_dir, callbacks=callbacks, resume=resume, overwrite=overwrite, command="gptbuilder train finetune ...",
    )


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_ctrl_c_keeps_a_checkpoint_and_resume_ends_where_an_uninterrupted_run_does(tiny_base, tmp_path, method):
    registry = Registry(tmp_path)
    ctrl_c = CtrlCAt(registry, 3)
    with pytest.raises(RunInterrupted, match=r"stopped at step 3; the model is not registered.*gptbuilder train finetune \.\.\. --resume"):
        _run(tiny_base, tmp_path, "tiny", callbacks=[ctrl_c], method=method, save_every=4)
    assert ctrl_c.listed == [[], [], []] and registry.names() == []  # stopped after step 3, the step Ctrl-C came in
    assert sorted(p.name for p in (registry.root / ".run-tiny" / ".trainer").iterdir()) == ["checkpoint-3"]

    resumed = _run(tiny_base, tmp_path, "tiny", resume=True, method=method, save_every=4)
    assert resumed is not None
    assert resumed.entry.metrics["steps"] == 6 and resumed.entry.metrics["resumed_from_step"] == 3
    assert registry.names() == ["tiny"] and [p.name for p in registry.root.iterdir()] == ["tiny"]
    assert not (registry.root / "tiny" / ".trainer").exists() and not (registry.root / "tiny" / "run.json").exists()

    straight = _run(tiny_base, tmp_path, "straight", method=method)
    assert straight is not None and straight.entry.metrics["steps"] == 6
    a, b = _weights(resumed.path), _weights(straight.path)
    assert a.keys() == b.keys() and all(a[k].allclose(b[k], atol=1e-5) for k in a)


def test_a_stopped_run_is_resumed_or_overwritten_never_silently_restarted(tiny_base, tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(InputError, match="no stopped run named 'tiny' to resume"):
        _run(tiny_base, tmp_path, "tiny", resume=True)
    assert list(registry.root.iterdir()) == []
    with pytest.raises(RunInterrupted):
        _run(tiny_base, tmp_path, "tiny", callbacks=[CtrlCAt(registry, 2)])
    with pytest.raises(InputError, match="stopped at step 2 and kept its checkpoint; pass --resume to continue it, or --overwrite"):
        _run(tiny_base, tmp_path, "tiny")
    with pytest.raises(InputError, match=r"these differ: --batch-size, --lr"):
        _run(tiny_base, tmp_path, "tiny", resume=True, batch_size=4, lr=1e-3)
    with pytest.raises(InputError, match="a run named 'tiny' is in progress in another process"):
        held = open_run(registry, "tiny", resume=True, overwrite=False)
        try:
            _run(tiny_base, tmp_path, "tiny", resume=True)
        finally:
            held.close(keep=True)
    result = _run(tiny_base, tmp_path, "tiny", overwrite=True, max_steps=2)
    assert result is not None and result.entry.metrics["steps"] == 2 and result.entry.metrics["resumed_from_step"] is None
    assert [p.name for p in registry.root.iterdir()] == ["tiny"]
