# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Build the bundled ShapesWorld Uni-ViGU checkpoint, seeded, on a CPU:

    python training/shapesworld/build.py --out DIR            # the recipe from the bundled stand-in (DEFAULT_BASE_MODEL)
    python training/shapesworld/build.py --out DIR --stages recall refine evaluate   # re-run some stages
    python training/shapesworld/build.py --out DIR --from-scratch   # the stand-in too (hours; docs/toyworld_model.md)

As Wan2.1 is to the real recipe, the stand-in generator is a released base model the recipe starts from: by default
the build converts `univigu.toyworld.DEFAULT_BASE_MODEL` (or `--base DIR`, any stand-in folder with its
`shapesworld.json`), and the world it renders and scores is the one that folder records.

Stages (each writes `DIR/<stage>/` and is skipped when its output is complete, unless named in `--stages`; an
interrupted `recall` or `refine` continues from its newest checkpoint, every `--checkpoint-every` steps, when the
command is run again without naming it):

1. `vae`      only with `--from-scratch`: the ShapesWorld VAE (`pretrain_vae.py` beside this script, ~16 min, on v1
              clips), then, for v2, 15 more minutes on v2 clips; `--vae PATH` reuses one instead.
   `decoder`  with `--decoder-minutes 60` (v1 builds): the sharper decoder the v1 VAE ships.
2. `data`     rendered datasets of the world: train (prompt + detailed caption per clip) and validation.
3. `stage0`   only with `--from-scratch`: the stand-in for Wan2.1-T2V, a folder stock `diffusers.WanPipeline`
              loads. v2: its umT5 pretrained on the world's prompts (`pretrain_text_encoder.py`, a minute), then
              `pretrain_base.py` (resumable, `--stand-in-steps` steps) and its `--export`; v1: the wall-time-budgeted
              `pretrain_generator.py`.
4. `convert`  `univigu convert wan --wan <stand-in> --out DIR/convert`.
5. `recall`   Knowledge Recall: `accelerate launch training/train_recall.py ...` on the train set (text = prompt);
              with `--recall-warmup-steps N`, after N warm-up steps whose text is the clips' shape words.
6. `refine`   Capability Refinement: `accelerate launch training/train_refine.py ...` (text = detailed caption).
7. `evaluate` scoring of the stand-in, recall and refine on fresh seeded test sets of the world; the tuned call
              defaults and a model card are written into `DIR/final/` (the shipped folder). Kept like the other
              stages, and re-run when the stand-in, Recall or Refine has been trained again since.

See docs/toyworld_model.md for the recipe and the measurements behind it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from univigu.toyworld import DEFAULT_BASE_MODEL, DEFAULT_VAE
from univigu.toyworld.world import WORLDS, world_of_folder


STAGES = ("vae", "decoder", "data", "stage0", "convert", "recall", "refine", "evaluate")
BUNDLED_VAE = Path(DEFAULT_VAE)
#: This folder (the other stages' scripts) and the checkout it belongs to.
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DONE = "BUILD_STAGE_DONE.json"

def _done(folder: Path) -> bool:
    return (folder / DONE).exists()


def _mark_done(folder: Path, info: dict) -> None:
    (folder / DONE).write_text(json.dumps(info, indent=2) + "\n")


def _run(cmd: list[str], log: Path, threads: int | None = None, append: bool = False) -> None:
    """Run a stage's command with its output shown and kept in `log`; fail loudly with the log's tail."""
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with open(log, "a" if append else "w") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        for line in proc.stdout:
            f.write(line)
            if "Warning" not in line:
                sys.stdout.write(line)
        proc.wait()
    if proc.returncode:
        raise SystemExit(f"Stage command failed ({proc.returncode}): {' '.join(cmd)}\nSee {log}.")


#: accelerate config of N CPU processes on this machine (DDP over gloo); see configs/accelerate_cpu_2proc.yaml.
ACCELERATE_CPU_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_machines: 1
num_processes: {num_processes}
machine_rank: 0
main_process_port: 0
gpu_ids: all
use_cpu: true
mixed_precision: "no"
rdzv_backend: static
same_network: true
"""


def _training_script(stage: str, num_processes: int, out: Path) -> list[str]:
    """`accelerate launch training/train_<stage>.py` (the checkout's scripts, two-line wrappers of
    `univigu.training.trainer`). On a CPU, one process per core with one thread each (data parallel over gloo) is ~2x
    the throughput of one process with two threads."""
    script = REPO_ROOT / "training" / f"train_{stage}.py"
    if num_processes > 1:
        config = out / "accelerate_cpu.yaml"
        config.write_text(ACCELERATE_CPU_CONFIG.format(num_processes=num_processes))
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    else:
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu"]
    return launch + [str(script)]


def stage_vae(args, out: Path) -> Path:
    folder = out / "vae"
    if args.vae:
        return Path(args.vae)
    if _done(folder) and "vae" not in args.stages:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    # both cores (the data stage renders beside it for its first ~3 min): 12 + 3 minutes of two threads trained
    # 825 + 159 steps on a 2-core AMD EPYC (the bundled VAE: 1,008 + 173 in 14 + 4 minutes of one faster thread)
    _run([sys.executable, str(HERE / "pretrain_vae.py"), "--out", str(folder), "--seed", str(args.seed),
          "--minutes", "12", "--finetune-minutes", "3", "--threads", str(args.num_processes)], folder / "log.txt")
    _mark_done(folder, {"seed": args.seed})
    return folder


def stage_vae_world(args, out: Path, vae: Path) -> Path:
    """For a world other than v1: the v1 VAE fine-tuned on its clips (how the bundled v2 stand-in's VAE was made:
    9 minutes on 5-frame clips at lr 1e-3, then 6 on 9-frame clips at 5e-4, object outlines weighted)."""
    if args.world == "shapesworld-v1" or args.vae:
        return vae
    folder = out / "vae_world"
    if _done(folder) and "vae" not in args.stages:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, str(HERE / "pretrain_vae.py"), "--world", args.world, "--init", str(vae),
          "--out", str(folder), "--seed", str(args.seed), "--threads", str(args.num_processes), "--minutes", "9",
          "--lr", "1e-3", "--finetune-minutes", "6", "--finetune-lr", "5e-4", "--edge-weight", "10",
          "--eval-every-s", "120", "--val-samples", "32"], folder / "log.txt")
    _mark_done(folder, {"seed": args.seed, "world": args.world})
    return folder


def _decoder_phases(args, vae: Path, folder: Path) -> list[list[str]]:
    """`pretrain_vae`'s flags for the decoder stage: the shipped decoder's three phases (docs/toyworld_vae.md), scaled
    to `--decoder-minutes` (1/2, 1/4, 1/4): a fresh decoder `--decoder-base-dim` wide at lr 3e-3; then the
    edge-weighted loss at lr 1e-3; then noisy latents as well. 60 minutes gives exactly the shipped runs."""
    minutes = args.decoder_minutes
    common = ["--train-part", "decoder", "--finetune-minutes", "0", "--train-frames", "9", "--eval-every-s", "600",
              "--seed", str(args.seed)]
    first, second = folder / "phase1", folder / "phase2"
    edge = ["--edge-weight", str(args.decoder_edge_weight)]
    return [
        ["--init", str(vae), "--decoder-base-dim", str(args.decoder_base_dim), "--lr", "3e-3",
         "--minutes", str(minutes / 2), "--out", str(first), *common],
        ["--init", str(first), *edge, "--lr", "1e-3", "--minutes", str(minutes / 4), "--out", str(second), *common],
        ["--init", str(second), *edge, "--latent-noise", str(args.decoder_latent_noise), "--lr", "1e-3",
         "--minutes", str(minutes / 4), "--out", str(folder), *common],
    ]


class _Background(threading.Thread):
    """Commands run one after another in a background thread, output to one log; `returncode` once done."""

    def __init__(self, commands: list[list[str]], log: Path):
        super().__init__(daemon=True)
        self.commands, self.log, self.returncode, self.proc, self.stopped = commands, log, None, None, False

    def run(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
        with open(self.log, "w") as log:
            for cmd in self.commands:
                if self.stopped:
                    break
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                if self.proc.wait():
                    self.returncode = self.proc.returncode
                    return
        self.returncode = 0

    def stop(self) -> None:
        self.stopped = True
        if self.proc is not None:
            self.proc.terminate()


def start_decoder(args, out: Path, vae: Path) -> tuple[Path, _Background | None]:
    """Start the decoder stage in the background (one thread); returns its folder and runner (None: nothing to run).

    Only the decoder trains, so the latents stage 0 learns from are the same before and after; it runs beside the
    data and stage-0 stages (one thread each). Off by default (`--decoder-minutes 0`): its 60 minutes would outlast
    the CPU stage 0 by ~30. A VAE given with `--vae` is used as it is (the bundled one already has the decoder)."""
    folder = out / "decoder"
    if args.vae or args.decoder_minutes <= 0:
        return vae, None
    if _done(folder) and "decoder" not in args.stages:
        return folder, None
    folder.mkdir(parents=True, exist_ok=True)
    commands = [[sys.executable, str(HERE / "pretrain_vae.py"), *flags]
                for flags in _decoder_phases(args, vae, folder)]
    print(f"decoder stage: {len(commands)} pretrain_vae runs in the background, log {out / 'decoder.log'}", flush=True)
    runner = _Background(commands, out / "decoder.log")
    runner.start()
    return folder, runner


def finish_decoder(args, folder: Path, runner: _Background | None, stage0_dir: Path) -> None:
    """Wait for the decoder stage and put its VAE into the stage-0 folder (whose latents it encodes unchanged)."""
    if runner is not None:
        runner.join()
        if runner.returncode:
            raise SystemExit(f"The decoder stage failed ({runner.returncode}); see {folder.parent / 'decoder.log'}.")
        _mark_done(folder, {"minutes": args.decoder_minutes, "decoder_base_dim": args.decoder_base_dim,
                            "edge_weight": args.decoder_edge_weight, "latent_noise": args.decoder_latent_noise})
    target = stage0_dir / "vae"
    if folder.resolve() == target.resolve() or not (folder / "config.json").exists():
        return
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copyfile(folder / name, target / name)


def stage_data(args, out: Path) -> Path:
    from univigu.toyworld.dataset import make_dataset

    folder = out / "data"
    if _done(folder) and "data" not in args.stages:
        made_for = json.loads((folder / DONE).read_text()).get("world", "shapesworld-v1")
        if made_for == args.world:
            return folder
        print(f"data: {folder} holds {made_for} clips, the build's world is {args.world}: rendering again", flush=True)
    t0 = time.time()
    make_dataset(folder / "train", args.num_train_clips, split="train", seed=args.seed, version=args.world)
    make_dataset(folder / "val", args.num_val_clips, split="val", seed=args.seed, version=args.world)
    _mark_done(folder, {"seconds": time.time() - t0, "train": args.num_train_clips, "val": args.num_val_clips,
                        "world": args.world})
    return folder


def _stage0_args(args, vae: Path, folder: Path, threads: int = 1) -> list[str]:
    """`pretrain_generator`'s flags for this build."""
    return ["--vae", str(vae), "--out", str(folder), "--seed", str(args.seed), "--minutes", str(args.stage0_minutes),
            "--threads", str(threads),
            "--num-clips", str(args.stage0_clips), "--batch-size", str(args.stage0_batch_size),
            "--lr", str(args.stage0_lr), "--device", args.stage0_device,
            "--eval-every-minutes", str(args.stage0_probe_minutes), "--eval-prompts", "24"]


def _stand_in_args(args, vae: Path, run: Path, text_encoder: Path) -> list[str]:
    """`pretrain_base`'s flags for this build (its other settings are the stand-in's defaults)."""
    return ["--vae", str(vae), "--out", str(run), "--world", args.world, "--seed", str(args.seed),
            "--max-steps", str(args.stand_in_steps), "--threads", str(args.num_processes),
            "--width", str(args.stand_in_width), "--heads", str(args.stand_in_heads), "--text-encoder", str(text_encoder)]


def stage_text_encoder(args, out: Path) -> Path:
    """The stand-in's umT5, pretrained on the world's prompts (`pretrain_text_encoder.py`, about a minute)."""
    folder = out / "text_encoder"
    if _done(folder) and "stage0" not in args.stages:
        return folder
    _run([sys.executable, str(HERE / "pretrain_text_encoder.py"), "--out", str(folder), "--world", args.world,
          "--seed", str(args.seed), "--threads", str(args.num_processes)], out / "text_encoder.log")
    _mark_done(folder, {"world": args.world})
    return folder


def stage0(args, out: Path, vae: Path, beside_decoder: bool = False) -> Path:
    """The stand-in. v2 and later: `pretrain_base.py` (resumable: an interrupted build continues it from its newest
    checkpoint in `DIR/stand_in_run/`), then its release folder. v1: `pretrain_generator.py` on every core (two
    threads train ~1.6x the steps of one), or on one thread when the decoder stage has the other core."""
    folder = out / "stage0"
    if _done(folder) and "stage0" not in args.stages:
        return folder
    if args.world != "shapesworld-v1":
        run = out / "stand_in_run"
        text_encoder = stage_text_encoder(args, out)
        _run([sys.executable, str(HERE / "pretrain_base.py"), *_stand_in_args(args, vae, run, text_encoder)],
             out / "stage0.log")
        if folder.exists():
            shutil.rmtree(folder)  # the stage's own output, written again from the run's newest checkpoint
        _run([sys.executable, str(HERE / "pretrain_base.py"), *_stand_in_args(args, vae, run, text_encoder), "--export",
              str(folder), "--export-eval-samples", str(args.eval_samples), "--save-dtype", args.save_dtype],
             out / "stage0_export.log")
        _mark_done(folder, {"steps": args.stand_in_steps, "world": args.world})
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    threads = 1 if beside_decoder else args.num_processes
    _run([sys.executable, str(HERE / "pretrain_generator.py"), *_stage0_args(args, vae, folder, threads)],
         folder.parent / "stage0.log")
    _mark_done(folder, {"minutes": args.stage0_minutes, "device": args.stage0_device})
    return folder


def stage_convert(args, out: Path, stage0_dir: Path) -> Path:
    folder = out / "convert"
    if _done(folder) and "convert" not in args.stages:
        made_with = json.loads((folder / DONE).read_text()).get("text_source", "uniform")
        if made_with == args.text_source:
            return folder
        print(f"convert: {folder} has the {made_with} text source, --text-source is {args.text_source}: "
              "converting again", flush=True)
    _run([sys.executable, "-m", "univigu.cli", "convert", "wan", "--wan", str(stage0_dir), "--out", str(folder),
          "--seed", str(args.seed), "--overwrite", "--text-source", args.text_source], out / "convert.log")
    _mark_done(folder, {"text_source": args.text_source})
    return folder


def _stage_value(args, stage: str, name: str):
    """A training setting of `stage`: `--refine-<name>` when given for Refine, else the setting both stages share."""
    value = getattr(args, f"refine_{name}") if stage == "refine" else None
    return getattr(args, name) if value is None else value


def _train_args(args, stage: str, start: Path, data: Path, out_dir: Path, warmup: bool = False) -> list[str]:
    """The trainer's flags for `stage`; `warmup`: Recall's shape-word warm-up run (it re-initialises instead)."""
    steps = args.recall_warmup_steps if warmup else args.recall_steps if stage == "recall" else args.refine_steps
    recall_on_captions = stage == "recall" and not warmup and args.recall_text == "caption"
    text_length = 40 if stage == "refine" or recall_on_captions else 16
    reinit = stage == "recall" and args.recall_reinit_modules and (warmup or not args.recall_warmup_steps)
    return [
        "--pretrained_model_name_or_path", str(start),
        *(["--caption_column", "shapes"] if warmup else ["--caption_column", "caption"] if recall_on_captions else []),
        "--train_data_dir", str(data / "train"),
        "--validation_data_dir", str(data / "val"),
        "--output_dir", str(out_dir),
        "--latents_cache_dir", str(args.out / "latents_cache"),
        "--cache_batch_size", "32",
        "--num_frames", "9", "--height", "64", "--width", "64",
        "--max_text_length", str(text_length), "--max_sequence_length", "32",
        "--train_batch_size", str(args.batch_size),
        "--max_train_steps", str(steps),
        "--learning_rate", str(_stage_value(args, stage, "learning_rate")),
        *(["--text_experts_learning_rate", str(args.text_experts_learning_rate)]
          if args.text_experts_learning_rate else []),
        "--lr_scheduler", "cosine", "--lr_warmup_steps", str(max(1, steps // 20)),
        "--trainable", _stage_value(args, stage, "trainable"),
        *(["--reinit_modules", *args.recall_reinit_modules] if reinit else []),
        # Refine starts from Recall's output, which already has Recall's FFN layout
        *(["--text_ffn", args.text_ffn] if stage == "recall" and args.text_ffn != "expert" else []),
        "--view_ratios", *[str(r) for r in args.view_ratios],
        "--text_time_power", str(_stage_value(args, stage, "text_time_power")),
        "--adam_weight_decay", "0.0",
        "--seed", str(args.seed),
        "--checkpointing_steps", str(max(min(args.checkpoint_every or steps, steps), 1)),
        "--checkpoints_total_limit", "2",
        "--validation_steps", str(max(steps // 4, 1)),
        "--num_validation_videos", "16",
        "--validation_num_inference_steps", "16",
        "--report_to", "none",
        "--mixed_precision", "no",
    ]


def stage_train(args, out: Path, stage: str, start: Path, data: Path) -> Path:
    folder = out / stage
    if _done(folder) and stage not in args.stages:
        return folder
    # an interrupted stage continues from its newest checkpoint (the trainers resume bit for bit); one named in
    # --stages starts afresh: a stage folder is ours
    warms_up = stage == "recall" and args.recall_warmup_steps  # the warm-up run starts afresh, and Recall after it
    resume = stage not in args.stages and not warms_up and any(folder.glob("checkpoint-*"))
    if folder.exists() and not resume:
        shutil.rmtree(folder)
    if stage == "recall" and args.recall_warmup_steps:
        # docs/research_log.md, session 9: captions of shape words first teach the text stream to read shape off the
        # video; Recall on the prompts then keeps that reading, which it never learns from the prompts alone
        warmup = out / "recall_warmup"
        if warmup.exists():
            shutil.rmtree(warmup)
        _run(_training_script(stage, args.num_processes, out)
             + _train_args(args, stage, start, data, warmup, warmup=True), out / "recall_warmup.log", threads=1)
        _mark_done(warmup, {"steps": args.recall_warmup_steps})
        start = warmup
    if resume:
        print(f"{stage}: continuing the interrupted run in {folder}", flush=True)
    _run(_training_script(stage, args.num_processes, out) + _train_args(args, stage, start, data, folder)
         + (["--resume_from_checkpoint", "latest"] if resume else []), out / f"{stage}.log", threads=1,
         append=resume)
    _mark_done(folder, {"steps": args.recall_steps if stage == "recall" else args.refine_steps})
    return folder


def _stand_in_info(stage0_dir: Path) -> dict:
    """How the stand-in was trained, for the model card: from its release record (`shapesworld.json`) or, for a v1
    stage 0, its `stage0_summary.json` (what it actually ran with, which may differ from this call's flags)."""
    record_path = stage0_dir / "shapesworld.json"
    if record_path.is_file():
        s0 = json.loads(record_path.read_text()).get("stand_in", {})
        encoder = ("pretrained on the world's prompts by `pretrain_text_encoder.py`, then frozen" if s0.get("text_encoder")
                   else "randomly initialised, frozen")
        return {"stage0_clips": s0.get("num_clips", "?"), "stage0_text_encoder": encoder,
                "stage0_line": f"{s0.get('steps', '?')} steps of batch {s0.get('batch_size', '?')} at lr "
                               f"{s0.get('lr', '?')} (resumable, `training/shapesworld/pretrain_base.py`), "
                               f"{s0.get('params', 0) / 1e6:.2f} M parameters"}
    summary = json.loads((stage0_dir / "stage0_summary.json").read_text())
    s0_args = summary.get("args", {})
    return {"stage0_clips": s0_args.get("num_clips", "?"),
            "stage0_line": f"{summary['steps']} steps of batch {s0_args.get('batch_size', '?')} at lr "
                           f"{s0_args.get('lr', '?')} in {summary['train_seconds'] / 60:.1f} min on "
                           f"{s0_args.get('device', 'cpu')}, {summary['params'] / 1e6:.2f} M parameters"}


def stage_evaluate(args, out: Path, stage0_dir: Path, recall: Path, refine: Path) -> Path:
    from package import finalize

    folder = out / "final"
    scored = [stage0_dir, recall, refine]
    if _done(folder) and "evaluate" not in args.stages and all(
        (m / DONE).stat().st_mtime <= (folder / DONE).stat().st_mtime for m in scored if _done(m)
    ):
        return folder  # already scored, and no model it scores has been retrained since
    info = {
        "build_line": f"seed {args.seed}",
        **_stand_in_info(stage0_dir),
        "train_line": f"--trainable {args.trainable} (Refine: {_stage_value(args, 'refine', 'trainable')}), "
                      f"--view_ratios {' '.join(map(str, args.view_ratios))}, lr {args.learning_rate} "
                      f"(Refine: {_stage_value(args, 'refine', 'learning_rate')}; text experts "
                      f"{args.text_experts_learning_rate or args.learning_rate}), "
                      f"{args.num_processes} processes x batch {args.batch_size}, {args.recall_steps} Recall + "
                      f"{args.refine_steps} Refine steps"
                      + (f", after {args.recall_warmup_steps} warm-up steps on shape-word captions"
                         if args.recall_warmup_steps else "")
                      + (f", re-initialised before {'the warm-up' if args.recall_warmup_steps else 'Recall'}: "
                         f"{' '.join(args.recall_reinit_modules)}"
                         if args.recall_reinit_modules else "")
                      + (f", Recall text times u ** {args.text_time_power}" if args.text_time_power != 1.0 else "")
                      + (f", Refine text times u ** {refine_power}"
                         if (refine_power := _stage_value(args, "refine", "text_time_power")) != 1.0 else ""),
    }
    finalize(out, stage0_dir, recall, refine, folder, num_samples=args.eval_samples, seed=args.seed, build=info,
             version=args.world, save_dtype=args.save_dtype)
    _mark_done(folder, {"num_samples": args.eval_samples})
    if args.install:
        install_checkpoint(folder)
    return folder


def install_checkpoint(folder: Path) -> Path:
    """Copy a finished build into the package as the bundled checkpoint of its world, with its checksums."""
    from package import install_folder
    from univigu.toyworld import DEFAULT_CHECKPOINT

    world = world_of_folder(str(folder)).version
    # the done-marker is the build's, not the model's
    return install_folder(folder, Path(DEFAULT_CHECKPOINT).parent / world, ignore=(DONE,), world=world)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python training/shapesworld/build.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="build folder (each stage's output is kept)")
    p.add_argument("--stages", nargs="*", default=[], choices=STAGES,
                   help="stages to re-run even when their output exists (the rest run only if missing)")
    p.add_argument("--base", default=None,
                   help="the stand-in WanPipeline folder the recipe starts from (default: the bundled "
                        "univigu.toyworld.DEFAULT_BASE_MODEL); its shapesworld.json names the world")
    p.add_argument("--from-scratch", action="store_true",
                   help="build the VAE and the stand-in too instead of starting from --base (hours for v2)")
    p.add_argument("--world", default="shapesworld-v2", choices=tuple(WORLDS),
                   help="with --from-scratch: the world to build (v1: the earlier, quick and weaker stand-in)")
    p.add_argument("--stand-in-steps", type=int, default=10000,
                   help="with --from-scratch, v2: the stand-in's training steps (pretrain_base --max-steps)")
    p.add_argument("--stand-in-width", type=int, default=256, help="with --from-scratch, v2: the stand-in's width")
    p.add_argument("--stand-in-heads", type=int, default=8, help="with --from-scratch, v2: its attention heads")
    p.add_argument("--vae", default=None,
                   help=f"reuse this VAE folder instead of training one (e.g. the bundled {BUNDLED_VAE.name})")
    p.add_argument("--seed", type=int, default=0, help="seeds the data, every model's initialisation and training")
    p.add_argument("--decoder-minutes", type=float, default=0.0,
                   help="decoder stage's budget beside stage 0 (0: keep the VAE stage's decoder; 60: the shipped one)")
    p.add_argument("--decoder-base-dim", type=int, default=16, help="width of the decoder stage's fresh decoder")
    p.add_argument("--decoder-edge-weight", type=float, default=40.0, help="its extra loss weight on object outlines")
    p.add_argument("--decoder-latent-noise", type=float, default=0.5,
                   help="its latent noise (per-channel standard deviations), for generated latents' sake")
    p.add_argument("--num-train-clips", type=int, default=4000, help="clips rendered for Recall and Refine")
    p.add_argument("--num-val-clips", type=int, default=64, help="clips the trainers validate on")
    p.add_argument("--stage0-minutes", type=float, default=16.0,
                   help="stage 0's wall-time training budget (on every core; one when the decoder stage runs)")
    p.add_argument("--stage0-clips", type=int, default=4000, help="clips stage 0 renders and caches for itself")
    p.add_argument("--stage0-batch-size", type=int, default=16, help="stage 0's batch size")
    p.add_argument("--stage0-lr", type=float, default=2e-3, help="stage 0's peak learning rate (cosine schedule)")
    p.add_argument("--stage0-device", default="cpu",
                   help="where stage 0 trains; the shipped checkpoint's stage 0 ran on a GPU (docs/toyworld_model.md)")
    p.add_argument("--stage0-probe-minutes", type=float, default=10.0, help="probe t2v every so often (0 = never)")
    p.add_argument("--stop-after", choices=STAGES, default=None,
                   help="stop after this stage (vae and data run side by side: either stops after both)")
    p.add_argument("--recall-steps", type=int, default=1200,
                   help="Knowledge Recall optimiser steps (the shipped checkpoint: 1600)")
    p.add_argument("--refine-steps", type=int, default=1200,
                   help="Capability Refinement optimiser steps (the shipped checkpoint: 1600)")
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--checkpoint-every", type=int, default=200,
                   help="Recall and Refine save a checkpoint this often (the newest two are kept), so that an "
                        "interrupted build continues where it stopped (0: only at the end)")
    p.add_argument("--num-processes", type=int, default=2,
                   help="data-parallel training processes (one per core); also the threads of the VAE and stage 0")
    p.add_argument("--learning-rate", type=float, default=5e-4, help="Recall's learning rate for the shared weights")
    p.add_argument("--text-experts-learning-rate", type=float, default=2e-3,
                   help="learning rate of the fresh text experts, in Recall and Refine")
    p.add_argument("--trainable", default="all", choices=("all", "text_experts", "lora"), help="what trains in Recall")
    p.add_argument("--refine-trainable", default="text_experts", choices=("all", "text_experts", "lora"),
                   help="what trains in Refine: text_experts (the default) keeps the video path Recall left, see "
                        "docs/toyworld_model.md")
    p.add_argument("--refine-learning-rate", type=float, default=None,
                   help="learning rate of the shared weights in Refine (default: --learning-rate)")
    p.add_argument("--recall-warmup-steps", type=int, default=0,
                   help="steps of a Recall warm-up whose captions are the clips' shape words (the data's `shapes` "
                        "column), before Recall on the prompts; re-initialisation then applies to the warm-up")
    p.add_argument("--recall-reinit-modules", nargs="*", default=[],
                   help="transformer submodules re-initialised before Recall (train_recall's --reinit_modules)")
    p.add_argument("--view-ratios", type=float, nargs=3, default=(2.0, 2.0, 1.0))
    p.add_argument("--text-ffn", choices=("expert", "shared"), default="expert",
                   help="the text stream's feed-forward layers from Recall on: `expert` (the paper's modality-driven "
                        "MoE) or `shared` (the ablation: text goes through the video FFN; train_recall's --text_ffn)")
    p.add_argument("--recall-text", choices=("prompt", "caption"), default="prompt",
                   help="the text of the first stage: `prompt` (Knowledge Recall: the generation prompt) or "
                        "`caption` (the ablation without Recall: detailed captions in both stages, same budget)")
    p.add_argument("--text-source", choices=("uniform", "mask"), default="uniform",
                   help="where noised caption tokens come from: `uniform` over the vocabulary (the reference's "
                        "choice) or a [MASK] token (`univigu convert wan --text-source mask`), docs/toyworld_model.md")
    p.add_argument("--text-time-power", type=float, default=1.0,
                   help="train_recall's --text_time_power (> 1: more noised captions)")
    p.add_argument("--refine-text-time-power", type=float, default=3.0,
                   help="train_refine's --text_time_power: 3 reads shape better and leaves the generator as it is "
                        "(Refine trains the text experts only), docs/toyworld_model.md")
    p.add_argument("--eval-samples", type=int, default=48)
    p.add_argument("--save-dtype", default="float32", choices=("float32", "float16"),
                   help="the dtype the shipped transformers' weights are stored in (the checkpoint's and, with "
                        "--from-scratch, the stand-in's); float16 halves them, they load as float32, and the "
                        "evaluation scores the stored weights")
    p.add_argument("--install", action="store_true",
                   help="copy the result into the package as univigu.toyworld.DEFAULT_CHECKPOINT (source checkouts)")
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    if args.from_scratch and args.base:
        p.error("--base and --from-scratch exclude each other: the stand-in is either given or built.")
    if not args.from_scratch:
        args.base = Path(args.base or DEFAULT_BASE_MODEL).resolve()
        if not (args.base / "model_index.json").is_file():
            p.error(f"{args.base} is not a stand-in WanPipeline folder (no model_index.json); pass --base DIR, or "
                    "--from-scratch to build one.")
        args.world = world_of_folder(str(args.base)).version
    return args


class _StopAfter(Exception):
    """Raised after the stage named by `--stop-after`."""


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t_all = time.time()

    def timed(name, fn, *a):
        t0 = time.time()
        print(f"\n=== {name} ===", flush=True)
        result = fn(*a)
        timings[name] = round(time.time() - t0, 1)
        print(f"=== {name}: {timings[name]:.0f}s ===", flush=True)
        return result

    def stop_after(*names):
        if args.stop_after in names:
            raise _StopAfter

    try:
        # The VAE trains on one core for a fixed time budget and the data need no VAE: render them on the other core
        # meanwhile (a few minutes off the 90-minute budget).
        if args.base:
            print(f"starting from the stand-in {args.base} ({args.world})", flush=True)
            data = timed("data", stage_data, args, args.out)
            stop_after("vae", "data", "decoder", "stage0")
            s0 = args.base
        else:
            with ThreadPoolExecutor(max_workers=1) as pool:
                vae_job = pool.submit(timed, "vae", stage_vae, args, args.out)
                data = timed("data", stage_data, args, args.out)
                vae = vae_job.result()
            if args.world != "shapesworld-v1" and not args.vae:
                vae = timed("vae_world", stage_vae_world, args, args.out, vae)
            stop_after("vae", "data")
            decoder, decoder_proc = start_decoder(args, args.out, vae)
            try:
                s0 = timed("stage0", stage0, args, args.out, vae, decoder_proc is not None)
            except BaseException:
                if decoder_proc is not None:
                    decoder_proc.stop()
                raise
            timed("decoder", finish_decoder, args, decoder, decoder_proc, s0)
            stop_after("decoder", "stage0")
        conv = timed("convert", stage_convert, args, args.out, s0)
        stop_after("convert")
        recall = timed("recall", stage_train, args, args.out, "recall", conv, data)
        stop_after("recall")
        refine = timed("refine", stage_train, args, args.out, "refine", recall, data)
        stop_after("refine")
        final = timed("evaluate", stage_evaluate, args, args.out, s0, recall, refine)
    except _StopAfter:
        print(f"\nStopped after {args.stop_after} (--stop-after).")
        return
    finally:
        timings["total"] = round(time.time() - t_all, 1)
        (args.out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nDone in {timings['total'] / 60:.1f} min: {final}")


if __name__ == "__main__":
    main()
