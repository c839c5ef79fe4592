"""`train finetune --print-launch`: accelerate's config and DeepSpeed's JSON, and a real `accelerate launch` on CPU."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.settings import Settings
from gptbuilder.training.registry import Registry

from .conftest import FIXTURES

runner = CliRunner()
SHOP = str(FIXTURES / "shop.md")


def _print_launch(*args: str) -> tuple[list[str], Path]:
    result = runner.invoke(app, ["train", "finetune", "embedded", "--data", SHOP, "--name", "shop", "--print-launch", *args])
    assert result.exit_code == 0, result.output
    command = shlex.split(result.stdout)
    return command, Path(command[command.index("--config_file") + 1])


def test_several_gpus_are_ddp_with_the_same_training_arguments():
    command, config_file = _print_launch("--gpus", "4", "--max-steps", "30", "--full", "--lr", "1e-4")
    config = ClusterConfig.from_yaml_file(str(config_file))  # accelerate reads it as `accelerate launch` will
    assert config.distributed_type.value == "MULTI_GPU" and config.num_processes == 4 and config.mixed_precision == "bf16"
    assert not config.use_cpu and config.num_machines == 1 and config.deepspeed_config == {} and config.fsdp_config == {}
    assert config_file == Settings.from_env().data_dir.resolve() / "launch" / "shop" / "accelerate.yaml"
    assert command[:2] in (["accelerate", "launch"], [command[0], "launch"]) and command[0].endswith("accelerate")
    tail = command[command.index("-m") + 1 :]
    assert tail[0] == "gptbuilder" and tail[5:9] == ["train", "finetune", "embedded", "--name"]
    assert tail[9:] == ["shop", "--data", SHOP, "--full", "--max-steps", "30", "--lr", "0.0001"]


@pytest.mark.parametrize(("stage", "gather"), [("zero2", None), ("zero3", True)])
def test_deepspeed_writes_a_zero_config_trainer_completes(stage, gather):
    _, config_file = _print_launch("--gpus", "2", "--deepspeed", stage)
    config = ClusterConfig.from_yaml_file(str(config_file))
    assert config.distributed_type.value == "DEEPSPEED" and config.num_processes == 2
    deepspeed_file = Path(config.deepspeed_config["deepspeed_config_file"])
    assert deepspeed_file == config_file.with_name("deepspeed.json")
    assert config.deepspeed_config["zero3_init_flag"] is (stage == "zero3")
    settings = json.loads(deepspeed_file.read_text(encoding="utf-8"))
    assert settings["zero_optimization"]["stage"] == int(stage[-1])
    assert settings["zero_optimization"].get("stage3_gather_16bit_weights_on_model_save") is gather
    assert settings["train_micro_batch_size_per_gpu"] == settings["gradient_accumulation_steps"] == "auto"
    assert settings["bf16"] == {"enabled": "auto"}


def test_fsdp_writes_a_full_state_dict_config():
    _, config_file = _print_launch("--gpus", "8", "--fsdp")
    config = ClusterConfig.from_yaml_file(str(config_file))
    assert config.distributed_type.value == "FSDP" and config.num_processes == 8
    assert config.fsdp_config["fsdp_version"] == 2 and config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "2", "--deepspeed", "zero1"], "--deepspeed must be one of zero2, zero3"),
        (["--gpus", "2", "--deepspeed", "zero2", "--fsdp"], "choose --deepspeed or --fsdp, not both"),
        (["--gpus", "0", "--fsdp"], "--fsdp shards a model over GPUs: give --gpus 1 or more"),
    ],
)
def test_launch_options_that_cannot_work_are_refused(args, message):
    result = runner.invoke(app, ["train", "finetune", "embedded", "--data", SHOP, "--name", "shop", "--print-launch", *args])
    assert result.exit_code == 1 and message in result.stderr


def test_gpus_without_print_launch_is_refused():
    result = runner.invoke(app, ["train", "finetune", "embedded", "--data", SHOP, "--name", "shop", "--gpus", "2"])
    assert result.exit_code == 1 and "go with --print-launch" in result.stderr


def test_the_printed_command_runs_a_real_one_process_accelerate_launch_on_cpu(tiny_base):
    result = runner.invoke(
        app,
        ["train", "finetune", str(tiny_base), "--data", SHOP, "--name", "tiny", "--max-steps", "3", "--batch-size", "2",
         "--block-size", "32", "--json", "--print-launch", "--gpus", "0"],
    )
    assert result.exit_code == 0, result.output
    config = ClusterConfig.from_yaml_file(shlex.split(result.stdout)[3])
    assert config.use_cpu and config.num_processes == 1 and config.distributed_type.value == "NO"
    launched = subprocess.run(shlex.split(result.stdout), capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    entry = json.loads(launched.stdout.strip().splitlines()[-1])
    assert entry["name"] == "tiny" and entry["metrics"]["steps"] == 3 and entry["metrics"]["device"] == "cpu"
    assert Registry(Settings.from_env().data_dir).names() == ["tiny"]
