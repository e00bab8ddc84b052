"""End-to-end training runs on CPU with tiny models and ShapesWorld clips (9 frames, 64 x 64):

- a short Knowledge Recall run lowers the text loss by a clear margin and writes a loadable pipeline folder,
  validation captions with scores, a loss plot and tensorboard logs;
- the same script runs as 2 processes (DDP over gloo) through `accelerate launch`;
- a run SIGKILLed while writing a checkpoint resumes from `latest` and ends bit-identical to an uninterrupted run;
- a LoRA run changes only adapter weights and its LoRA loads back into a pipeline;
- Capability Refinement starts from the recall output; bad data is skipped and counted.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch



from univigu.training import checkpointing
from univigu.training.arguments import parse_args
from univigu.training.trainer import main as train_main


REPO = Path(__file__).resolve().parents[1]
NUM_SAMPLES = 8


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny Wan2.1-style pipeline folder, a ShapesWorld training folder and a shared latent-cache folder."""
    from diffusers import WanPipeline

    from univigu.toyworld import make_dataset
    from univigu.toyworld.components import build_tiny_components

    root = tmp_path_factory.mktemp("training")
    torch.set_num_threads(1)
    WanPipeline(**build_tiny_components(seed=0)).save_pretrained(root / "wan")
    make_dataset(root / "data", NUM_SAMPLES, split="train", seed=0)
    return root


def common_args(workdir, output_dir, *extra):
    return [
        "--train_data_dir", str(workdir / "data"),
        "--output_dir", str(output_dir),
        "--num_frames", "9", "--height", "64", "--width", "64",
        "--max_text_length", "16", "--max_sequence_length", "16",
        "--latents_cache_dir", str(workdir / "cache"),
        "--report_to", "none",
        "--seed", "0",
        *extra,
    ]


def subprocess_env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def run_script(args, stage="recall", timeout=240, **popen):
    script = REPO / "training" / f"train_{stage}.py"
    return subprocess.run([sys.executable, str(script), *args], env=subprocess_env(), timeout=timeout,
                          capture_output=True, text=True, **popen)


def transformer_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "transformer" / "diffusion_pytorch_model.safetensors"))


@pytest.fixture(scope="module")
def recall_run(workdir):
    """A short Knowledge Recall run (text experts trainable), in process; builds the shared latent cache."""
    out = workdir / "recall"
    args = parse_args("recall", [
        "--pretrained_model_name_or_path", str(workdir / "wan"),
        *common_args(workdir, out),
        "--train_batch_size", "4", "--max_train_steps", "40", "--learning_rate", "5e-3",
        "--view_ratios", "3", "1", "1",
        "--checkpointing_steps", "20", "--checkpoints_total_limit", "1",
        "--validation_steps", "20", "--num_validation_videos", "2", "--validation_num_inference_steps", "4",
        "--report_to", "tensorboard",
    ])
    start = time.time()
    summary = train_main(args)
    summary["wall_seconds"] = time.time() - start
    return out, summary


def test_recall_run_lowers_the_text_loss_and_writes_a_pipeline(recall_run, workdir):
    out, summary = recall_run
    before = summary["losses_before"]["text_loss_understanding"]
    after = summary["losses_after"]["text_loss_understanding"]
    # A fresh text head predicts uniform logits: the loss starts at exactly ln(V).
    from univigu.toyworld.components import build_tokenizer

    assert before == pytest.approx(math.log(len(build_tokenizer())), rel=1e-4)
    assert after < 0.75 * before, (before, after)
    # the video prior is untouched by a text-experts run: its loss on the fixed batch barely moves
    v0, v1 = summary["losses_before"]["video_loss_generation"], summary["losses_after"]["video_loss_generation"]
    assert abs(v1 - v0) < 0.05 * v0
    assert summary["global_step"] == 40 and summary["data"]["usable"] == NUM_SAMPLES

    # outputs: pipeline folder, loss plot, validation captions + scores, tensorboard events, one checkpoint
    from univigu.pipelines import UniViGUPipeline

    pipe = UniViGUPipeline.from_pretrained(out)
    text = pipe(video=str(workdir / "data" / "000000.mp4"), num_inference_steps=4, max_text_length=16,
                generator=torch.Generator().manual_seed(0)).text
    assert isinstance(text[0], str)
    assert (out / "loss.png").stat().st_size > 10_000
    validation = json.loads((out / "validation" / "step-000020.json").read_text())
    assert len(validation["samples"]) == 2 and "shapesworld/attribute_accuracy" in validation["scores"]
    assert (out / "validation" / "step-000040.json").exists()
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    assert [p.name for p in checkpointing.list_checkpoints(out)] == ["checkpoint-40"]
    history = [json.loads(line) for line in (out / "logs" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == list(range(1, 41))
    # only the text experts moved
    trained = transformer_weights(out)
    from diffusers import WanTransformer3DModel

    from univigu.models import UniViGUTransformer3DModel

    start = UniViGUTransformer3DModel.from_wan(
        WanTransformer3DModel.from_pretrained(workdir / "wan", subfolder="transformer"), vocab_size=pipe.transformer.config.vocab_size, seed=0
    ).state_dict()
    text_expert_names = {n for n, _ in pipe.transformer.text_expert_parameters()}
    for name, value in trained.items():
        if name in text_expert_names:
            continue
        assert torch.equal(value, start[name]), name
    assert not torch.equal(trained["text_head.linear.weight"], start["text_head.linear.weight"])


def test_two_process_run_with_accelerate_launch(workdir, recall_run):
    """`accelerate launch` with two CPU processes (DDP over gloo) runs the same script to completion."""
    out = workdir / "ddp"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "configs" / "accelerate_cpu_2proc.yaml"),
        str(REPO / "training" / "train_recall.py"),
        "--pretrained_model_name_or_path", str(workdir / "wan"),
        *common_args(workdir, out),
        "--train_batch_size", "2", "--max_train_steps", "4", "--checkpointing_steps", "2",
        "--no_loss_plot",
    ]
    result = subprocess.run(cmd, env=subprocess_env(), timeout=240, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["global_step"] == 4
    assert "2 processes" in result.stderr
    assert [p.name for p in checkpointing.list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    assert (out / "transformer" / "diffusion_pytorch_model.safetensors").exists()


def test_sigkill_mid_checkpoint_then_resume_matches_an_uninterrupted_run(workdir, recall_run):
    """Kill -9 a run while it writes checkpoint-4; `--resume_from_checkpoint latest` picks checkpoint-2 (the
    half-written one never counts), finishes, and its final weights equal an uninterrupted run's exactly.

    Tolerance: 0 (bit-exact). Every random draw of a step comes from a generator seeded by (seed, step, micro-step,
    process), the data order from (seed, epoch), and the checkpoint restores weights, AdamW moments and the LR
    schedule bit for bit (fp32 safetensors/pickles); both runs use one CPU thread, so the same kernels reduce in the
    same order. Any difference would mean the resumed run did not replay the same steps."""
    steps = ["--train_batch_size", "4", "--max_train_steps", "6", "--learning_rate", "5e-3",
             "--checkpointing_steps", "2", "--no_loss_plot", "--trainable", "all"]
    base = ["--pretrained_model_name_or_path", str(workdir / "wan")]

    reference = workdir / "uninterrupted"
    train_main(parse_args("recall", base + common_args(workdir, reference) + steps))

    killed = workdir / "killed"
    env = subprocess_env()
    env[checkpointing.DEBUG_HANG_ENV] = "4"
    log = open(workdir / "killed.log", "w")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "training" / "train_recall.py"), *base, *common_args(workdir, killed), *steps],
        env=env, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        deadline = time.time() + 180
        for line in proc.stdout:
            if "checkpoint-4 is half-written" in line or time.time() > deadline:
                break
        assert proc.poll() is None, "the run ended before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert (killed / ".tmp-checkpoint-4").exists()
    assert checkpointing.latest_checkpoint(killed).name == "checkpoint-2"

    result = run_script(base + common_args(workdir, killed) + steps + ["--resume_from_checkpoint", "latest"])
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((killed / "training_summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 6 and summary["steps_this_run"] == 4
    assert not (killed / ".tmp-checkpoint-4").exists()
    assert [p.name for p in checkpointing.list_checkpoints(killed)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    history = [json.loads(line)["step"] for line in (killed / "logs" / "losses.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3, 4, 5, 6]

    a, b = transformer_weights(reference), transformer_weights(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    ref_log = [json.loads(line) for line in (reference / "logs" / "losses.jsonl").read_text().splitlines()]
    res_log = [json.loads(line) for line in (killed / "logs" / "losses.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in ref_log] == [r["loss"] for r in res_log]


def test_lora_run_changes_only_adapters_and_loads_back(recall_run, workdir):
    recall_out, _ = recall_run
    out = workdir / "lora"
    summary = train_main(parse_args("refine", [
        "--pretrained_model_name_or_path", str(recall_out),
        *common_args(workdir, out),
        "--trainable", "lora", "--lora_rank", "4", "--lora_alpha", "4",
        "--train_batch_size", "4", "--max_train_steps", "4", "--learning_rate", "1e-2",
        "--max_text_length", "40", "--checkpointing_steps", "4", "--no_loss_plot",
    ]))
    assert summary["trainable"] == "lora" and summary["global_step"] == 4
    assert summary["parameters"]["trainable"] < 0.5 * summary["parameters"]["total"]

    from safetensors.torch import load_file

    # The last checkpoint holds the whole adapted model: every base weight equals the recall model's.
    state = load_file(str(out / "checkpoint-4" / "model.safetensors"))
    base = transformer_weights(recall_out)
    adapters = {k: v for k, v in state.items() if "lora_" in k}
    assert adapters
    for key, value in state.items():
        if "lora_" in key:
            continue
        assert torch.equal(value.float(), base[key.replace(".base_layer", "")].float()), key
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in adapters.items())

    # The saved LoRA loads back into a pipeline and reproduces the trained adapter exactly.
    from univigu.pipelines import UniViGUPipeline

    lora_file = out / "pytorch_lora_weights.safetensors"
    assert lora_file.exists() and not (out / "transformer").exists()
    pipe = UniViGUPipeline.from_pretrained(recall_out)
    latents = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, pipe.transformer.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(1))
    call = dict(hidden_states=latents, timestep=torch.tensor([0.0]), text_ids=ids, text_timestep=torch.tensor([500.0]))
    with torch.no_grad():
        before = pipe.transformer(**call).text_logits
        pipe.load_lora_weights(str(out))
        after = pipe.transformer(**call).text_logits
    assert not torch.allclose(before, after)
    loaded = {k: v for k, v in pipe.transformer.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(adapters)
    by_suffix = {k.replace(".default_0", "").replace(".default", ""): v for k, v in loaded.items()}
    for key, value in adapters.items():
        assert torch.equal(by_suffix[key.replace(".default", "")].float(), value.float()), key

    # The ShapesWorld build scores and ships a LoRA stage fused into its base model, as a plain pipeline.
    from package import load_univigu  # training/shapesworld/package.py

    fused = load_univigu(out)
    assert not [k for k in fused.transformer.state_dict() if "lora_" in k]
    with torch.no_grad():
        torch.testing.assert_close(fused.transformer(**call).text_logits, after, rtol=1e-4, atol=1e-4)
    fused.save_pretrained(str(workdir / "lora_fused"))
    with torch.no_grad():
        reloaded = UniViGUPipeline.from_pretrained(workdir / "lora_fused").transformer(**call).text_logits
    torch.testing.assert_close(reloaded, after, rtol=1e-4, atol=1e-4)


def test_refine_needs_a_univigu_start_and_skips_bad_data(workdir, recall_run, tmp_path):
    """Refine trains on detailed captions from the recall output; rows without a caption or with a broken video
    are skipped and counted in the summary."""
    recall_out, _ = recall_run
    with pytest.raises(ValueError, match="Knowledge Recall output"):
        train_main(parse_args("refine", ["--pretrained_model_name_or_path", str(workdir / "wan"),
                                          *common_args(workdir, tmp_path / "x"), "--max_train_steps", "1"]))

    import shutil

    data = tmp_path / "data"
    shutil.copytree(workdir / "data", data)
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    rows[1]["caption"] = None
    (data / rows[2]["file_name"]).write_bytes(b"broken")
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "refine"
    summary = train_main(parse_args("refine", [
        "--pretrained_model_name_or_path", str(recall_out),
        *common_args(workdir, out),
        "--train_data_dir", str(data), "--latents_cache_dir", str(tmp_path / "cache"),
        "--max_text_length", "40", "--train_batch_size", "2", "--max_train_steps", "3",
        "--learning_rate", "5e-3", "--checkpointing_steps", "0", "--no_loss_plot",
    ]))
    assert summary["data"]["usable"] == NUM_SAMPLES - 2
    assert summary["data"]["skipped"] == {"missing text": 1, "unreadable video": 1}
    assert summary["losses_after"]["text_loss_understanding"] < summary["losses_before"]["text_loss_understanding"]
    from univigu.pipelines import UniViGUPipeline

    assert UniViGUPipeline.from_pretrained(out).transformer.config.vocab_size > 0


def test_on_the_fly_encoding_bf16_accumulation_and_gradient_checkpointing(workdir, tmp_path):
    """No latent cache (VAE + umT5 run every step), bf16 autocast, 2 accumulation micro-steps, gradient
    checkpointing, LoRA from a Wan folder (the text head is adapted too): runs, and the step count follows
    the accumulation."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # this run changes the mixed precision
    try:
        out = tmp_path / "otf"
        args = common_args(workdir, out)
        i = args.index("--latents_cache_dir")
        del args[i : i + 2]
        summary = train_main(parse_args("recall", [
            "--pretrained_model_name_or_path", str(workdir / "wan"), *args,
            "--train_batch_size", "2", "--gradient_accumulation_steps", "2", "--max_train_steps", "2",
            "--gradient_checkpointing", "--mixed_precision", "bf16", "--trainable", "lora",
            "--learning_rate", "1e-2", "--checkpointing_steps", "0", "--no_loss_plot",
        ]))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert summary["global_step"] == 2 and summary["mixed_precision"] == "bf16"
    assert summary["latent_cache"] is None
    history = [json.loads(line) for line in (out / "logs" / "losses.jsonl").read_text().splitlines()]
    assert len(history) == 2 and all(math.isfinite(r["loss"]) for r in history)
    assert (out / "pytorch_lora_weights.safetensors").exists()
    # starting from Wan, the LoRA's base (fresh text experts) is saved next to it
    from univigu.pipelines import UniViGUPipeline
    from univigu.training.lora import load_lora_weights

    pipe = UniViGUPipeline.from_pretrained(out / "base_pipeline")
    load_lora_weights(pipe, str(out))
    assert any("text_head.linear.lora_A" in k for k in pipe.transformer.state_dict())


def test_univigu_evaluate_command(recall_run, workdir, tmp_path, capsys):
    from univigu.cli import main as cli_main

    recall_out, _ = recall_run
    result_file = tmp_path / "eval.json"
    assert cli_main([
        "evaluate", "--model", str(recall_out), "--data-dir", str(workdir / "data"),
        "--reference-column", "prompt", "--num-samples", "3", "--num-inference-steps", "4",
        "--max-text-length", "16", "--out", str(result_file),
    ]) == 0
    result = json.loads(result_file.read_text())
    assert result["data"]["evaluated"] == 3 and len(result["samples"]) == 3
    for key in ("bleu", "rougeL", "cider", "shapesworld/attribute_accuracy"):
        assert key in result["scores"]
    assert '"cider"' in capsys.readouterr().out
