# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The command line of `training/train_recall.py` and `training/train_refine.py`: one parser for both stages (the
stage sets the defaults that differ, e.g. the text-stream column), and the checks `parse_args` makes before anything
is loaded."""

from __future__ import annotations

import argparse
import math
import os


STAGES = ("recall", "refine")
STAGE_DEFAULTS = {
    "recall": {"caption_column": "prompt", "description": "Uni-ViGU Knowledge Recall: learn to read back the prompt."},
    "refine": {
        "caption_column": "caption",
        "description": "Uni-ViGU Capability Refinement: fine-tune a Knowledge Recall model on detailed captions.",
    },
}



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
    g.add_argument("--text_source", choices=("uniform", "mask"), default=None,
                   help="Source distribution of the text stream when building from Wan (default: uniform, as the "
                        "reference). A UniViGU folder keeps its own; asking it for another is an error.")
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
    g.add_argument("--text_time_power", type=float, default=1.0,
                   help="Text times t = u ** power, u ~ U(0, 1): 1 = uniform (the reference); > 1 trains on mostly "
                        "noised captions, so tokens are predicted from the video more than from the other words.")
    g.add_argument("--understanding_attention", choices=("full", "video_prefix"), default="full",
                   help="full: the reference. video_prefix: in understanding views the video tokens do not attend to "
                        "the text, so captioning can cache the video's keys/values exactly (video_cache_interval); "
                        "recorded in the saved pipeline's call defaults.")

    g = p.add_argument_group("what trains")
    g.add_argument("--trainable", choices=("text_experts", "all", "lora"), default="text_experts")
    g.add_argument("--text_ffn", choices=("expert", "shared"), default=None,
                   help="Ablation: 'shared' drops the text FFN experts (text tokens use the video FFN). Default: keep "
                        "the starting model's.")
    g.add_argument("--reinit_modules", type=str, nargs="*", default=[],
                   help="Transformer submodules (e.g. blocks.2.attn1 blocks.3.attn1) re-drawn from their default "
                        "initialisation, seeded by --seed, before training (docs/research_log.md, session 8).")
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
                        "table), in every --trainable mode: with --trainable all the fresh text parameters can learn "
                        "fast while the shared, pretrained ones move slowly; with lora the LoRA weights keep "
                        "--learning_rate. Default: --learning_rate.")
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


def parse_args(stage: str, argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser(stage).parse_args(argv)
    args.stage = stage
    env_rank = int(os.environ.get("LOCAL_RANK", -1))
    if env_rank != -1:
        args.local_rank = env_rank
    if args.train_data_dir is None and args.dataset_name is None:
        raise ValueError("Pass --train_data_dir (a folder with metadata.jsonl/csv) or --dataset_name.")
    if args.num_frames < 1 or (args.num_frames - 1) % 4 != 0:
        raise ValueError(f"--num_frames must be 4k+1 (e.g. 9, 33, 81), got {args.num_frames}.")
    if args.height < 16 or args.width < 16 or args.height % 16 or args.width % 16:
        raise ValueError(f"--height/--width must be positive multiples of 16, got {args.height}x{args.width}.")
    check_numbers(args)
    return args


#: Flags that must be whole numbers of at least the given value (None: the flag is unset, which is allowed; 0 turns
#: checkpointing, validation and gradient clipping off).
_AT_LEAST = {"train_batch_size": 1, "num_train_epochs": 1, "max_train_steps": 1, "gradient_accumulation_steps": 1,
             "checkpointing_steps": 0, "checkpoints_total_limit": 1, "validation_steps": 0, "max_text_length": 1,
             "max_sequence_length": 1, "cache_batch_size": 1, "dataloader_num_workers": 0, "lr_warmup_steps": 0,
             "lr_num_cycles": 1, "frame_stride": 1, "lora_rank": 1, "num_validation_videos": 0,
             "validation_num_inference_steps": 1, "eval_batch_size": 1}
#: Flags that must be finite real numbers above (">") or at least (">=") a bound.
_REAL = {"learning_rate": (">", 0.0), "text_experts_learning_rate": (">", 0.0), "max_grad_norm": (">=", 0.0),
         "adam_epsilon": (">", 0.0), "adam_weight_decay": (">=", 0.0), "text_loss_weight": (">=", 0.0),
         "video_loss_weight": (">=", 0.0), "flow_shift": (">", 0.0), "lora_dropout": (">=", 0.0),
         "adam_beta1": (">=", 0.0), "adam_beta2": (">=", 0.0), "logit_std": (">", 0.0)}


def check_numbers(args: argparse.Namespace) -> None:
    """Counts and rates are refused here, naming the flag, rather than failing (or training on) deep in the run
    (`--gradient_accumulation_steps 0` divided by zero, `--max_train_steps 0` trained nothing and exited 0)."""
    for name, low in _AT_LEAST.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise ValueError(f"--{name} must be at least {low}, got {value}.")
    for name, (op, bound) in _REAL.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if not math.isfinite(value) or (value <= bound if op == ">" else value < bound):
            raise ValueError(f"--{name} must be a finite number {op} {bound:g}, got {value}.")


__all__ = ["STAGES", "STAGE_DEFAULTS", "build_parser", "parse_args"]
