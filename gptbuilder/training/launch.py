"""`train finetune --print-launch`: the `accelerate launch` command and config files that run a fine-tune on N GPUs.

gptbuilder has no distributed trainer of its own: Trainer runs under `accelerate launch`, which starts one
process per GPU and hands it DDP, FSDP or DeepSpeed ZeRO as its config file says. The config is accelerate's
own (written by its `ClusterConfig`, as `accelerate config` would), and the DeepSpeed JSON leaves to Trainer
("auto") what the command line already decides: batch sizes, accumulation, precision, clipping.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from .registry import check_name

ZERO_STAGES = {"zero2": 2, "zero3": 3}
CONFIG_FILE = "accelerate.yaml"
DEEPSPEED_FILE = "deepspeed.json"


@dataclass(frozen=True)
class Launch:
    """What `--print-launch` made: the command to run, the files it wrote and what to know before running it."""

    command: list[str]
    files: list[Path]
    notes: list[str]

    @property
    def line(self) -> str:
        """The command as one shell line."""
        return shlex.join(self.command)


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A ZeRO-2/3 config whose "auto" values Trainer fills from its own arguments."""
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero |= {
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,  # save_model writes whole weights, not shards
        }
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
    }


def accelerate_config(gpus: int, *, deepspeed_file: Path | None = None, zero_stage: int | None = None, fsdp: bool = False) -> Any:
    """accelerate's ClusterConfig for one machine: CPU (gpus 0), one GPU, DDP, FSDP or DeepSpeed."""
    from accelerate.commands.config.config_args import ClusterConfig

    if gpus == 0:
        kind, precision = "NO", "no"
    elif deepspeed_file is not None:
        kind, precision = "DEEPSPEED", "bf16"
    elif fsdp:
        kind, precision = "FSDP", "bf16"
    else:
        kind, precision = ("MULTI_GPU" if gpus > 1 else "NO"), "bf16"
    extra: dict[str, Any] = {}
    if deepspeed_file is not None:
        extra["deepspeed_config"] = {"deepspeed_config_file": str(deepspeed_file), "zero3_init_flag": zero_stage == 3}
    if fsdp:
        extra["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # the model's own _no_split_modules: its decoder layers
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",  # save_model writes one whole checkpoint the registry can load
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
        }
    return ClusterConfig(
        compute_environment="LOCAL_MACHINE",
        distributed_type=kind,
        mixed_precision=precision,
        use_cpu=gpus == 0,
        debug=False,
        num_processes=max(gpus, 1),
        gpu_ids="all" if gpus else None,
        machine_rank=0,
        num_machines=1,
        rdzv_backend="static",
        same_network=True,
        main_training_function="main",
        **extra,
    )


def write_launch(folder: Path, name: str, gpus: int, arguments: list[str], *, deepspeed: str | None = None, fsdp: bool = False) -> Launch:
    """Write the config files for a fine-tune of ``name`` into ``folder``; ``arguments`` follow `gptbuilder`."""
    check_name(name)
    if gpus < 0:
        raise InputError("--gpus must be 0 (CPU) or more")
    if deepspeed is not None and deepspeed not in ZERO_STAGES:
        raise InputError(f"--deepspeed must be one of {', '.join(ZERO_STAGES)}, not {deepspeed!r}")
    if deepspeed and fsdp:
        raise InputError("choose --deepspeed or --fsdp, not both: each shards the model its own way")
    if (deepspeed or fsdp) and gpus == 0:
        raise InputError(f"--{'deepspeed' if deepspeed else 'fsdp'} shards a model over GPUs: give --gpus 1 or more")
    folder.mkdir(parents=True, exist_ok=True)
    files, notes = [], []
    deepspeed_file = None
    if deepspeed:
        deepspeed_file = (folder / DEEPSPEED_FILE).resolve()
        _write(deepspeed_file, json.dumps(deepspeed_config(ZERO_STAGES[deepspeed]), indent=2) + "\n")
        files.append(deepspeed_file)
        if importlib.util.find_spec("deepspeed") is None:
            notes.append("deepspeed is not installed here; `pip install deepspeed` where the command runs")
    config = accelerate_config(gpus, deepspeed_file=deepspeed_file, zero_stage=ZERO_STAGES.get(deepspeed or ""), fsdp=fsdp)
    config_file = (folder / CONFIG_FILE).resolve()
    _write(config_file, yaml.safe_dump(config.to_dict()))
    files.insert(0, config_file)
    beside = Path(sys.executable).with_name("accelerate")  # this environment's, when it is not the one on PATH
    launcher = "accelerate" if shutil.which("accelerate") == str(beside) or not beside.is_file() else str(beside)
    command = [launcher, "launch", "--config_file", str(config_file), "-m", "gptbuilder", *arguments]
    return Launch(command, files, notes)


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
