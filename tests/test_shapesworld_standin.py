"""The ShapesWorld stand-in's trainer (training/shapesworld/pretrain_base.py): a run stopped and resumed computes
exactly what an uninterrupted one does, and a resume with other settings is refused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from univigu.toyworld import DEFAULT_VAE


SCRIPT = Path(__file__).resolve().parents[1] / "training" / "shapesworld" / "pretrain_base.py"
TINY = ["--vae", DEFAULT_VAE, "--num-clips", "16", "--max-steps", "4", "--checkpoint-every", "2",
        "--probe-every", "1000", "--probe-prompts", "0", "--threads", "1", "--width", "32", "--layers", "1",
        "--heads", "2", "--text-dim", "16"]


def run(out, *extra):
    return subprocess.run([sys.executable, str(SCRIPT), *TINY, "--out", str(out), *extra], capture_output=True,
                          text=True, timeout=300)


def test_resume_is_bit_exact_and_settings_are_kept(tmp_path):
    whole = run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    stopped = run(tmp_path / "resumed", "--stop-after-minutes", "1e-6")  # checkpoints after its first step
    assert stopped.returncode == 0 and "run again to continue" in stopped.stdout, stopped.stderr
    assert (tmp_path / "resumed" / "checkpoints" / "step_1").is_dir()
    resumed = run(tmp_path / "resumed")
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout, resumed.stderr
    for name in ("model", "ema", "rng"):
        a = load_file(tmp_path / "whole" / "checkpoints" / "step_4" / f"{name}.safetensors")
        b = load_file(tmp_path / "resumed" / "checkpoints" / "step_4" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    # Only the newest two checkpoints are kept.
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["step_2", "step_4"]

    refused = run(tmp_path / "resumed", "--lr", "1e-3")
    assert refused.returncode != 0 and "other settings" in refused.stderr and "'lr'" in refused.stderr

    exported = run(tmp_path / "resumed", "--export", str(tmp_path / "base"), "--export-eval-samples", "2")
    assert exported.returncode == 0, exported.stderr
    from diffusers import WanPipeline

    from univigu.pipelines.serialization import verify_checksums
    from univigu.toyworld import world_of_folder

    folder = tmp_path / "base"
    assert world_of_folder(folder).version == "shapesworld-v2"
    record = json.loads((folder / "shapesworld.json").read_text())
    assert record["world"]["sizes"] == {"small": 20, "large": 28} and record["stand_in"]["steps"] == 4
    assert set(record["ladder"]) == {"L1", "L2"} and record["ladder"]["L2"]["1"]["num_samples"] == 2
    card = (folder / "README.md").read_text()
    assert "library_name: diffusers" in card and "pipeline_tag: text-to-video" in card and "L2:" in card
    assert "README.md" in verify_checksums(folder)["files"]
    again = run(tmp_path / "resumed", "--export", str(folder))
    assert again.returncode != 0 and "not empty" in again.stderr  # an export never overwrites a folder
    pipe = WanPipeline.from_pretrained(folder)
    ema = load_file(tmp_path / "whole" / "checkpoints" / "step_4" / "ema.safetensors")
    params = list(pipe.transformer.parameters())
    assert all(torch.equal(p, ema[str(i)]) for i, p in enumerate(params))  # the EMA weights are what ships

    # --save-dtype float16 halves the stored transformer; it loads as float32, the EMA weights rounded once
    half = run(tmp_path / "resumed", "--export", str(tmp_path / "half"), "--export-eval-samples", "0",
               "--save-dtype", "float16")
    assert half.returncode == 0, half.stderr
    stored = load_file(next((tmp_path / "half" / "transformer").glob("*.safetensors")))
    assert {v.dtype for v in stored.values()} == {torch.float16}
    assert json.loads((tmp_path / "half" / "shapesworld.json").read_text())["stand_in"]["stored_as"] == "float16"
    params = list(WanPipeline.from_pretrained(tmp_path / "half").transformer.parameters())
    assert all(p.dtype == torch.float32 and torch.equal(p, ema[str(i)].half().float()) for i, p in enumerate(params))


def test_extend_continues_a_finished_run_with_a_second_phase(tmp_path):
    assert run(tmp_path / "r").returncode == 0
    more = run(tmp_path / "r", "--max-steps", "6")  # a larger --max-steps alone is another run's setting
    assert more.returncode != 0 and "--extend" in more.stderr
    extended = run(tmp_path / "r", "--max-steps", "6", "--extend")
    assert extended.returncode == 0 and "resumed from" in extended.stdout, extended.stderr
    saved = json.loads((tmp_path / "r" / "args.json").read_text())
    assert saved["max_steps"] == 6 and saved["phases"] == [[0, 4], [4, 6]]
    assert (tmp_path / "r" / "checkpoints" / "step_6").is_dir()
    from pretrain_base import parse_args, schedule_lr

    args = parse_args(["--vae", "v", "--out", "o", "--lr", "1e-3", "--warmup", "0.5"])
    phases = [[0, 4], [4, 6]]
    assert schedule_lr(0, phases, args) < schedule_lr(2, phases, args) == 1e-3  # warm-up, then the peak
    assert schedule_lr(4, phases, args) < schedule_lr(3, phases, args)  # the second phase warms up again


@pytest.mark.parametrize("flag", ["--export"])
def test_export_without_checkpoint_fails(tmp_path, flag):
    result = run(tmp_path / "empty", flag, str(tmp_path / "x"))
    assert result.returncode != 0 and "no checkpoint" in result.stderr


def test_upper_rungs_are_judged_against_their_goals():
    import ladder

    def scores(exact, invented=0.0, held_out=None, seen=None, rate=1.0, **t2v):
        v2t = {"object_exact_match": exact, "hallucinations_per_sample": invented, "template_rate": rate,
               "held_out/object_exact_match": exact if held_out is None else held_out,
               "seen/object_exact_match": exact if seen is None else seen}
        video = {"colour_accuracy": 0.9, "shape_accuracy": 0.8, "motion_accuracy": 0.7, "object_exact_match": 0.6}
        return {"v2t/1obj": v2t, "v2t/2obj": dict(v2t), "t2v/1obj": {**video, **t2v}, "t2v/2obj": dict(video),
                "stand-in/t2v/1obj": dict(video), "stand-in/t2v/2obj": dict(video)}

    assert all(met for *_, met in ladder.upper_rung_checks(scores(0.95)))
    failed = {(rung, what) for rung, what, _, _, met in
              ladder.upper_rung_checks(scores(0.8, invented=0.2, held_out=0.6, seen=0.9, rate=0.5,
                                              shape_accuracy=0.7)) if not met}
    assert {rung for rung, _ in failed} == {"L3", "L4", "L5", "L6"}
    assert ("L3", "v2t exact, 1 object(s)") in failed and ("L3", "v2t exact, 2 object(s)") not in failed
    assert ("L4", "t2v shape - stand-in's, 1 object(s)") in failed
    assert ("L4", "t2v colour - stand-in's, 1 object(s)") not in failed



def test_pretrained_text_encoder_knows_which_words_belong_together(tmp_path):
    """pretrain_text_encoder.py: a random umT5 is close to a bag of words; trained, every token of a clause carries its
    object's colour, shape and motion, on test prompts with held-out pairs too."""
    from pretrain_text_encoder import main as pretrain_text_encoder

    pretrain_text_encoder(["--out", str(tmp_path / "te"), "--steps", "400", "--num-prompts", "2000",
                           "--eval-prompts", "64", "--threads", "1"])
    record = json.loads((tmp_path / "te" / "pretraining.json").read_text())
    before, after = record["before"], record["after"]
    assert before["binding_signal"] < 0.1 < 0.5 < after["binding_signal"]
    assert min(after["2obj"].values()) > 0.9 and max(before["2obj"].values()) < 0.6


def test_the_stand_in_trains_on_a_pretrained_text_encoder(tmp_path):
    """--text-encoder DIR: the prompts go through that frozen encoder (the cache lends its latents from a cache made
    with another encoder), and the export ships it."""
    from transformers import UMT5EncoderModel

    from pretrain_base import train_prompts
    from pretrain_generator import encode_prompt_batch
    from pretrain_text_encoder import main as pretrain_text_encoder
    from univigu.toyworld.components import build_tokenizer

    pretrain_text_encoder(["--out", str(tmp_path / "te"), "--text-dim", "16", "--steps", "5", "--num-prompts", "64",
                           "--eval-prompts", "4", "--threads", "1"])
    assert run(tmp_path / "plain").returncode == 0
    plain = next((tmp_path / "plain" / "cache").glob("*.safetensors"))
    (tmp_path / "r" / "cache").mkdir(parents=True)
    (tmp_path / "r" / "cache" / plain.name).symlink_to(plain)
    trained = run(tmp_path / "r", "--text-encoder", str(tmp_path / "te"))
    assert trained.returncode == 0, trained.stderr
    cache = load_file(tmp_path / "r" / "cache" / f"{plain.stem}_text-te.safetensors")
    assert torch.equal(cache["latents"], load_file(plain)["latents"])
    encoder = UMT5EncoderModel.from_pretrained(tmp_path / "te")
    from pretrain_base import parse_args

    prompts = train_prompts(parse_args([*TINY, "--out", "x"]))
    expected = encode_prompt_batch(build_tokenizer(), encoder, prompts, 32)
    assert torch.equal(cache["embeds"], expected[:, : cache["embeds"].shape[1]])
    assert not expected[:, cache["embeds"].shape[1]:].any()

    exported = run(tmp_path / "r", "--text-encoder", str(tmp_path / "te"), "--export", str(tmp_path / "base"),
                   "--export-eval-samples", "0")
    assert exported.returncode == 0, exported.stderr
    shipped = UMT5EncoderModel.from_pretrained(tmp_path / "base" / "text_encoder")
    assert all(torch.equal(a, b) for a, b in zip(shipped.parameters(), encoder.parameters()))
    assert "pretrain_text_encoder.py" in (tmp_path / "base" / "README.md").read_text()

    refused = run(tmp_path / "r")  # the encoder defines the run
    assert refused.returncode != 0 and "text_encoder" in refused.stderr
    wrong = run(tmp_path / "w", "--text-encoder", str(tmp_path / "te"), "--text-dim", "32")
    assert wrong.returncode != 0 and "--text-dim 16" in wrong.stderr
