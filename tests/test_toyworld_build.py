"""The ShapesWorld build's pieces at toy budgets: stage 0 writes a folder stock diffusers loads, the build's training
flags are the scripts' own, the evaluation scores a pipeline."""

import json

import torch

from univigu.toyworld import DEFAULT_VAE

# the build's scripts (training/shapesworld/), on sys.path through conftest.py
from build import _stage0_args, _train_args, parse_args
from pretrain_generator import parse_args as stage0_args
from pretrain_generator import train as train_stage0


#: The earlier build: VAE and the quick, wall-time-budgeted stage 0 built here, on v1 (what most tests below check).
V1_FROM_SCRATCH = ["--from-scratch", "--world", "shapesworld-v1"]


def stub_stand_in(folder, version="shapesworld-v2"):
    """A folder that passes for a stand-in release when the build parses its arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    (folder / "shapesworld.json").write_text(json.dumps({"world": {"version": version}}))
    return folder


def test_stage0_writes_a_folder_wan_pipeline_runs(tmp_path):
    from diffusers import WanPipeline

    out = tmp_path / "stage0"
    summary = train_stage0(stage0_args(["--vae", DEFAULT_VAE, "--out", str(out), "--num-clips", "8", "--max-steps", "3",
                                        "--minutes", "5", "--eval-prompts", "0", "--width", "32", "--heads", "2",
                                        "--layers", "1", "--batch-size", "2"]))
    assert summary["steps"] == 3
    assert json.loads((out / "model_index.json").read_text())["_class_name"] == "WanPipeline"
    pipe = WanPipeline.from_pretrained(str(out))
    pipe.set_progress_bar_config(disable=True)
    video = pipe(prompt="a red circle moving left", height=64, width=64, num_frames=9, num_inference_steps=2,
                 max_sequence_length=32, generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert video.shape == (1, 9, 64, 64, 3)


def test_build_training_flags_are_the_scripts_flags(tmp_path):
    from univigu.training.arguments import parse_args as trainer_args

    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path)])  # the all-CPU recipe (the shipped one adds GPU stage 0 and step flags)
    for stage in ("recall", "refine"):
        flags = _train_args(args, stage, tmp_path / "start", tmp_path / "data", tmp_path / stage)
        parsed = trainer_args(stage, flags)
        assert parsed.trainable == ("all" if stage == "recall" else "text_experts")
        assert parsed.text_experts_learning_rate == 2e-3 and parsed.learning_rate == 5e-4
        assert parsed.max_train_steps == 1200 and parsed.view_ratios == [2.0, 2.0, 1.0]
        assert parsed.max_text_length == (16 if stage == "recall" else 40)
        assert parsed.text_time_power == (1.0 if stage == "recall" else 3.0)
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--refine-trainable", "all", "--refine-learning-rate", "1e-4"])
    parsed = trainer_args("refine", _train_args(args, "refine", tmp_path, tmp_path / "data", tmp_path / "refine"))
    assert parsed.trainable == "all" and parsed.learning_rate == 1e-4
    assert parsed.reinit_modules == []
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--recall-reinit-modules", "blocks.2.attn1", "blocks.3.attn1"])
    recall, refine = (trainer_args(stage, _train_args(args, stage, tmp_path, tmp_path / "data", tmp_path / stage))
                      for stage in ("recall", "refine"))
    assert recall.reinit_modules == ["blocks.2.attn1", "blocks.3.attn1"] and refine.reinit_modules == []
    # the shape-word warm-up takes the re-initialisation; Recall proper then starts from the warm-up's weights
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--recall-warmup-steps", "800", "--recall-reinit-modules", "blocks.3"])
    warmup = trainer_args("recall", _train_args(args, "recall", tmp_path, tmp_path / "d", tmp_path / "w", warmup=True))
    recall = trainer_args("recall", _train_args(args, "recall", tmp_path / "w", tmp_path / "d", tmp_path / "r"))
    assert (warmup.caption_column, warmup.max_train_steps, warmup.reinit_modules) == ("shapes", 800, ["blocks.3"])
    assert (recall.caption_column, recall.max_train_steps, recall.reinit_modules) == ("prompt", 1200, [])
    for flags, powers in (([], [1.0, 3.0]), (["--text-time-power", "2", "--refine-text-time-power", "1"], [2.0, 1.0])):
        args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), *flags])
        assert [trainer_args(stage, _train_args(args, stage, tmp_path, tmp_path / "d", tmp_path / stage))
                .text_time_power for stage in ("recall", "refine")] == powers
    # the ablation without Knowledge Recall: the first stage reads the detailed captions too (at their length);
    # the warm-up keeps its shape words
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--recall-text", "caption", "--recall-warmup-steps", "8"])
    recall = trainer_args("recall", _train_args(args, "recall", tmp_path, tmp_path / "d", tmp_path / "r"))
    warmup = trainer_args("recall", _train_args(args, "recall", tmp_path, tmp_path / "d", tmp_path / "w", warmup=True))
    assert (recall.caption_column, recall.max_text_length) == ("caption", 40)
    assert (warmup.caption_column, warmup.max_text_length) == ("shapes", 16)
    # the shared-FFN ablation: Recall converts the model; Refine starts from Recall's already shared one
    for flags, layouts in (([], [None, None]), (["--text-ffn", "shared"], ["shared", None])):
        args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), *flags])
        assert [trainer_args(stage, _train_args(args, stage, tmp_path, tmp_path / "d", tmp_path / stage)).text_ffn
                for stage in ("recall", "refine")] == layouts


def test_build_stage0_flags_are_the_generator_scripts_flags(tmp_path):
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--stage0-device", "cuda", "--stage0-batch-size", "64",
                       "--stage0-lr", "2e-3", "--stage0-clips", "16000", "--stage0-minutes", "4.5"])
    parsed = stage0_args(_stage0_args(args, tmp_path / "vae", tmp_path / "stage0"))
    assert (parsed.device, parsed.batch_size, parsed.lr, parsed.num_clips, parsed.minutes) == (
        "cuda", 64, 2e-3, 16000, 4.5)
    assert parsed.out == str(tmp_path / "stage0") and parsed.vae == str(tmp_path / "vae")
    assert parsed.threads == 1  # one thread unless the build gives stage 0 the cores
    assert stage0_args(_stage0_args(args, tmp_path / "vae", tmp_path / "stage0", threads=2)).threads == 2


def _tiny_univigu_pipeline(**kwargs):
    """A UniViGU pipeline on tiny random components (built from the tiny Wan transformer)."""
    from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
    from univigu.toyworld.components import build_tiny_components

    c = build_tiny_components()
    transformer = UniViGUTransformer3DModel.from_wan(c["transformer"], vocab_size=len(c["tokenizer"]))
    return UniViGUPipeline(tokenizer=c["tokenizer"], text_encoder=c["text_encoder"], vae=c["vae"],
                           transformer=transformer, scheduler=c["scheduler"],
                           text_scheduler=DiscreteFlowScheduler(vocab_size=len(c["tokenizer"])), **kwargs)


def test_evaluation_scores_a_pipeline():
    from univigu.toyworld.evaluate import evaluate_pipeline

    pipe = _tiny_univigu_pipeline(call_defaults={"height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2,
                                                 "max_text_length": 8, "max_sequence_length": 16})
    pipe.set_progress_bar_config(disable=True)
    results = evaluate_pipeline(pipe, num_samples=2)
    assert set(results) == {f"{t}/{n}obj" for t in ("v2t", "t2v", "t2vt") for n in (1, 2)}
    assert results["v2t/2obj"]["scores"]["num_objects"] == 4
    assert 0.0 <= results["t2v/1obj"]["scores"]["colour_accuracy"] <= 1.0


def test_build_decoder_stage_flags_and_hand_over(tmp_path):
    from build import _decoder_phases, finish_decoder, start_decoder
    from pretrain_vae import parse_args as vae_args

    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path)])
    assert args.decoder_minutes == 0 and start_decoder(args, tmp_path, tmp_path / "vae") == (tmp_path / "vae", None)
    # 60 minutes: the shipped decoder's three runs (docs/toyworld_vae.md), each from the one before.
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--decoder-minutes", "60"])
    phases = [vae_args(flags) for flags in _decoder_phases(args, tmp_path / "vae", tmp_path / "decoder")]
    assert [(p.minutes, p.lr, p.decoder_base_dim, p.edge_weight, p.latent_noise) for p in phases] == [
        (30.0, 3e-3, 16, 0.0, 0.0), (15.0, 1e-3, None, 40.0, 0.0), (15.0, 1e-3, None, 40.0, 0.5)]
    assert [p.init for p in phases] == [str(tmp_path / "vae"), phases[0].out, phases[1].out]
    assert phases[-1].out == str(tmp_path / "decoder")
    assert all(p.train_part == "decoder" and p.train_frames == 9 and p.finetune_minutes == 0 for p in phases)

    # A VAE given with --vae is used as it is: nothing starts.
    given = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path), "--vae", str(DEFAULT_VAE)])
    assert start_decoder(given, tmp_path, DEFAULT_VAE) == (DEFAULT_VAE, None)

    # The finished decoder's VAE replaces the one in the stage-0 folder.
    decoder, stage0 = tmp_path / "decoder", tmp_path / "stage0"
    decoder.mkdir()
    (stage0 / "vae").mkdir(parents=True)
    for name, text in (("config.json", "new"), ("diffusion_pytorch_model.safetensors", "weights")):
        (decoder / name).write_text(text)
        (stage0 / "vae" / name).write_text("old")
    finish_decoder(args, decoder, None, stage0)
    assert (stage0 / "vae" / "config.json").read_text() == "new"


def test_build_launches_the_scripts_beside_it(tmp_path, monkeypatch):
    """The build runs its other stages as the script files next to it (training/shapesworld/, not part of the
    package) and the trainers as the checkout's training/train_<stage>.py."""
    from pathlib import Path

    import build

    commands = []
    monkeypatch.setattr(build, "_run", lambda cmd, log, threads=None: commands.append(cmd))
    args = parse_args([*V1_FROM_SCRATCH, "--out", str(tmp_path)])
    build.stage_vae(args, tmp_path)
    build.stage0(args, tmp_path, tmp_path / "vae")
    here = Path(build.__file__).resolve().parent
    assert [Path(cmd[1]) for cmd in commands] == [here / "pretrain_vae.py", here / "pretrain_generator.py"]
    assert all(Path(cmd[1]).is_file() for cmd in commands)
    for stage in ("recall", "refine"):
        script = Path(build._training_script(stage, 1, tmp_path)[-1])
        assert script == here.parents[1] / "training" / f"train_{stage}.py" and script.is_file()


def test_background_runner_runs_commands_in_order_and_reports_failure(tmp_path):
    import sys

    from build import _Background

    ok = _Background([[sys.executable, "-c", "print('one')"], [sys.executable, "-c", "print('two')"]], tmp_path / "a")
    ok.start()
    ok.join()
    assert ok.returncode == 0 and (tmp_path / "a").read_text().splitlines()[1::2] == ["one", "two"]
    bad = _Background([[sys.executable, "-c", "raise SystemExit(3)"], [sys.executable, "-c", "print('never')"]],
                      tmp_path / "b")
    bad.start()
    bad.join()
    assert bad.returncode == 3 and "never" not in (tmp_path / "b").read_text().replace("print('never')", "")


def test_shape_reading_benchmark_writes_its_caption_columns(tmp_path):
    """`training/shapesworld/toy_shape_reading.py` trains on the build's clips with shape-only / prompt / mixed
    captions."""
    import toy_shape_reading as bench

    data = tmp_path / "build" / "data"
    scenes = [[{"shape": "circle", "colour": "red", "motion": "left"}],
              [{"shape": "square", "colour": "blue", "motion": "still"},
               {"shape": "triangle", "colour": "cyan", "motion": "up"}]]
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        with open(data / split / "metadata.jsonl", "w") as f:
            for i, objects in enumerate(scenes):
                (data / split / f"{i}.mp4").write_bytes(b"video")
                f.write(json.dumps({"file_name": f"{i}.mp4", "prompt": f"prompt {i}",
                                    "scene": json.dumps({"objects": objects})}) + "\n")
    bench.caption_columns(data, tmp_path / "out", seed=0)
    rows = [json.loads(line) for line in open(tmp_path / "out" / "train" / "metadata.jsonl")]
    assert [r["shape_text"] for r in rows] == ["circle", "square triangle"]
    assert all(r["mix"] in (r["shape_text"], r["prompt"]) for r in rows)
    assert [r["colour_shape"] for r in rows] == ["a red circle", "a blue square and a cyan triangle"]
    assert [r["shape_motion"] for r in rows] == ["a circle moving left", "a square staying still and a triangle moving up"]
    assert (tmp_path / "out" / "val" / "1.mp4").resolve() == (data / "val" / "1.mp4").resolve()


def test_vae_and_data_render_side_by_side_and_stop_after_stops(tmp_path, monkeypatch):
    """The VAE stage (one core, fixed time) and the data stage (needs no VAE) overlap; `--stop-after` ends the build
    after the named stage, with the timings of what ran written."""
    import threading

    import build

    both_running = threading.Barrier(2, timeout=10)  # each stage waits for the other: only overlap gets through
    ran = []

    def fake_stage(name):
        def stage(*args):
            ran.append(name)
            if name in ("vae", "data"):
                both_running.wait()
            return tmp_path / name
        return stage

    for name in ("stage_vae", "stage_data", "stage0", "stage_convert", "stage_train", "stage_evaluate"):
        monkeypatch.setattr(build, name, fake_stage(name.removeprefix("stage_")))
    build.main([*V1_FROM_SCRATCH, "--out", str(tmp_path / "b"), "--stop-after", "data"])
    assert sorted(ran) == ["data", "vae"]
    assert set(json.loads((tmp_path / "b" / "timings.json").read_text())) == {"vae", "data", "total"}
    ran.clear()
    build.main([*V1_FROM_SCRATCH, "--out", str(tmp_path / "b"), "--stop-after", "convert"])
    assert sorted(ran) == ["convert", "data", "stage0", "vae"]


def test_evaluate_stages_skips_missing_stages_and_asks_stage0_only_for_t2v(tmp_path):
    """`toy_eval --build --tasks v2t` scores Recall / Refine only: stage 0 is a generator, not asked to caption."""
    from package import evaluate_stages

    _tiny_univigu_pipeline().save_pretrained(tmp_path / "model")
    folder = tmp_path / "model"
    results = evaluate_stages(folder, None, folder, num_samples=1, tasks=("v2t",))
    assert set(results) == {"refine", "eval_seconds"} and set(results["eval_seconds"]) == {"refine"}
    assert set(results["refine"]) == {"v2t/1obj", "v2t/2obj"}
    assert 0.0 <= results["refine"]["v2t/1obj"]["colour_accuracy"] <= 1.0


def test_finalize_stores_float16_weights_and_scores_the_stored_folder(tmp_path, monkeypatch):
    """`--save-dtype float16`: the shipped transformer is stored in half precision, loads as float32, and the Refine
    row of the evaluation is computed from that folder (not from the float32 Refine output)."""
    import package
    from safetensors.torch import load_file

    from univigu import UniViGUPipeline

    _tiny_univigu_pipeline().save_pretrained(tmp_path / "refine")
    scored = []
    monkeypatch.setattr(package, "evaluate_stages", lambda s0, recall, refine, **kw: scored.append(refine) or {})
    monkeypatch.setattr(package, "write_model_card", lambda *a, **kw: None)
    package.finalize(tmp_path, None, None, tmp_path / "refine", tmp_path / "final", save_dtype="float16",
                     version="shapesworld-v2")
    assert scored == [tmp_path / "final"]
    stored = load_file(next((tmp_path / "final" / "transformer").glob("*.safetensors")))
    assert {v.dtype for v in stored.values()} == {torch.float16}
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "final").transformer
    original = UniViGUPipeline.from_pretrained(tmp_path / "refine").transformer
    for (name, a), b in zip(loaded.state_dict().items(), original.state_dict().values()):
        assert a.dtype == torch.float32 and torch.equal(a, b.half().float()), name


def test_convert_adds_the_mask_token_and_converts_again_when_the_text_source_changes(tmp_path, monkeypatch):
    """`--text-source mask` converts with `univigu convert wan --text-source mask`; a convert folder made with the
    other source is not reused (its vocabulary and text scheduler differ), one made with the same source is."""
    import build

    commands = []
    monkeypatch.setattr(build, "_run", lambda cmd, log, threads=None: commands.append(cmd))
    out = tmp_path / "b"
    (out / "convert").mkdir(parents=True)
    build._mark_done(out / "convert", {})  # a folder from before the option: the uniform source
    build.stage_convert(parse_args([*V1_FROM_SCRATCH, "--out", str(out)]), out, tmp_path / "stage0")
    assert commands == []
    build.stage_convert(parse_args([*V1_FROM_SCRATCH, "--out", str(out), "--text-source", "mask"]), out, tmp_path / "stage0")
    assert len(commands) == 1 and commands[0][-2:] == ["--text-source", "mask"]
    assert json.loads((out / "convert" / build.DONE).read_text()) == {"text_source": "mask"}
    build.stage_convert(parse_args([*V1_FROM_SCRATCH, "--out", str(out), "--text-source", "mask"]), out, tmp_path / "stage0")
    assert len(commands) == 1


def test_evaluate_is_skipped_until_a_model_it_scores_is_retrained(tmp_path, monkeypatch):
    """The evaluate stage keeps its output like every other stage: it re-runs when named in `--stages`, or when
    stage 0, Recall or Refine finished after it last ran."""
    import os

    import build
    import package

    scored = []

    def fake_finalize(out, stage0_dir, recall, refine, folder, **kwargs):
        scored.append(kwargs["build"]["build_line"])
        folder.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(package, "finalize", fake_finalize)
    out = tmp_path / "b"
    models = {name: out / name for name in ("stage0", "recall", "refine")}
    for folder in models.values():
        folder.mkdir(parents=True)
        build._mark_done(folder, {})
    (models["stage0"] / "stage0_summary.json").write_text(json.dumps({"steps": 1, "train_seconds": 60, "params": 1}))

    def evaluate(*flags):
        build.stage_evaluate(parse_args([*V1_FROM_SCRATCH, "--out", str(out), *flags]), out, *models.values())
        return len(scored)

    assert evaluate() == 1
    assert evaluate() == 1  # nothing changed: kept
    assert evaluate("--stages", "evaluate") == 2
    earlier = (models["refine"] / build.DONE).stat().st_mtime - 10
    os.utime(out / "final" / build.DONE, (earlier, earlier))  # as if Refine re-trained after the last evaluation
    assert evaluate() == 3
    assert evaluate() == 3


def test_a_stage_is_scored_at_the_caption_length_it_trained_at(tmp_path):
    """Recall trains on 16-token prompts and Refine on 40-token captions, but a Recall run on captions (the ablation
    without Knowledge Recall) trains at 40: the evaluation takes the length the trainer stored with the folder."""
    from package import _trained_text_length

    assert _trained_text_length(tmp_path, 16) == 16  # no model_index.json (e.g. a LoRA folder): the stage's usual one
    (tmp_path / "model_index.json").write_text(json.dumps({"call_defaults": {"v2t": {"max_text_length": 40}}}))
    assert _trained_text_length(tmp_path, 16) == 40
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "UniViGUPipeline"}))
    assert _trained_text_length(tmp_path, 16) == 16


def test_the_recipe_starts_from_a_stand_in_and_renders_its_world(tmp_path, monkeypatch):
    """By default the build converts the stand-in (no VAE or stage-0 stage) and renders the world it records."""
    import pytest

    import build

    base = stub_stand_in(tmp_path / "base")
    args = parse_args(["--out", str(tmp_path / "b"), "--base", str(base)])
    assert args.world == "shapesworld-v2" and args.base == base.resolve()
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path / "b"), "--base", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path / "b"), "--base", str(base), "--from-scratch"])

    ran = []
    for name in ("stage_vae", "stage0", "stage_convert", "stage_train", "stage_evaluate"):
        monkeypatch.setattr(build, name, lambda *a, name=name: ran.append((name, a[2:])) or tmp_path / name)
    build.main(["--out", str(tmp_path / "b"), "--base", str(base), "--num-train-clips", "3", "--num-val-clips", "2"])
    assert [name for name, _ in ran] == ["stage_convert", "stage_train", "stage_train", "stage_evaluate"]
    assert ran[0][1] == (base.resolve(),)  # convert reads the stand-in itself
    from univigu.toyworld import read_metadata
    from univigu.toyworld.world import Scene

    rows = read_metadata(tmp_path / "b" / "data" / "train")
    assert len(rows) == 3 and all(Scene.from_json(r["scene"]).version == "shapesworld-v2" for r in rows)
    assert json.loads((tmp_path / "b" / "data" / "train" / "shapesworld.json").read_text())["version"] == \
        "shapesworld-v2"


def test_from_scratch_v2_fine_tunes_the_vae_and_trains_the_stand_in_resumably(tmp_path, monkeypatch):
    import build
    from pretrain_base import parse_args as base_args
    from pretrain_vae import parse_args as vae_args

    commands = []

    def run(cmd, log, threads=None):
        commands.append(cmd)
        if "--export" in cmd:  # what the export writes
            (tmp_path / "stage0").mkdir()
        if cmd[1].endswith("pretrain_text_encoder.py"):
            (tmp_path / "text_encoder").mkdir()

    monkeypatch.setattr(build, "_run", run)
    args = parse_args(["--out", str(tmp_path), "--from-scratch", "--stand-in-steps", "100"])
    assert args.world == "shapesworld-v2" and args.base is None
    vae = build.stage_vae_world(args, tmp_path, tmp_path / "vae")
    assert vae == tmp_path / "vae_world"
    fine_tune = vae_args(commands[0][2:])
    assert (fine_tune.world, fine_tune.init, fine_tune.out) == ("shapesworld-v2", str(tmp_path / "vae"), str(vae))
    build.stage0(args, tmp_path, vae)
    from pretrain_text_encoder import parse_args as text_args

    text = text_args(commands[1][2:])
    assert (text.out, text.world) == (str(tmp_path / "text_encoder"), "shapesworld-v2")
    train, export = (base_args(cmd[2:]) for cmd in commands[2:])
    assert (train.max_steps, train.world, train.vae, train.export) == (100, "shapesworld-v2", str(vae), None)
    assert train.text_encoder == export.text_encoder == str(tmp_path / "text_encoder")
    assert (train.width, train.heads) == (256, 8)
    assert train.out == export.out == str(tmp_path / "stand_in_run") and export.export == str(tmp_path / "stage0")


def test_an_interrupted_training_stage_continues_from_its_checkpoint(tmp_path, monkeypatch):
    """Recall and Refine checkpoint every --checkpoint-every steps; run again, the build resumes an interrupted stage
    (`--resume_from_checkpoint latest`, its folder kept) unless the stage is named in --stages, which starts afresh."""
    import build
    from univigu.training.arguments import parse_args as trainer_args

    commands = []

    def run(cmd, log, threads=None, append=False):
        commands.append((cmd, append))
        folder = tmp_path / "recall"
        (folder / "checkpoint-200").mkdir(parents=True, exist_ok=True)
        if len(commands) == 1:
            raise RuntimeError("interrupted")  # the first run stops after its first checkpoint

    monkeypatch.setattr(build, "_run", run)
    args = parse_args(["--out", str(tmp_path), "--base", str(stub_stand_in(tmp_path / "base"))])
    flags = trainer_args("recall", _train_args(args, "recall", tmp_path, tmp_path / "d", tmp_path / "recall"))
    assert (flags.checkpointing_steps, flags.checkpoints_total_limit) == (200, 2)
    try:
        build.stage_train(args, tmp_path, "recall", tmp_path / "start", tmp_path / "data")
    except RuntimeError:
        pass
    (tmp_path / "recall" / "loss.png").write_text("kept")
    build.stage_train(args, tmp_path, "recall", tmp_path / "start", tmp_path / "data")
    cmd, append = commands[1]
    assert cmd[-2:] == ["--resume_from_checkpoint", "latest"] and append  # the log goes on too
    assert (tmp_path / "recall" / "loss.png").exists() and build._done(tmp_path / "recall")

    (tmp_path / "recall" / build.DONE).unlink()
    args = parse_args(["--out", str(tmp_path), "--base", str(tmp_path / "base"), "--stages", "recall"])
    build.stage_train(args, tmp_path, "recall", tmp_path / "start", tmp_path / "data")
    cmd, append = commands[2]
    assert "--resume_from_checkpoint" not in cmd and not append
    assert not (tmp_path / "recall" / "loss.png").exists()  # named in --stages: afresh


def test_the_model_card_says_which_text_encoder_the_stand_in_had(tmp_path):
    import build

    for text_encoder, words in ((None, "randomly initialised"), ("text_encoder", "pretrain_text_encoder.py")):
        folder = stub_stand_in(tmp_path / str(text_encoder))
        record = {"world": {"version": "shapesworld-v2"},
                  "stand_in": {"steps": 10, "num_clips": 16, "batch_size": 2, "lr": 1e-3, "params": 1e6,
                               **({"text_encoder": text_encoder} if text_encoder else {})}}
        (folder / "shapesworld.json").write_text(json.dumps(record))
        assert words in build._stand_in_info(folder)["stage0_text_encoder"]
