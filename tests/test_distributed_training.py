"""Sharded training for real (issue #11): `train_refine.py` as 2 CPU processes with FSDP2 over gloo
(configs/accelerate_fsdp_cpu_2proc.yaml, the wrapping and sharded checkpoints of the GPU FSDP configs), checked
against a 1-process run and resumed from its sharded checkpoint.

Why the runs are comparable: a step's random draws (views, sigmas, noise, text times, text noise) are seeded by
(seed, step, slot) with slot = micro-step x processes + process, the micro-batch's place in the step's global batch
order, and accelerate's loader gives process p of P the batches p, p + P, ... of the (seed, epoch) shuffle. So 2
processes x batch 2 and 1 process x batch 2 x 2 accumulation micro-steps see the same 4 samples per step in the same
micro-batches with the same draws, and both average the two micro-batch losses' gradients (FSDP: reduce-scatter
mean; accumulation: loss / 2). No dropout. What differs is only floating-point reduction order (gradient
reduce-scatter, the sharded gradient norm for clipping), hence a tolerance there; a resumed FSDP run replays the same
sharded computation and must match an uninterrupted one bit for bit.

The GPU configs (bf16, 8/16 GPUs, NCCL, DeepSpeed) cannot run here: see docs/training.md, "Distributed training,
verified".
"""

import json
import shutil
import subprocess
import sys
import time
import types

import pytest
import torch

from test_training import (  # noqa: F401  (workdir is a fixture)
    NUM_SAMPLES,
    REPO,
    common_args,
    subprocess_env,
    transformer_weights,
    workdir,
)
from univigu.training import checkpointing


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

FSDP_CONFIG = REPO / "configs" / "accelerate_fsdp_cpu_2proc.yaml"
# 8 clips, 2 processes x batch 2: 2 steps per epoch; 3 steps cross an epoch boundary, and checkpoint-1 is mid-epoch
# (the resume must skip the first batch of each process's shard).
STEPS = ["--train_batch_size", "2", "--max_train_steps", "3", "--checkpointing_steps", "1", "--no_loss_plot",
         "--trainable", "all", "--learning_rate", "1e-3", "--text_experts_learning_rate", "2e-3"]
# 1 process x the same global batch: 2 accumulation micro-steps of batch 2.
ONE_PROCESS = ["--gradient_accumulation_steps", "2"]
MAX_ABS_DIFF = 1e-5  # fp reduction order only; measured 2.3e-7, vs weight updates up to 6e-3 (docs/training.md)


@pytest.fixture(scope="module")
def refine_start(workdir):
    """A UniViGUPipeline folder made from the tiny Wan folder (fresh text experts, untrained): what Capability
    Refinement starts from, without spending a Knowledge Recall run on it."""
    from univigu.training.components import build_pipeline, load_components

    out = workdir / "univigu-start"
    build_pipeline(load_components(str(workdir / "wan"))).save_pretrained(str(out))
    return out


def launch_fsdp(workdir, start, out, *extra):
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG),
        str(REPO / "training" / "train_refine.py"),
        "--pretrained_model_name_or_path", str(start), *common_args(workdir, out), *STEPS, *extra,
    ]
    begin = time.time()
    result = subprocess.run(cmd, env=subprocess_env(), timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-6000:]
    summary = json.loads((out / "training_summary.json").read_text())
    summary["wall_seconds"] = time.time() - begin
    return result, summary


def losses(out):
    return [json.loads(line) for line in (out / "logs" / "losses.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def fsdp_run(workdir, refine_start):
    out = workdir / "fsdp"
    return (out, *launch_fsdp(workdir, refine_start, out))


@pytest.fixture(scope="module")
def one_process_run(workdir, refine_start):
    from accelerate.state import AcceleratorState

    from univigu.training.arguments import parse_args
    from univigu.training.trainer import main

    out = workdir / "one-process"
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        summary = main(parse_args("refine", ["--pretrained_model_name_or_path", str(refine_start),
                                             *common_args(workdir, out), *STEPS, *ONE_PROCESS]))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    return out, summary


def test_fsdp_run_is_sharded(fsdp_run, refine_start):
    """The FSDP config really shards on CPU (accelerate alone would run DDP and write `model.safetensors`): every
    checkpoint holds one weight shard and one optimizer shard per process; the final pipeline is gathered."""
    out, result, summary = fsdp_run
    assert summary["num_processes"] == 2 and summary["global_step"] == 3
    assert summary["data"]["usable"] == NUM_SAMPLES
    assert [p.name for p in checkpointing.list_checkpoints(out)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    for checkpoint in checkpointing.list_checkpoints(out):
        assert not (checkpoint / "model.safetensors").exists()
        for folder in ("pytorch_model_fsdp_0", "optimizer_0"):
            shards = sorted(p.name for p in (checkpoint / folder).glob("*.distcp"))
            assert shards == ["__0_0.distcp", "__1_0.distcp"], (checkpoint, folder, shards)
    # the gathered final weights: full tensors, every one trained
    start, trained = transformer_weights(refine_start), transformer_weights(out)
    assert start.keys() == trained.keys()
    assert all(trained[k].shape == start[k].shape for k in start)
    assert max((trained[k] - start[k]).abs().max().item() for k in start) > 1e-3


def test_fsdp_two_processes_match_one_process(fsdp_run, one_process_run):
    """2 processes (FSDP2, batch 2 each) and 1 process (batch 2, 2 accumulation micro-steps): same per-step losses
    and the same final weights up to floating-point reduction order."""
    fsdp_out, _, fsdp_summary = fsdp_run
    one_out, one_summary = one_process_run
    assert one_summary["num_processes"] == 1 and one_summary["global_step"] == 3
    a, b = losses(fsdp_out), losses(one_out)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for key in ("loss", "video_loss", "text_loss"):
            assert (ra[key] is None) == (rb[key] is None), (key, ra, rb)
            if ra[key] is not None:
                assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-7), (key, ra, rb)

    sharded, single = transformer_weights(fsdp_out), transformer_weights(one_out)
    assert sharded.keys() == single.keys()
    diff = max((sharded[k] - single[k]).abs().max().item() for k in sharded)
    assert diff <= MAX_ABS_DIFF, diff
    for key in ("text_loss_understanding", "video_loss_generation"):
        assert fsdp_summary["losses_after"][key] == pytest.approx(one_summary["losses_after"][key], rel=1e-5)


def test_fsdp_resume_from_sharded_checkpoint_matches_uninterrupted_run(fsdp_run, workdir, refine_start):
    """A new 2-process FSDP run resumes from the uninterrupted run's sharded checkpoint-1 (mid-epoch) and ends
    bit-identical to it: the same shards, optimizer moments, LR schedule, data position and draws."""
    out_full, _, _ = fsdp_run
    out = workdir / "fsdp-resumed"
    out.mkdir()
    shutil.copytree(out_full / "checkpoint-1", out / "checkpoint-1")
    _, summary = launch_fsdp(workdir, refine_start, out, "--resume_from_checkpoint", "latest")
    assert summary["resumed_from"].endswith("checkpoint-1")
    assert summary["global_step"] == 3 and summary["steps_this_run"] == 2
    assert [r["loss"] for r in losses(out)] == [r["loss"] for r in losses(out_full)[1:]]
    full, resumed = transformer_weights(out_full), transformer_weights(out)
    assert full.keys() == resumed.keys()
    different = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not different, different[:5]


def _cpu_accelerator():
    from accelerate.utils import DistributedType

    return types.SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, mixed_precision="no")


def test_deepspeed_config_on_cpu_is_refused(monkeypatch):
    """accelerate would run a DeepSpeed config on CPU processes as plain DDP; the trainer says so instead."""
    from univigu.training.trainer import _sharding_on_cpu

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="DeepSpeed only on GPUs"):
        _sharding_on_cpu(_cpu_accelerator())


def test_fsdp1_config_on_cpu_is_refused(monkeypatch):
    """accelerate's FSDP1 path needs a GPU (with sync_module_states it fails in the plugin, without it torch refuses
    the `cpu:0` device id): an FSDP1 config on CPU is refused with a pointer to FSDP2."""
    from univigu.training.trainer import _sharding_on_cpu

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")
    accelerator = _cpu_accelerator()
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        _sharding_on_cpu(accelerator)
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    _sharding_on_cpu(accelerator)  # no FSDP asked: a DDP run stays DDP
    assert accelerator.distributed_type.value == "MULTI_CPU"
