# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The training loop shared by `training/train_recall.py` (Knowledge Recall) and `training/train_refine.py`
(Capability Refinement), in the style of diffusers' training examples: accelerate for devices, mixed precision,
gradient accumulation, checkpoint/resume and multi-process runs; 🤗 datasets for the data; peft for LoRA.

    accelerate launch training/train_recall.py --pretrained_model_name_or_path Wan2.1-T2V-1.3B-Diffusers \\
        --train_data_dir data/train --output_dir out/recall ...

`main` reads top to bottom: `setup_accelerator`, `prepare_output_dir`, `load_models`, `load_data`,
`prepare_optimization`, `resume`; then `train_loop` between two `measure_losses`; then `save_model` and the summary.
The command line is in `arguments`, the output folder checks and the loss log in `outputs`.

Reproducibility: every random draw of a training step (task views, sigmas, noise, text times and text noise) comes
from a generator seeded by (seed, step, slot), where slot = micro-step x processes + process is the micro-batch's
place in the step's global batch order, and the data order depends only on (seed, epoch); resuming from a checkpoint
therefore replays exactly the steps an uninterrupted run would take, and P processes x A accumulation micro-steps
compute the same steps as 1 process x P*A micro-steps (same per-device batch), up to floating-point reduction order.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.state import PartialState
from accelerate.utils import (
    DistributedType,
    FullyShardedDataParallelPlugin,
    ProjectConfiguration,
    parse_flag_from_env,
    set_seed,
)
from diffusers.optimization import get_scheduler
from diffusers.training_utils import cast_training_params
from tqdm.auto import tqdm

from ..data import check_columns, find_bad_samples, load_video_text_dataset, row_label, select_usable
from ..data.preprocessing import VideoPreprocessing
from ..evaluation import compute_caption_metrics
from ..models import UniViGUTransformer3DModel
from ..utils.json_io import dumps_json
from . import checkpointing
from .arguments import parse_args
from .components import (
    DEFAULT_LORA_TARGETS,
    build_pipeline,
    configure_trainable,
    count_parameters,
    load_components,
    reinit_modules,
    save_lora,
    training_call_defaults,
)
from .dataset import EpochSampler, VideoTextTrainDataset, make_collate_fn
from .encoding import encode_prompts_padded, encode_videos
from .latent_cache import prepare_latent_cache
from .lora import load_lora_weights
from .losses import GENERATION, UNDERSTANDING, UnifiedLoss, UnifiedLossConfig
from .outputs import LossHistory, check_output_dir, clear_output_dir, plot_losses


logger = get_logger("univigu.training", log_level="INFO")

LOSS_KEYS = ("loss", "video_loss", "text_loss")


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


def _sharding_on_cpu(accelerator) -> None:
    """Honours an FSDP or DeepSpeed config (`accelerate launch` sets ACCELERATE_USE_FSDP / _DEEPSPEED) on CPU processes.

    accelerate 1.x selects FSDP and DeepSpeed only on GPUs and other accelerators: on several CPU processes it
    silently runs DDP over gloo (MULTI_CPU) and ignores the config. torch's FSDP2 (`fully_shard`) runs on CPU over
    gloo, so an FSDP config switches the state to FSDP the way accelerate does on a GPU (`AcceleratorState.__init__`):
    the run then shards weights, gradients and optimizer state, writes sharded checkpoints and gathers the final
    weights, as on GPUs (tests/test_distributed_training.py). A DeepSpeed config is refused rather than run as DDP."""
    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED"):
        raise ValueError(
            "A DeepSpeed config on CPU processes: accelerate runs DeepSpeed only on GPUs and would silently train with "
            "DDP instead. On CPU use configs/accelerate_fsdp_cpu_2proc.yaml (FSDP2 over gloo) or "
            "configs/accelerate_cpu_2proc.yaml (DDP)."
        )
    if not parse_flag_from_env("ACCELERATE_USE_FSDP"):
        return
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables `accelerate launch` set from the config
    if plugin.fsdp_version != 2:
        raise ValueError("FSDP on CPU (gloo) needs `fsdp_version: 2` in the accelerate config: accelerate's FSDP1 "
                         "path assumes a GPU.")
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    # every later AcceleratorState() copies PartialState's type back: set it there too, as accelerate does
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


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


def _without_adapters(transformer):
    """A copy of a peft-adapted transformer without its adapters (the base the LoRA applies to)."""
    base = UniViGUTransformer3DModel.from_config(transformer.config)
    state = {k.replace(".base_layer", ""): v for k, v in transformer.state_dict().items() if "lora_" not in k}
    base.load_state_dict(state)
    return base.to(torch.float32)


def _is_sharded(accelerator) -> bool:
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _is_shapesworld(data_dir: str | None) -> bool:
    return bool(data_dir) and (Path(data_dir) / "shapesworld.json").exists()


# ----------------------------------------------------------------------------------------------------------- setup


def setup_accelerator(args) -> Accelerator:
    """The `Accelerator` of the run, logging per process (the main one logs), TF32, the global seed."""
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        cpu=_multi_process_without_accelerator(),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / args.logging_dir)),
    )
    _sharding_on_cpu(accelerator)
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
    return accelerator


def prepare_output_dir(args, accelerator) -> None:
    """Before the (long) model loading and data scanning: refuse an output folder that holds another run or cannot
    be written, rather than failing (or overwriting that run) at the end; clear it with `--overwrite_output_dir`."""
    output_dir = Path(args.output_dir)
    previous_run = check_output_dir(args)
    if accelerator.is_main_process:
        if previous_run and args.overwrite_output_dir:
            clear_output_dir(output_dir, keep=[args.latents_cache_dir], logging_dir=args.logging_dir)
            logger.info(f"--overwrite_output_dir: removed the previous run in {output_dir}.", main_process_only=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        checkpointing.remove_incomplete_checkpoints(output_dir)
    accelerator.wait_for_everyone()


def load_models(args, accelerator):
    """The components (VAE and umT5 frozen, on the device) with the transformer set up to train per `--trainable`."""
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
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
        load_lora_weights(build_pipeline(components), args.fuse_lora_weights, adapter_name="init")
        components.transformer.fuse_lora(lora_scale=1.0)
        components.transformer.unload_lora()
        logger.info(f"Fused the LoRA {args.fuse_lora_weights} into the starting transformer.", main_process_only=True)
    if args.text_ffn == "shared":
        components.transformer = components.transformer.with_shared_text_ffn()
    elif args.text_ffn == "expert" and components.transformer.config.text_ffn != "expert":
        raise ValueError("--text_ffn expert: the starting model has shared FFNs; start from a Wan or expert model.")
    components.vae.requires_grad_(False).eval()
    components.text_encoder.requires_grad_(False).eval()
    components.vae.to(accelerator.device, dtype=encoder_dtype)
    components.text_encoder.to(accelerator.device, dtype=encoder_dtype)

    transformer = components.transformer
    if args.reinit_modules:
        replaced = reinit_modules(transformer, args.reinit_modules, seed=args.seed)
        logger.info(f"Re-initialised {len(replaced)} tensors of {', '.join(args.reinit_modules)}.",
                    main_process_only=True)
    lora_targets = [t.strip() for t in args.lora_target_modules.split(",")] if args.lora_target_modules else None
    if args.trainable == "lora" and components.source_kind == "wan" and lora_targets is None:
        # A model fresh from Wan has a zero text head; a LoRA that cannot reach it would leave the text logits
        # uniform forever. Adapt the head too (its LoRA starts as a no-op like every other).
        lora_targets = list(DEFAULT_LORA_TARGETS) + ["text_head.linear"]
        logger.info("Starting from Wan with --trainable lora: adding text_head.linear to the LoRA targets.",
                    main_process_only=True)
    if args.trainable == "lora":
        # diffusers' recipe: the frozen base in the mixed-precision dtype (but the modules the model keeps in fp32,
        # e.g. norms and time embedders, stay fp32), the adapters in fp32.
        _cast_frozen_base(transformer, accelerator.device, weight_dtype)
    configure_trainable(transformer, args.trainable, args.lora_rank, args.lora_alpha, args.lora_dropout,
                               lora_targets)
    if args.trainable == "lora":
        cast_training_params(transformer, dtype=torch.float32)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    counts = count_parameters(transformer)
    logger.info(f"Transformer: {counts['total'] / 1e6:.2f}M parameters, {counts['trainable'] / 1e6:.3f}M "
                f"trainable ({args.trainable}).", main_process_only=True)
    return components, counts


# ------------------------------------------------------------------------------------------------------------ data


@dataclasses.dataclass
class TrainingData:
    dataset: VideoTextTrainDataset
    sampler: EpochSampler
    dataloader: torch.utils.data.DataLoader
    eval_batch: dict  # a fixed batch: the losses are measured on it before and after training
    validation_rows: Any  # held-out rows captioned by `validate` (None: no validation)
    preprocessing: VideoPreprocessing
    summary: Any  # univigu.data.DataSummary: what was kept and skipped
    cache_info: dict | None  # the latent cache's info (None: encoded on the fly)


def load_data(args, components, accelerator) -> TrainingData:
    """The usable training rows (bad samples skipped and counted), the latent cache if asked, validation rows, the
    seeded loader and the fixed evaluation batch."""
    raw = load_video_text_dataset(
        args.train_data_dir, args.dataset_name, args.dataset_config_name, args.dataset_split, args.video_column,
        args.cache_dir, text_columns=[args.caption_column, args.condition_column],
        allow_external_video_paths=args.allow_external_video_paths,
    )
    condition_column = args.condition_column
    if condition_column not in raw.column_names:
        logger.warning(f"No column {condition_column!r}: the umT5 condition of generation/joint views will be the "
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
            raw, args.latents_cache_dir, components.vae, components.text_encoder, components.tokenizer,
            preprocessing, args.video_column, condition_column, components.latent_normalization,
            args.max_sequence_length, overwrite=args.overwrite_latents_cache, accelerator=accelerator,
            batch_size=args.cache_batch_size, progress=accelerator.is_local_main_process,
        )
        paths = raw[args.video_column]
        for index, reason in sorted(cache_problems.items()):
            if index not in problems:
                problems[index] = reason
                logger.warning(f"Skipping {row_label(paths[index], index)}: {reason}", main_process_only=True)
        # Training reads cached latents: the text encoder is not needed on the device any more.
        components.text_encoder.to("cpu")
    rows, summary = select_usable(raw, problems, args.video_column)
    logger.info(f"Data: {summary.describe()}.", main_process_only=True)
    rows, validation_rows = _split_validation(args, rows, preprocessing)

    dataset = VideoTextTrainDataset(rows, args.caption_column, condition_column, args.video_column, preprocessing,
                                    cache)
    sampler = EpochSampler(len(dataset), seed=args.seed)
    collate = make_collate_fn(components.tokenizer, args.max_text_length, args.max_sequence_length, args.text_padding)
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=args.train_batch_size, sampler=sampler, collate_fn=collate,
        num_workers=args.dataloader_num_workers,
        drop_last=len(dataset) >= args.train_batch_size * accelerator.num_processes,
    )
    eval_batch = collate([dataset[i] for i in range(min(args.eval_batch_size, len(dataset)))])
    return TrainingData(dataset, sampler, dataloader, eval_batch, validation_rows, preprocessing, summary, cache_info)


def _split_validation(args, rows, preprocessing):
    """`(training rows, validation rows or None)`: the usable videos of `--validation_data_dir`, or the last
    `--num_validation_videos` training rows held out (when `--validation_steps` asks for validation)."""
    if args.validation_data_dir:
        val_raw = load_video_text_dataset(
            args.validation_data_dir, video_column=args.video_column, text_columns=[args.caption_column],
            allow_external_video_paths=args.allow_external_video_paths, flag="--validation_data_dir",
        )
        val_problems = find_bad_samples(val_raw, args.video_column, [args.caption_column], preprocessing,
                                        warn=False)
        validation_rows, _ = select_usable(val_raw, val_problems, args.video_column)
        return rows, validation_rows.select(range(min(args.num_validation_videos, len(validation_rows))))
    if args.num_validation_videos > 0 and args.validation_steps:
        if len(rows) <= args.num_validation_videos:
            raise ValueError(
                f"Only {len(rows)} usable samples: cannot hold out --num_validation_videos="
                f"{args.num_validation_videos} for validation. Pass --validation_data_dir or fewer videos."
            )
        n = len(rows) - args.num_validation_videos
        return rows.select(range(n)), rows.select(range(n, len(rows)))
    return rows, None


# -------------------------------------------------------------------------------------------------- optimisation


@dataclasses.dataclass
class Optimization:
    model: Any  # the transformer as `accelerator.prepare` wrapped it
    optimizer: Any
    lr_scheduler: Any
    train_dataloader: Any
    params: list[torch.nn.Parameter]
    steps_per_epoch: int
    num_epochs: int
    loss_fn: UnifiedLoss


def prepare_optimization(args, transformer, data: TrainingData, text_scheduler, accelerator) -> Optimization:
    """AdamW (the text experts may get their own learning rate), the learning-rate schedule, `accelerator.prepare`
    and the unified loss. Sets `args.max_train_steps` from the epochs when it is not given."""
    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    params = [p for p in transformer.parameters() if p.requires_grad]
    param_groups = params
    if args.text_experts_learning_rate is not None:
        if args.scale_lr:
            args.text_experts_learning_rate *= (args.gradient_accumulation_steps * args.train_batch_size
                                                * accelerator.num_processes)
        expert_ids = {id(p) for _, p in transformer.text_expert_parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in expert_ids], "lr": args.learning_rate},
            {"params": [p for p in params if id(p) in expert_ids], "lr": args.text_experts_learning_rate},
        ]
        # --trainable text_experts leaves the first group empty; an empty group would only confuse the lr logs
        param_groups = [group for group in groups if group["params"]]
    optimizer = torch.optim.AdamW(param_groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)
    # One process's share of an epoch, as accelerate will shard the loader (recomputed after `prepare`).
    steps_per_epoch = max(1, math.ceil(math.ceil(len(data.dataloader) / accelerator.num_processes)
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
        transformer, optimizer, data.dataloader, lr_scheduler
    )
    steps_per_epoch = max(1, math.ceil(len(train_dataloader) / args.gradient_accumulation_steps))
    loss_fn = UnifiedLoss(text_scheduler, UnifiedLossConfig(
        view_ratios=tuple(args.view_ratios), text_loss_weight=args.text_loss_weight,
        video_loss_weight=args.video_loss_weight, weighting_scheme=args.weighting_scheme,
        logit_mean=args.logit_mean, logit_std=args.logit_std, mode_scale=args.mode_scale,
        flow_shift=args.flow_shift, understanding_video_noise=args.understanding_video_noise,
        text_time_power=args.text_time_power,
        num_train_timesteps=1000, understanding_attention=args.understanding_attention,
    ))
    return Optimization(model, optimizer, lr_scheduler, train_dataloader, params, steps_per_epoch,
                        math.ceil(args.max_train_steps / steps_per_epoch), loss_fn)


def init_trackers(args, accelerator) -> None:
    if accelerator.is_main_process:
        config = {k: _jsonable(v) for k, v in vars(args).items()}
        config = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v)) for k, v in config.items()}
        accelerator.init_trackers(args.tracker_project_name, config=config)


def resume(args, accelerator, history: LossHistory):
    """`(global_step, resumed_from)`: the state of `--resume_from_checkpoint` loaded (or a new run), the loss log
    cut back to that step."""
    global_step, resumed_from = 0, None
    if args.resume_from_checkpoint:
        output_dir = Path(args.output_dir)
        path = checkpointing.resolve_checkpoint(output_dir, args.resume_from_checkpoint)
        if path is None:
            logger.info(f"No checkpoint in {output_dir} to resume from: starting a new run.", main_process_only=True)
        else:
            logger.info(f"Resuming from {path}.", main_process_only=True)
            accelerator.load_state(str(path))
            global_step = int(checkpointing.read_checkpoint_state(path)["global_step"])
            resumed_from = str(path)
    if resumed_from is None:
        history.reset()
    else:
        history.truncate(global_step)
    return global_step, resumed_from


# ------------------------------------------------------------------------------------------------------------ loop


def model_inputs(batch, components, args, device):
    """(latents, prompt_embeds) of a batch: cached, or encoded now by the frozen VAE and umT5."""
    if "latents" in batch:
        return batch["latents"].to(device), batch["prompt_embeds"].to(device)
    latents = encode_videos(components.vae, batch["video"], components.latent_normalization)
    embeds = encode_prompts_padded(components.tokenizer, components.text_encoder, batch["conditions"],
                                   args.max_sequence_length)
    return latents.to(device), embeds.to(device)


def measure_losses(args, opt: Optimization, data: TrainingData, components, accelerator) -> dict[str, float]:
    """Text loss of understanding views and video loss of generation views on the fixed eval batch."""
    model, batch, device = opt.model, data.eval_batch, accelerator.device
    model.eval()
    latents, embeds = model_inputs(batch, components, args, device)
    n = latents.shape[0]
    out = {}
    with torch.no_grad(), accelerator.autocast():
        for name, view in (("text_loss_understanding", UNDERSTANDING), ("video_loss_generation", GENERATION)):
            result = opt.loss_fn(
                model, latents, batch["text_ids"].to(device), batch["text_attention_mask"].to(device), embeds,
                views=torch.full((n,), view), generator=torch.Generator().manual_seed(args.seed + 1234),
                generation_attention_mask=batch["text_token_mask"].to(device),
            )
            out[name] = float(result.text_loss if view == UNDERSTANDING else result.video_loss)
    model.train()
    return out


def validate(args, step: int, opt: Optimization, data: TrainingData, components, accelerator):
    """Captions the validation videos with the current weights (main process); None when there is nothing to do."""
    if data.validation_rows is None or len(data.validation_rows) == 0:
        return None
    if _is_sharded(accelerator):
        logger.warning("Validation captioning is skipped under FSDP/DeepSpeed (sharded weights); run "
                       "`univigu evaluate` on the saved pipeline instead.", main_process_only=True)
        return None
    if not accelerator.is_main_process:
        return None
    result = run_validation(components, accelerator.unwrap_model(opt.model), data.validation_rows, args, step,
                            Path(args.output_dir), data.preprocessing, accelerator)
    accelerator.log({f"validation/{k}": v for k, v in result["scores"].items() if isinstance(v, (int, float))},
                    step=step)
    return result


def run_validation(components, transformer, rows, args, step: int, output_dir: Path, preprocessing, accelerator):
    """Captions the validation videos (v2t) with the current transformer; writes
    `output_dir/validation/step-{step:06d}.json` with the captions, their references and the scores."""
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


def train_loop(args, global_step: int, opt: Optimization, data: TrainingData, components, history: LossHistory,
               accelerator) -> int:
    """Trains from `global_step` to `args.max_train_steps`: per step the accumulated micro-batches, the gathered
    losses logged, checkpoints and validation at their intervals. Returns the last step."""
    model, optimizer, lr_scheduler = opt.model, opt.optimizer, opt.lr_scheduler
    device, accumulation = accelerator.device, args.gradient_accumulation_steps
    total_batch = args.train_batch_size * accelerator.num_processes * accumulation
    logger.info(f"***** {args.stage}: {len(data.dataset)} samples, {opt.num_epochs} epochs, {args.max_train_steps} "
                f"steps, batch {args.train_batch_size} x {accelerator.num_processes} processes x {accumulation} "
                f"accumulation = {total_batch} *****", main_process_only=True)
    progress_bar = tqdm(range(args.max_train_steps), initial=global_step, desc="Steps",
                        disable=not accelerator.is_local_main_process)
    first_epoch = global_step // opt.steps_per_epoch
    resume_batches = (global_step % opt.steps_per_epoch) * accumulation
    micro_records: list[dict[str, float]] = []
    done = global_step >= args.max_train_steps
    for epoch in range(first_epoch, opt.num_epochs):
        if done:
            break
        data.sampler.set_epoch(epoch)
        opt.train_dataloader.set_epoch(epoch)
        loader = opt.train_dataloader
        if epoch == first_epoch and resume_batches > 0:
            loader = accelerator.skip_first_batches(opt.train_dataloader, resume_batches)
        micro_index = resume_batches if epoch == first_epoch else 0
        for batch in loader:
            micro = micro_index % accumulation
            micro_index += 1
            with accelerator.accumulate(model):
                latents, embeds = model_inputs(batch, components, args, device)
                # The draws follow the micro-batch's place in the step's global batch order (the loader gives process
                # p its micro-step m's batch at place m * processes + p), not the split into processes and
                # micro-steps. One process: slot = micro (the seeds of earlier single-process runs).
                slot = micro * accelerator.num_processes + accelerator.process_index
                generator = torch.Generator().manual_seed(step_seed(args.seed, global_step, slot, 0))
                out = opt.loss_fn(
                    model, latents, batch["text_ids"].to(device), batch["text_attention_mask"].to(device), embeds,
                    generator=generator, generation_attention_mask=batch["text_token_mask"].to(device),
                )
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and args.max_grad_norm and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters() if _is_sharded(accelerator) else opt.params,
                                                args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            micro_records.append({"loss": float(out.loss.detach()), "video_loss": float(out.video_loss),
                                  "text_loss": float(out.text_loss)})
            if not accelerator.sync_gradients:
                continue

            global_step += 1
            progress_bar.update(1)
            local = torch.tensor([[_nanmean([r[k] for r in micro_records]) for k in LOSS_KEYS]],
                                 device=device, dtype=torch.float64)
            micro_records.clear()
            gathered = accelerator.gather(local).cpu()
            record = {"step": global_step, "epoch": epoch, "lr": lr_scheduler.get_last_lr()[0]}
            for j, key in enumerate(LOSS_KEYS):
                record[key] = _nanmean(gathered[:, j].tolist())
            accelerator.log({k: v for k, v in record.items() if k != "step" and not (
                isinstance(v, float) and math.isnan(v))}, step=global_step)
            history.append(record)
            progress_bar.set_postfix(loss=f"{record['loss']:.4f}", text=f"{record['text_loss']:.3f}",
                                     lr=f"{record['lr']:.2e}")

            if args.checkpointing_steps and global_step % args.checkpointing_steps == 0:
                path = checkpointing.save_checkpoint(
                    accelerator, Path(args.output_dir), global_step, {"epoch": epoch, "stage": args.stage},
                    args.checkpoints_total_limit,
                )
                logger.info(f"Saved {path}", main_process_only=True)
            last = global_step >= args.max_train_steps
            if args.validation_steps and global_step % args.validation_steps == 0 and not last:
                validate(args, global_step, opt, data, components, accelerator)
            if last:
                done = True
                break
    progress_bar.close()
    return global_step


# ------------------------------------------------------------------------------------------------------------ save


def save_model(args, opt: Optimization, components, accelerator) -> None:
    """The result in `--output_dir` (main process): a `UniViGUPipeline` folder, or LoRA weights (with the UniViGU base
    they apply to when the run started from Wan)."""
    output_dir = Path(args.output_dir)
    sharded_state = _is_sharded(accelerator) and args.trainable != "lora"
    state_dict = accelerator.get_state_dict(opt.model) if sharded_state else None  # every process takes part
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(opt.model)
    if args.trainable == "lora":
        saved = save_lora(str(output_dir), unwrapped)
        (output_dir / "base_model.json").write_text(json.dumps(
            {"base_model": args.pretrained_model_name_or_path, "lora_weights": os.path.basename(saved),
             "load_with": "pipe = UniViGUPipeline.from_pretrained(base_model); pipe.load_lora_weights(folder)"},
            indent=2))
        if components.source_kind == "wan":
            # The LoRA needs the UniViGU base it was trained on (fresh text experts): save that too.
            build_pipeline(components, _without_adapters(unwrapped)).save_pretrained(
                str(output_dir / "base_pipeline"))
        return
    if state_dict is not None:
        fresh = UniViGUTransformer3DModel.from_config(unwrapped.config)
        fresh.load_state_dict(state_dict)
        unwrapped = fresh
    export = unwrapped.to(torch.float32)
    call_defaults = training_call_defaults(args, components.call_defaults)
    build_pipeline(components, export, call_defaults).save_pretrained(str(output_dir))


# ----------------------------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Runs one training stage; returns (and writes to `output_dir/training_summary.json`) what happened."""
    start_time = time.time()
    output_dir = Path(args.output_dir)

    # 1. Set up: devices and logging, the output folder, the models, the data, the optimiser; resume.
    accelerator = setup_accelerator(args)
    prepare_output_dir(args, accelerator)
    components, param_counts = load_models(args, accelerator)
    data = load_data(args, components, accelerator)
    opt = prepare_optimization(args, components.transformer, data, components.text_scheduler, accelerator)
    init_trackers(args, accelerator)
    history = LossHistory(output_dir / args.logging_dir / "losses.jsonl", enabled=accelerator.is_main_process)
    start_step, resumed_from = resume(args, accelerator, history)

    # 2. Train, measuring the losses on a fixed batch before and after.
    initial_losses = None
    if resumed_from is None:
        initial_losses = measure_losses(args, opt, data, components, accelerator)
        logger.info(f"Losses before training (fixed batch): {initial_losses}", main_process_only=True)
    train_start = time.time()
    global_step = train_loop(args, start_step, opt, data, components, history, accelerator)
    train_seconds = time.time() - train_start
    steps_this_run = global_step - start_step
    accelerator.wait_for_everyone()
    final_losses = measure_losses(args, opt, data, components, accelerator)
    logger.info(f"Losses after training (fixed batch): {final_losses}", main_process_only=True)
    final_validation = validate(args, global_step, opt, data, components, accelerator)  # None: no validation

    # 3. The result: a UniViGUPipeline folder (or LoRA weights), the final scores and the loss plot.
    save_model(args, opt, components, accelerator)
    summary: dict[str, Any] = {}
    if accelerator.is_main_process:
        plot_path = None
        if not args.no_loss_plot:
            plot_path = plot_losses(history.read(), output_dir / "loss.png", title=f"univigu {args.stage}")
        summary = {
            "stage": args.stage,
            "output_dir": str(output_dir),
            "trainable": args.trainable,
            "parameters": param_counts,
            "data": data.summary.to_dict(),
            "latent_cache": None if data.cache_info is None else {"dir": args.latents_cache_dir,
                                                                  "key": data.cache_info["key"]},
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
        logger.info(f"Done: {global_step} steps; wrote {output_dir}. {data.summary.describe()}.",
                    main_process_only=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def run(stage: str, argv: list[str] | None = None) -> dict[str, Any]:
    return main(parse_args(stage, argv))


__all__ = ["main", "run", "step_seed"]
