# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The training loop shared by `training/train_recall.py` (Knowledge Recall) and `training/train_refine.py`
(Capability Refinement), in the style of diffusers' training examples: accelerate for devices, mixed precision,
gradient accumulation, checkpoint/resume and multi-process runs; 🤗 datasets for the data; peft for LoRA.

    accelerate launch training/train_recall.py --pretrained_model_name_or_path Wan2.1-T2V-1.3B-Diffusers \\
        --train_data_dir data/train --output_dir out/recall ...

Reproducibility: every random draw of a training step (task views, sigmas, noise, text times and text noise) comes
from a generator seeded by (seed, step, micro-step, process), and the data order depends only on (seed, epoch);
resuming from a checkpoint therefore replays exactly the steps an uninterrupted run would take.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..utils.json_io import dumps_json


logger = logging.getLogger("univigu.training")

STAGES = ("recall", "refine")
STAGE_DEFAULTS = {
    "recall": {"caption_column": "prompt", "description": "Uni-ViGU Knowledge Recall: learn to read back the prompt."},
    "refine": {
        "caption_column": "caption",
        "description": "Uni-ViGU Capability Refinement: fine-tune a Knowledge Recall model on detailed captions.",
    },
}


# ------------------------------------------------------------------------------------------------------- arguments


def build_parser(stage: str) -> argparse.ArgumentParser:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    d = STAGE_DEFAULTS[stage]
    p = argparse.ArgumentParser(description=d["description"])
    g = p.add_argument_group("model")
    g.add_argument("--pretrained_model_name_or_path", type=str, required=True,
                   help="Recall: a Wan2.1 T2V folder in diffusers format (or a UniViGUPipeline folder). "
                        "Refine: the UniViGUPipeline folder written by train_recall.py.")
    g.add_argument("--revision", type=str, default=None)
    g.add_argument("--variant", type=str, default=None)
    g.add_argument("--text_source", choices=("uniform", "mask"), default="uniform",
                   help="Source distribution of the text stream when building from Wan (the reference: uniform).")
    g.add_argument("--latent_normalization", choices=("diffusers", "raw"), default="diffusers",
                   help="Latent convention when building from Wan (a UniViGU folder keeps its own).")
    g.add_argument("--fuse_lora_weights", type=str, default=None,
                   help="A LoRA output folder (e.g. a LoRA Knowledge Recall run) to fuse into the starting "
                        "transformer before training; pass its base (the run's base_pipeline/ or base model) as "
                        "--pretrained_model_name_or_path.")

    g = p.add_argument_group("data")
    g.add_argument("--train_data_dir", type=str, default=None,
                   help="A folder of videos with metadata.jsonl/csv (file_name + text columns).")
    g.add_argument("--dataset_name", type=str, default=None,
                   help="A dataset name (Hub) or a local save_to_disk folder; its video column holds paths.")
    g.add_argument("--dataset_config_name", type=str, default=None)
    g.add_argument("--dataset_split", type=str, default="train")
    g.add_argument("--cache_dir", type=str, default=None, help="🤗 datasets cache (Hub datasets only).")
    g.add_argument("--video_column", type=str, default="file_name")
    g.add_argument("--caption_column", type=str, default=d["caption_column"],
                   help=f"Text-stream target (default for {stage}: {d['caption_column']!r}).")
    g.add_argument("--condition_column", type=str, default="prompt",
                   help="Text given through umT5 cross-attention in generation/joint views (falls back to "
                        "--caption_column if the dataset has no such column).")
    g.add_argument("--num_frames", type=int, default=81, help="Frames per clip, 4k+1.")
    g.add_argument("--height", type=int, default=480)
    g.add_argument("--width", type=int, default=832)
    g.add_argument("--frame_sampling", choices=("uniform", "first"), default="uniform")
    g.add_argument("--frame_stride", type=int, default=1, help="With --frame_sampling first.")
    g.add_argument("--max_text_length", type=int, default=128, help="Text-stream length in tokens.")
    g.add_argument("--max_sequence_length", type=int, default=512, help="umT5 condition length (WanPipeline: 512).")
    g.add_argument("--text_padding", choices=("learn", "mask"), default="learn",
                   help="learn: padding positions are targets (the v2t sampler needs to learn where text ends); "
                        "mask: padding is excluded from attention and loss.")
    g.add_argument("--latents_cache_dir", type=str, default=None,
                   help="Precompute VAE latents + umT5 embeddings once into this folder (reused while the encoders, "
                        "settings and data are unchanged; a stale cache is refused).")
    g.add_argument("--overwrite_latents_cache", action="store_true")
    g.add_argument("--cache_batch_size", type=int, default=1)
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    g.add_argument("--allow_external_video_paths", action="store_true",
                   help="Accept metadata file names that point outside the data folder (absolute paths, `../`); "
                        "by default they are refused.")

    g = p.add_argument_group("task views and loss")
    g.add_argument("--view_ratios", type=float, nargs=3, default=(2.0, 1.0, 1.0),
                   metavar=("UNDERSTANDING", "GENERATION", "JOINT"))
    g.add_argument("--text_loss_weight", type=float, default=1.0, help="lambda of the text cross-entropy.")
    g.add_argument("--video_loss_weight", type=float, default=1.0)
    g.add_argument("--weighting_scheme", choices=("none", "logit_normal", "mode", "sigma_sqrt", "cosmap"),
                   default="none")
    g.add_argument("--logit_mean", type=float, default=0.0)
    g.add_argument("--logit_std", type=float, default=1.0)
    g.add_argument("--mode_scale", type=float, default=1.29)
    g.add_argument("--flow_shift", type=float, default=1.0, help="Shift of the sampled video sigmas (1 = none).")
    g.add_argument("--understanding_video_noise", type=float, default=0.0,
                   help="Max sigma of light noise on the video of understanding views (0 = clean).")
    g.add_argument("--understanding_attention", choices=("full", "video_prefix"), default="full",
                   help="full: the reference. video_prefix: in understanding views the video tokens do not attend to "
                        "the text, so captioning can cache the video's keys/values exactly (video_cache_interval); "
                        "recorded in the saved pipeline's call defaults.")

    g = p.add_argument_group("what trains")
    g.add_argument("--trainable", choices=("text_experts", "all", "lora"), default="text_experts")
    g.add_argument("--text_ffn", choices=("expert", "shared"), default=None,
                   help="Ablation: 'shared' drops the text FFN experts (text tokens use the video FFN). Default: keep "
                        "the starting model's.")
    g.add_argument("--lora_rank", type=int, default=16)
    g.add_argument("--lora_alpha", type=float, default=None, help="Default: the rank.")
    g.add_argument("--lora_dropout", type=float, default=0.0)
    g.add_argument("--lora_target_modules", type=str, default=None,
                   help="Comma-separated module name suffixes (default: to_q,to_k,to_v,to_out.0,"
                        "ffn_t.net.0.proj,ffn_t.net.2).")

    g = p.add_argument_group("optimisation")
    g.add_argument("--output_dir", type=str, default=f"univigu-{stage}")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--train_batch_size", type=int, default=1, help="Per device.")
    g.add_argument("--num_train_epochs", type=int, default=1)
    g.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_train_epochs.")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--gradient_checkpointing", action="store_true")
    g.add_argument("--learning_rate", type=float, default=1e-4)
    g.add_argument("--text_experts_learning_rate", type=float, default=None,
                   help="Learning rate of the text experts (vocab_embed, text_head, ffn_t, text time embedding and "
                        "table) when they train with the shared weights (--trainable all): the fresh text parameters "
                        "can learn fast while the shared, pretrained ones move slowly. Default: --learning_rate.")
    g.add_argument("--scale_lr", action="store_true",
                   help="Scale the learning rate by processes x accumulation x batch size.")
    g.add_argument("--lr_scheduler", type=str, default="constant",
                   help='"linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"')
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--lr_num_cycles", type=int, default=1)
    g.add_argument("--lr_power", type=float, default=1.0)
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.999)
    g.add_argument("--adam_weight_decay", type=float, default=0.0)
    g.add_argument("--adam_epsilon", type=float, default=1e-8)
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None,
                   help="Default: the accelerate config's.")
    g.add_argument("--allow_tf32", action="store_true")

    g = p.add_argument_group("checkpoints, logging, validation")
    g.add_argument("--checkpointing_steps", type=int, default=500)
    g.add_argument("--checkpoints_total_limit", type=int, default=None)
    g.add_argument("--resume_from_checkpoint", type=str, default=None,
                   help='"latest" or a checkpoint folder name/path.')
    g.add_argument("--overwrite_output_dir", action="store_true",
                   help="--output_dir already holds a run (checkpoints, a final model, logs): delete its contents "
                        "and start a new run there. Without it (or --resume_from_checkpoint) such a folder is "
                        "refused. A --latents_cache_dir inside it is kept.")
    g.add_argument("--report_to", type=str, default="tensorboard", help='"tensorboard", "wandb", "all" or "none".')
    g.add_argument("--logging_dir", type=str, default="logs")
    g.add_argument("--tracker_project_name", type=str, default=f"univigu-{stage}")
    g.add_argument("--validation_steps", type=int, default=None,
                   help="Caption the validation videos every N steps (and at the end).")
    g.add_argument("--validation_data_dir", type=str, default=None,
                   help="Held-out videos (folder with metadata). Default: hold out --num_validation_videos of the "
                        "training data.")
    g.add_argument("--num_validation_videos", type=int, default=4)
    g.add_argument("--validation_num_inference_steps", type=int, default=16)
    g.add_argument("--shapesworld_metrics", choices=("auto", "yes", "no"), default="auto",
                   help="Also score validation captions with ShapesWorld attribute accuracy (auto: if the data "
                        "folder is a ShapesWorld dataset).")
    g.add_argument("--eval_batch_size", type=int, default=4,
                   help="Samples of the fixed batch on which losses are measured before/after training.")
    g.add_argument("--no_loss_plot", action="store_true")
    return p


def parse_args(stage: str, argv: Optional[List[str]] = None) -> argparse.Namespace:
    args = build_parser(stage).parse_args(argv)
    args.stage = stage
    env_rank = int(os.environ.get("LOCAL_RANK", -1))
    if env_rank != -1:
        args.local_rank = env_rank
    if args.train_data_dir is None and args.dataset_name is None:
        raise ValueError("Pass --train_data_dir (a folder with metadata.jsonl/csv) or --dataset_name.")
    if (args.num_frames - 1) % 4 != 0:
        raise ValueError(f"--num_frames must be 4k+1 (e.g. 9, 33, 81), got {args.num_frames}.")
    if args.height % 16 or args.width % 16:
        raise ValueError(f"--height/--width must be multiples of 16, got {args.height}x{args.width}.")
    return args


# --------------------------------------------------------------------------------------------------------- helpers


def step_seed(seed: int, global_step: int, micro_step: int, process_index: int) -> int:
    digest = hashlib.sha256(f"{seed}/{global_step}/{micro_step}/{process_index}".encode()).hexdigest()
    return int(digest[:15], 16)


def _nanmean(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class LossHistory:
    """Per-step losses in `output_dir/logs/losses.jsonl` (survives resumes: steps past the resumed one are dropped)."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def truncate(self, global_step: int):
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= global_step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def reset(self):
        if self.enabled and self.path.exists():
            self.path.unlink()

    def append(self, record: dict):
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(dumps_json(record) + "\n")  # a non-finite loss is written as null

    def read(self) -> List[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def plot_losses(history: List[dict], path: Path, title: str = "") -> Optional[Path]:
    """A PNG with the total, video and text losses per step (raw and smoothed)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in history]
    for ax, key in zip(axes, ("loss", "video_loss", "text_loss")):
        values = [float("nan") if r.get(key) is None else r[key] for r in history]  # null: a non-finite loss
        ax.plot(steps, values, alpha=0.35, label="per step")
        smooth, ema = [], None
        for v in values:
            if v is not None and not math.isnan(v):
                ema = v if ema is None else 0.9 * ema + 0.1 * v
            smooth.append(ema if ema is not None else float("nan"))
        ax.plot(steps, smooth, label="EMA 0.9")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------ output dir


def previous_run_files(output_dir, logging_dir: str = "logs") -> List[str]:
    """What in `output_dir` shows that a training run already wrote there (names relative to it): checkpoints (also
    half-written ones), a final pipeline or LoRA, the summary, the loss log."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    from .checkpointing import CHECKPOINT_PATTERN, TMP_PREFIX

    found = sorted(p.name + "/" for p in output_dir.iterdir()
                   if p.is_dir() and (CHECKPOINT_PATTERN.match(p.name) or p.name.startswith(TMP_PREFIX)))
    for name in ("model_index.json", "pytorch_lora_weights.safetensors", "training_summary.json",
                 f"{logging_dir}/losses.jsonl"):
        if (output_dir / name).exists():
            found.append(name)
    return found


def _run_inputs(args) -> List[Path]:
    """The local paths a run reads (which --overwrite_output_dir must never delete)."""
    candidates = [args.pretrained_model_name_or_path, args.train_data_dir, args.validation_data_dir,
                  args.dataset_name, args.fuse_lora_weights]
    return [Path(c) for c in candidates if c and os.path.exists(c)]


def check_output_dir(args) -> List[str]:
    """Checks, before anything is loaded, that `--output_dir` can take this run; returns the files of a previous run
    found there (to be cleared with `--overwrite_output_dir`).

    Refused: a folder holding a previous run without `--resume_from_checkpoint` or `--overwrite_output_dir` (its final
    model, checkpoints and logs would be overwritten piecemeal, and `latest` would point at the old run's
    checkpoints); `--overwrite_output_dir` when the folder holds an input of the run; a folder that cannot be written.
    """
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder. Choose another --output_dir.")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError(
            "--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint would resume from: pass "
            "one of the two."
        )
    found = previous_run_files(output_dir, args.logging_dir)
    if found and not args.resume_from_checkpoint and not args.overwrite_output_dir:
        shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
        raise FileExistsError(
            f"--output_dir {output_dir} already holds a training run ({shown}). Pass --resume_from_checkpoint latest "
            "to continue it, --overwrite_output_dir to delete it and start again, or choose another --output_dir."
        )
    if found and args.overwrite_output_dir:
        real = output_dir.resolve()
        inside = [p for p in _run_inputs(args) if p.resolve() == real or real in p.resolve().parents]
        if inside:
            raise ValueError(
                f"--overwrite_output_dir would delete {output_dir}, which holds an input of this run "
                f"({', '.join(map(str, inside))}). Choose another --output_dir."
            )
    _check_writable_dir(output_dir)
    return found


def _check_writable_dir(folder: Path) -> None:
    """Create `folder` (with its parents) and write a probe file in it; a clear error now instead of a lost run."""
    probe = folder / f".univigu-write-test-{uuid.uuid4().hex}"  # unique across processes and machines
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"--output_dir {folder} is not writable ({type(error).__name__}: {error}). Choose another --output_dir."
        ) from None


def clear_output_dir(output_dir: Path, keep=()) -> None:
    """Delete the contents of a previous run's `output_dir` (the folder itself stays), except the paths in `keep`
    and the folders that contain them (e.g. a latent cache kept inside the run folder: it is reusable)."""
    kept = [Path(k).resolve() for k in keep if k]
    for entry in Path(output_dir).iterdir():
        real = entry.resolve()
        if any(real == k or real in k.parents for k in kept):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ----------------------------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs one training stage; returns (and writes to `output_dir/training_summary.json`) what happened."""
    import diffusers
    import transformers
    from accelerate import Accelerator
    from accelerate.logging import get_logger
    from accelerate.utils import DistributedType, ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import cast_training_params
    from tqdm.auto import tqdm

    from . import checkpointing
    from .data import (
        EpochSampler,
        VideoPreprocessing,
        VideoTextTrainDataset,
        check_columns,
        encode_prompts,
        encode_videos,
        find_bad_samples,
        load_video_text_dataset,
        make_collate_fn,
        pad_prompt_embeds,
        prepare_latent_cache,
        row_label,
        select_usable,
    )
    from .losses import GENERATION, UNDERSTANDING, UnifiedLoss, UnifiedLossConfig
    from .models import (
        DEFAULT_LORA_TARGETS,
        build_pipeline,
        configure_trainable,
        count_parameters,
        load_components,
        save_lora,
        training_call_defaults,
    )

    start_time = time.time()
    output_dir = Path(args.output_dir)
    logging_dir = output_dir / args.logging_dir
    accelerator = Accelerator(
        cpu=_multi_process_without_accelerator(),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(logging_dir)),
    )
    log = get_logger("univigu.training", log_level="INFO")
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if accelerator.is_local_main_process else logging.ERROR)
    logging.getLogger("univigu").setLevel(logging.INFO if accelerator.is_local_main_process else logging.ERROR)
    if accelerator.is_local_main_process:
        transformers.utils.logging.set_verbosity_warning()
        diffusers.utils.logging.set_verbosity_warning()
    else:
        transformers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(args.seed)
    is_sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)

    # Before the (long) model loading and data scanning: refuse an output folder that holds another run or cannot be
    # written, rather than failing (or overwriting that run) at the end.
    previous_run = check_output_dir(args)
    if accelerator.is_main_process:
        if previous_run and args.overwrite_output_dir:
            clear_output_dir(output_dir, keep=[args.latents_cache_dir])
            log.info(f"--overwrite_output_dir: removed the previous run in {output_dir}.", main_process_only=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        checkpointing.remove_incomplete_checkpoints(output_dir)
    accelerator.wait_for_everyone()

    # 1. Components. VAE and umT5 are frozen; the transformer trains per --trainable.
    weight_dtype = torch.float32
    if accelerator.mixed_precision == "fp16":
        weight_dtype = torch.float16
    elif accelerator.mixed_precision == "bf16":
        weight_dtype = torch.bfloat16
    # umT5 overflows in fp16 (a known T5 issue): it runs in bf16 or fp32.
    encoder_dtype = torch.bfloat16 if weight_dtype == torch.bfloat16 else torch.float32
    components = load_components(
        args.pretrained_model_name_or_path, revision=args.revision, variant=args.variant,
        text_source=args.text_source, latent_normalization=args.latent_normalization, init_seed=args.seed,
        encoder_dtype=encoder_dtype,
    )
    if args.stage == "refine" and components.source_kind != "univigu":
        raise ValueError(
            "Capability Refinement starts from a Knowledge Recall output: pass the UniViGUPipeline folder written by "
            "train_recall.py as --pretrained_model_name_or_path (got a Wan folder)."
        )
    if args.fuse_lora_weights:
        from .lora import load_lora_weights

        load_lora_weights(build_pipeline(components), args.fuse_lora_weights, adapter_name="init")
        components.transformer.fuse_lora(lora_scale=1.0)
        components.transformer.unload_lora()
        log.info(f"Fused the LoRA {args.fuse_lora_weights} into the starting transformer.", main_process_only=True)
    if args.text_ffn == "shared":
        components.transformer = components.transformer.with_shared_text_ffn()
    elif args.text_ffn == "expert" and components.transformer.config.text_ffn != "expert":
        raise ValueError("--text_ffn expert: the starting model has shared FFNs; start from a Wan or expert model.")
    tokenizer, text_encoder, vae, transformer = (
        components.tokenizer, components.text_encoder, components.vae, components.transformer,
    )
    text_scheduler = components.text_scheduler
    vae.requires_grad_(False).eval()
    text_encoder.requires_grad_(False).eval()
    vae.to(accelerator.device, dtype=encoder_dtype)
    text_encoder.to(accelerator.device, dtype=encoder_dtype)

    lora_targets = [t.strip() for t in args.lora_target_modules.split(",")] if args.lora_target_modules else None
    if args.trainable == "lora" and components.source_kind == "wan" and lora_targets is None:
        # A model fresh from Wan has a zero text head; a LoRA that cannot reach it would leave the text logits
        # uniform forever. Adapt the head too (its LoRA starts as a no-op like every other).
        lora_targets = list(DEFAULT_LORA_TARGETS) + ["text_head.linear"]
        log.info("Starting from Wan with --trainable lora: adding text_head.linear to the LoRA targets.",
                 main_process_only=True)
    if args.trainable == "lora":
        # diffusers' recipe: the frozen base in the mixed-precision dtype (but the modules the model keeps in fp32,
        # e.g. norms and time embedders, stay fp32), the adapters in fp32.
        _cast_frozen_base(transformer, accelerator.device, weight_dtype)
    configure_trainable(transformer, args.trainable, args.lora_rank, args.lora_alpha, args.lora_dropout, lora_targets)
    if args.trainable == "lora":
        cast_training_params(transformer, dtype=torch.float32)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    param_counts = count_parameters(transformer)
    log.info(f"Transformer: {param_counts['total'] / 1e6:.2f}M parameters, {param_counts['trainable'] / 1e6:.3f}M "
             f"trainable ({args.trainable}).", main_process_only=True)

    # 2. Data.
    raw = load_video_text_dataset(
        args.train_data_dir, args.dataset_name, args.dataset_config_name, args.dataset_split, args.video_column,
        args.cache_dir, text_columns=[args.caption_column, args.condition_column],
        allow_external_video_paths=args.allow_external_video_paths,
    )
    condition_column = args.condition_column
    if condition_column not in raw.column_names:
        log.warning(f"No column {condition_column!r}: the umT5 condition of generation/joint views will be the "
                    f"{args.caption_column!r} text.", main_process_only=True)
        condition_column = args.caption_column
    check_columns(raw, [args.video_column, args.caption_column, condition_column])
    preprocessing = VideoPreprocessing(args.num_frames, args.height, args.width, args.frame_sampling,
                                       args.frame_stride)
    text_columns = list(dict.fromkeys([args.caption_column, condition_column]))
    problems = find_bad_samples(
        raw, args.video_column, text_columns,
        preprocessing=None if args.latents_cache_dir else preprocessing, accelerator=accelerator,
    )
    cache = cache_info = None
    if args.latents_cache_dir:
        cache, cache_problems, cache_info = prepare_latent_cache(
            raw, args.latents_cache_dir, vae, text_encoder, tokenizer, preprocessing, args.video_column,
            condition_column, components.latent_normalization, args.max_sequence_length,
            overwrite=args.overwrite_latents_cache, accelerator=accelerator, batch_size=args.cache_batch_size,
            progress=accelerator.is_local_main_process,
        )
        paths = raw[args.video_column]
        for index, reason in sorted(cache_problems.items()):
            if index not in problems:
                problems[index] = reason
                log.warning(f"Skipping {row_label(paths[index], index)}: {reason}", main_process_only=True)
        # Training reads cached latents: the text encoder is not needed on the device any more.
        text_encoder.to("cpu")
    rows, data_summary = select_usable(raw, problems, args.video_column)
    log.info(f"Data: {data_summary.describe()}.", main_process_only=True)

    validation_rows = None
    if args.validation_data_dir:
        val_raw = load_video_text_dataset(
            args.validation_data_dir, video_column=args.video_column, text_columns=[args.caption_column],
            allow_external_video_paths=args.allow_external_video_paths, flag="--validation_data_dir",
        )
        val_problems = find_bad_samples(val_raw, args.video_column, [args.caption_column], preprocessing,
                                        warn=False)
        validation_rows, _ = select_usable(val_raw, val_problems, args.video_column)
        validation_rows = validation_rows.select(range(min(args.num_validation_videos, len(validation_rows))))
    elif args.num_validation_videos > 0 and args.validation_steps:
        if len(rows) <= args.num_validation_videos:
            raise ValueError(
                f"Only {len(rows)} usable samples: cannot hold out --num_validation_videos="
                f"{args.num_validation_videos} for validation. Pass --validation_data_dir or fewer videos."
            )
        n = len(rows) - args.num_validation_videos
        validation_rows = rows.select(range(n, len(rows)))
        rows = rows.select(range(n))

    train_dataset = VideoTextTrainDataset(rows, args.caption_column, condition_column, args.video_column,
                                          preprocessing, cache)
    sampler = EpochSampler(len(train_dataset), seed=args.seed)
    collate = make_collate_fn(tokenizer, args.max_text_length, args.max_sequence_length, args.text_padding)
    train_dataloader = torch.utils.data.DataLoader(
        train_dataset, batch_size=args.train_batch_size, sampler=sampler, collate_fn=collate,
        num_workers=args.dataloader_num_workers, drop_last=len(train_dataset) >= args.train_batch_size * accelerator.num_processes,
    )
    # A fixed batch to measure the losses on before and after training (same views and noise every time).
    eval_items = [train_dataset[i] for i in range(min(args.eval_batch_size, len(train_dataset)))]
    eval_batch = collate(eval_items)

    # 3. Optimisation.
    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    params = [p for p in transformer.parameters() if p.requires_grad]
    param_groups = params
    if args.text_experts_learning_rate is not None and args.trainable == "all":
        if args.scale_lr:
            args.text_experts_learning_rate *= (args.gradient_accumulation_steps * args.train_batch_size
                                                * accelerator.num_processes)
        expert_ids = {id(p) for _, p in transformer.text_expert_parameters()}
        param_groups = [
            {"params": [p for p in params if id(p) not in expert_ids], "lr": args.learning_rate},
            {"params": [p for p in params if id(p) in expert_ids], "lr": args.text_experts_learning_rate},
        ]
    optimizer = torch.optim.AdamW(param_groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)
    # One process's share of an epoch, as accelerate will shard the loader (recomputed after `prepare`).
    steps_per_epoch = max(1, math.ceil(math.ceil(len(train_dataloader) / accelerator.num_processes)
                                       / args.gradient_accumulation_steps))
    if args.max_train_steps is None:
        args.max_train_steps = args.num_train_epochs * steps_per_epoch
    lr_scheduler = get_scheduler(
        args.lr_scheduler, optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
        num_cycles=args.lr_num_cycles, power=args.lr_power,
    )
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        transformer, optimizer, train_dataloader, lr_scheduler
    )
    steps_per_epoch = max(1, math.ceil(len(train_dataloader) / args.gradient_accumulation_steps))
    num_epochs = math.ceil(args.max_train_steps / steps_per_epoch)

    loss_config = UnifiedLossConfig(
        view_ratios=tuple(args.view_ratios), text_loss_weight=args.text_loss_weight,
        video_loss_weight=args.video_loss_weight, weighting_scheme=args.weighting_scheme,
        logit_mean=args.logit_mean, logit_std=args.logit_std, mode_scale=args.mode_scale,
        flow_shift=args.flow_shift, understanding_video_noise=args.understanding_video_noise,
        num_train_timesteps=1000, understanding_attention=args.understanding_attention,
    )
    loss_fn = UnifiedLoss(text_scheduler, loss_config)

    if accelerator.is_main_process:
        config = {k: _jsonable(v) for k, v in vars(args).items()}
        config = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v)) for k, v in config.items()}
        accelerator.init_trackers(args.tracker_project_name, config=config)

    # 4. Resume.
    global_step = 0
    first_epoch = 0
    resumed_from = None
    history = LossHistory(output_dir / args.logging_dir / "losses.jsonl", enabled=accelerator.is_main_process)
    if args.resume_from_checkpoint:
        path = checkpointing.resolve_checkpoint(output_dir, args.resume_from_checkpoint)
        if path is None:
            log.info(f"No checkpoint in {output_dir} to resume from: starting a new run.", main_process_only=True)
        else:
            log.info(f"Resuming from {path}.", main_process_only=True)
            accelerator.load_state(str(path))
            state = checkpointing.read_checkpoint_state(path)
            global_step = int(state["global_step"])
            first_epoch = global_step // steps_per_epoch
            resumed_from = str(path)
    if resumed_from is None:
        history.reset()
    else:
        history.truncate(global_step)
    resume_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    def to_model_inputs(batch):
        """(latents, prompt_embeds) of a batch: cached, or encoded now by the frozen VAE and umT5."""
        if "latents" in batch:
            return batch["latents"].to(accelerator.device), batch["prompt_embeds"].to(accelerator.device)
        latents = encode_videos(vae, batch["video"], components.latent_normalization)
        embeds = pad_prompt_embeds(
            encode_prompts(tokenizer, text_encoder, batch["conditions"], args.max_sequence_length),
            args.max_sequence_length,
        )
        return latents.to(accelerator.device), embeds.to(accelerator.device)

    def measure_losses() -> Dict[str, float]:
        """Text loss of understanding views and video loss of generation views on the fixed eval batch."""
        model.eval()
        latents, embeds = to_model_inputs(eval_batch)
        n = latents.shape[0]
        out = {}
        with torch.no_grad(), accelerator.autocast():
            for name, view in (("text_loss_understanding", UNDERSTANDING), ("video_loss_generation", GENERATION)):
                result = loss_fn(
                    model, latents, eval_batch["text_ids"].to(accelerator.device),
                    eval_batch["text_attention_mask"].to(accelerator.device), embeds,
                    views=torch.full((n,), view), generator=torch.Generator().manual_seed(args.seed + 1234),
                    generation_attention_mask=eval_batch["text_token_mask"].to(accelerator.device),
                )
                value = result.text_loss if view == UNDERSTANDING else result.video_loss
                out[name] = float(value)
        model.train()
        return out

    validation_results = []

    def validate(step: int):
        if validation_rows is None or len(validation_rows) == 0:
            return None
        if is_sharded:
            log.warning("Validation captioning is skipped under FSDP/DeepSpeed (sharded weights); run "
                        "`univigu evaluate` on the saved pipeline instead.", main_process_only=True)
            return None
        if not accelerator.is_main_process:
            return None
        result = run_validation(
            components, accelerator.unwrap_model(model), validation_rows, args, step, output_dir,
            preprocessing, accelerator,
        )
        validation_results.append(result)
        accelerator.log({f"validation/{k}": v for k, v in result["scores"].items()
                         if isinstance(v, (int, float))}, step=step)
        return result

    initial_losses = measure_losses() if resumed_from is None else None
    if initial_losses is not None:
        log.info(f"Losses before training (fixed batch): {initial_losses}", main_process_only=True)

    # 5. Train.
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    log.info(f"***** {args.stage}: {len(train_dataset)} samples, {num_epochs} epochs, {args.max_train_steps} steps, "
             f"batch {args.train_batch_size} x {accelerator.num_processes} processes x "
             f"{args.gradient_accumulation_steps} accumulation = {total_batch} *****", main_process_only=True)
    progress_bar = tqdm(range(args.max_train_steps), initial=global_step, desc="Steps",
                        disable=not accelerator.is_local_main_process)
    train_start, steps_this_run = time.time(), 0
    micro_records: List[Dict[str, float]] = []
    done = global_step >= args.max_train_steps
    for epoch in range(first_epoch, num_epochs):
        if done:
            break
        sampler.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)
        loader = train_dataloader
        if epoch == first_epoch and resume_batches > 0:
            loader = accelerator.skip_first_batches(train_dataloader, resume_batches)
        micro_index = resume_batches if epoch == first_epoch else 0
        for batch in loader:
            micro = micro_index % args.gradient_accumulation_steps
            micro_index += 1
            with accelerator.accumulate(model):
                latents, embeds = to_model_inputs(batch)
                generator = torch.Generator().manual_seed(
                    step_seed(args.seed, global_step, micro, accelerator.process_index)
                )
                out = loss_fn(
                    model, latents, batch["text_ids"].to(accelerator.device),
                    batch["text_attention_mask"].to(accelerator.device), embeds, generator=generator,
                    generation_attention_mask=batch["text_token_mask"].to(accelerator.device),
                )
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and args.max_grad_norm and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params if not is_sharded else model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            micro_records.append({"loss": float(out.loss.detach()), "video_loss": float(out.video_loss),
                                  "text_loss": float(out.text_loss)})
            if not accelerator.sync_gradients:
                continue

            global_step += 1
            steps_this_run += 1
            progress_bar.update(1)
            local = torch.tensor([[_nanmean([r[k] for r in micro_records]) for k in ("loss", "video_loss", "text_loss")]],
                                 device=accelerator.device, dtype=torch.float64)
            micro_records.clear()
            gathered = accelerator.gather(local).cpu()
            record = {"step": global_step, "epoch": epoch, "lr": lr_scheduler.get_last_lr()[0]}
            for j, key in enumerate(("loss", "video_loss", "text_loss")):
                record[key] = _nanmean(gathered[:, j].tolist())
            accelerator.log({k: v for k, v in record.items() if k != "step" and not (
                isinstance(v, float) and math.isnan(v))}, step=global_step)
            history.append(record)
            progress_bar.set_postfix(loss=f"{record['loss']:.4f}", text=f"{record['text_loss']:.3f}",
                                     lr=f"{record['lr']:.2e}")

            if args.checkpointing_steps and global_step % args.checkpointing_steps == 0:
                path = checkpointing.save_checkpoint(
                    accelerator, output_dir, global_step, {"epoch": epoch, "stage": args.stage},
                    args.checkpoints_total_limit,
                )
                log.info(f"Saved {path}", main_process_only=True)
            if args.validation_steps and global_step % args.validation_steps == 0 and global_step < args.max_train_steps:
                validate(global_step)
            if global_step >= args.max_train_steps:
                done = True
                break
    progress_bar.close()
    train_seconds = time.time() - train_start
    accelerator.wait_for_everyone()

    # 6. The result: a UniViGUPipeline folder (or LoRA weights), the final scores and the loss plot.
    final_losses = measure_losses()
    log.info(f"Losses after training (fixed batch): {final_losses}", main_process_only=True)
    final_validation = validate(global_step)  # None when there are no validation videos
    state_dict = accelerator.get_state_dict(model) if is_sharded and args.trainable != "lora" else None
    summary: Dict[str, Any] = {}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if args.trainable == "lora":
            saved = save_lora(str(output_dir), unwrapped)
            (output_dir / "base_model.json").write_text(json.dumps(
                {"base_model": args.pretrained_model_name_or_path, "lora_weights": os.path.basename(saved),
                 "load_with": "pipe = UniViGUPipeline.from_pretrained(base_model); pipe.load_lora_weights(folder)"},
                indent=2))
            if components.source_kind == "wan":
                # The LoRA needs the UniViGU base it was trained on (fresh text experts): save that too.
                base_dir = output_dir / "base_pipeline"
                unwrapped_base = _without_adapters(unwrapped)
                build_pipeline(components, unwrapped_base).save_pretrained(str(base_dir))
        else:
            if state_dict is not None:
                from ..models import UniViGUTransformer3DModel

                fresh = UniViGUTransformer3DModel.from_config(unwrapped.config)
                fresh.load_state_dict(state_dict)
                unwrapped = fresh
            export = unwrapped.to(torch.float32)
            build_pipeline(components, export, training_call_defaults(args, components.call_defaults)).save_pretrained(
                str(output_dir))
        plot_path = None
        if not args.no_loss_plot:
            plot_path = plot_losses(history.read(), output_dir / "loss.png", title=f"univigu {args.stage}")
        summary = {
            "stage": args.stage,
            "output_dir": str(output_dir),
            "trainable": args.trainable,
            "parameters": param_counts,
            "data": data_summary.to_dict(),
            "latent_cache": None if cache_info is None else {"dir": args.latents_cache_dir, "key": cache_info["key"]},
            "resumed_from": resumed_from,
            "global_step": global_step,
            "steps_this_run": steps_this_run,
            "train_seconds": round(train_seconds, 3),
            "steps_per_second": round(steps_this_run / train_seconds, 4) if train_seconds > 0 else None,
            "losses_before": initial_losses,
            "losses_after": final_losses,
            "validation": final_validation,
            "loss_plot": str(plot_path) if plot_path else None,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "total_seconds": round(time.time() - start_time, 3),
        }
        (output_dir / "training_summary.json").write_text(dumps_json(summary, indent=2))
        log.info(f"Done: {global_step} steps; wrote {output_dir}. {data_summary.describe()}.", main_process_only=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _cast_frozen_base(transformer, device, dtype):
    """Moves the model to `device` and casts its weights to `dtype`, except those of `_keep_in_fp32_modules`."""
    keep = tuple(getattr(transformer, "_keep_in_fp32_modules", None) or ())
    transformer.to(device)
    if dtype == torch.float32:
        return
    for name, param in transformer.named_parameters():
        if any(part.startswith(keep) for part in name.split(".")) if keep else False:
            continue
        param.data = param.data.to(dtype)


def _multi_process_without_accelerator() -> bool:
    """True when launched as several processes (torchrun / `accelerate launch --multi_gpu`) on a machine with no
    GPU: then the run is multi-CPU with gloo. (accelerate 1.x only infers that from ACCELERATE_USE_CPU=true or
    mpirun; `accelerate launch --cpu` alone starts a single process.)"""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        return False
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return False
    mps = getattr(torch.backends, "mps", None)
    return not (mps is not None and mps.is_available())


def _without_adapters(transformer):
    """A copy of a peft-adapted transformer without its adapters (the base the LoRA applies to)."""
    from ..models import UniViGUTransformer3DModel

    base = UniViGUTransformer3DModel.from_config(transformer.config)
    state = {k.replace(".base_layer", ""): v for k, v in transformer.state_dict().items() if "lora_" not in k}
    base.load_state_dict(state)
    return base.to(torch.float32)


def run_validation(components, transformer, rows, args, step: int, output_dir: Path, preprocessing, accelerator):
    """Captions the validation videos (v2t) with the current transformer; writes
    `output_dir/validation/step-{step:06d}.json` with the captions, their references and the scores."""
    from ..evaluation import compute_caption_metrics
    from .models import build_pipeline

    pipe = build_pipeline(components, transformer)
    pipe.set_progress_bar_config(disable=True)
    was_training = transformer.training
    transformer.eval()
    predictions, references, paths = [], [], []
    with torch.no_grad(), accelerator.autocast():
        for i, row in enumerate(rows):
            video = preprocessing(row[args.video_column])  # (3, F, H, W) in [-1, 1]
            frames = ((video.permute(1, 0, 2, 3) + 1) / 2).clamp(0, 1)  # (F, 3, H, W) in [0, 1]
            text = pipe(
                video=frames, task="v2t", num_inference_steps=args.validation_num_inference_steps,
                max_text_length=args.max_text_length, height=args.height, width=args.width,
                num_frames=args.num_frames, generator=torch.Generator().manual_seed(args.seed + i),
                video_latents_mode="argmax", max_sequence_length=args.max_sequence_length,
                understanding_attention=args.understanding_attention,
            ).text[0]
            predictions.append(text)
            references.append(row[args.caption_column])
            paths.append(row[args.video_column])
    if was_training:
        transformer.train()
    shapesworld = args.shapesworld_metrics == "yes" or (
        args.shapesworld_metrics == "auto" and _is_shapesworld(args.validation_data_dir or args.train_data_dir)
    )
    scores = compute_caption_metrics(predictions, references, shapesworld=shapesworld,
                                     detailed=shapesworld and args.stage == "refine")
    result = {
        "step": step,
        "scores": scores,
        "samples": [{"video": p, "reference": r, "prediction": t} for p, r, t in zip(paths, references, predictions)],
    }
    folder = output_dir / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"step-{step:06d}.json").write_text(dumps_json(result, indent=2))
    return result


def _is_shapesworld(data_dir: Optional[str]) -> bool:
    return bool(data_dir) and (Path(data_dir) / "shapesworld.json").exists()


def run(stage: str, argv: Optional[List[str]] = None) -> Dict[str, Any]:
    return main(parse_args(stage, argv))


__all__ = ["build_parser", "parse_args", "main", "run", "plot_losses", "step_seed"]
