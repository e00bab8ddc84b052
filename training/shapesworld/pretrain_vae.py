# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Pretrain a tiny `AutoencoderKLWan` on ShapesWorld, quickly, on a CPU.

    python training/shapesworld/pretrain_vae.py --out DIR --minutes 10 --seed 0

Recipe (see `docs/toyworld_vae.md` for the experiments behind it):

- 4x spatial / 2x temporal compression (`dim_mult` [1, 2, 2], `temperal_downsample` [False, True]):
  (3, 9, 64, 64) -> (16, 5, 16, 16); the config's `scale_factor_spatial=4` / `scale_factor_temporal=2` tell diffusers
  pipelines the latent shapes.
- Data rendered on the fly from the seeded "train" split stream (infinite, no I/O), 5-frame clips (1 + 4: both
  chunk types of the causal encoder, half the cost of 9-frame clips) for `--minutes`; then `--finetune-minutes` on
  9-frame clips at `--finetune-lr` (fresh AdamW, warmup + cosine), without which frames 5-8 (a second encoder chunk
  on a warm causal cache) come out much worse (11 vs 24 dB on object pixels).
- Foreground-weighted MSE + L1 (object pixels weigh `--fg-weight` times more; without it the model sits on the
  all-black solution), on the posterior mode (a deterministic auto-encoder; the project encodes with `.mode()`), plus a
  tiny KL term that only keeps the latent scale in check.
- AdamW, short linear warmup then cosine decay to 5% over the time budget (the schedule follows wall time, so
  `--minutes` is the only knob), gradient clipping at 1.0.
- At the end, `latents_mean` / `latents_std` are set to the measured per-channel statistics of the encoder on
  ShapesWorld, so diffusers' `(z - latents_mean) / latents_std` gives unit-scale latents.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from tqdm.auto import tqdm

from univigu.toyworld.scoring import score_generation
from univigu.toyworld.text import scene_to_prompt
from univigu.toyworld.world import WORLDS, render_scene, sample_scene, sample_scenes
from univigu.utils import save_video_grid


def set_single_thread(threads: int = 1) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)


def build_vae(base_dim: int = 8, z_dim: int = 16, dim_mult=(1, 2, 2), temperal_downsample=(False, True),
              num_res_blocks: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=base_dim,
        z_dim=z_dim,
        dim_mult=list(dim_mult),
        num_res_blocks=num_res_blocks,
        temperal_downsample=list(temperal_downsample),
        scale_factor_spatial=2 ** (len(dim_mult) - 1),
        scale_factor_temporal=2 ** int(sum(bool(t) for t in temperal_downsample)),
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )


def to_model_input(videos: np.ndarray):
    """uint8 `(B, F, H, W, 3)` -> float `(B, 3, F, H, W)` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(videos)).float().div_(127.5).sub_(1.0)
    return x.permute(0, 4, 1, 2, 3).contiguous()


def to_uint8_videos(x) -> np.ndarray:
    """float `(B, 3, F, H, W)` in [-1, 1] -> uint8 `(B, F, H, W, 3)`."""
    x = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


class SceneStream:
    """Infinite stream of rendered training clips from the seeded "train" split (a stream of its own per seed)."""

    def __init__(self, seed: int, split: str = "train", world: str | None = None):
        self.rng = np.random.default_rng([int(seed), 1000 + int(seed)])
        self.split = split
        self.world = world

    def batch(self, batch_size: int, num_frames: int) -> np.ndarray:
        scenes = [
            sample_scene(self.rng, split=self.split, num_frames=num_frames, version=self.world)
            for _ in range(batch_size)
        ]
        return np.stack([render_scene(s) for s in scenes])


def decode_unclamped(vae, z):
    """`vae.decode(z).sample` without the final clamp to [-1, 1].

    diffusers clamps the decoder output, which zeroes the gradient of every pixel predicted below -1: once the
    decoder paints everything "blacker than black", object pixels get no gradient at all (the all-black plateau).
    Training on the unclamped output keeps a gradient everywhere.
    """
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    outs = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        outs.append(vae.decoder(x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=(i == 0)))
    vae.clear_cache()
    return torch.cat(outs, 2)


def weighted_recon_loss(recon, target, fg_weight: float, l1_weight: float = 1.0, edge_weight: float = 0.0):
    """Foreground-weighted MSE + L1: object pixels (any non-black channel in the target) weigh `fg_weight`; with
    `edge_weight`, the one-pixel band on either side of every object outline weighs that much more again (corners and
    a triangle's apex are few pixels, and a blur there is what turns a triangle into a blob for the analyzer)."""
    fg = (target > -1.0 + 1e-3).any(dim=1, keepdim=True).float()
    w = 1.0 + (fg_weight - 1.0) * fg
    if edge_weight > 0:
        frames = fg.transpose(1, 2).flatten(0, 1)  # (B * F, 1, H, W)
        dilated = F.max_pool2d(frames, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-frames, 3, stride=1, padding=1)
        edge = (dilated - eroded).view(fg.shape[0], fg.shape[2], 1, *fg.shape[3:]).transpose(1, 2)
        w = w + edge_weight * edge
    w = w / w.mean()
    diff = recon - target
    return (w * diff.pow(2)).mean() + l1_weight * (w * diff.abs()).mean()


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    err = (a - b) ** 2
    if mask is not None:
        if not mask.any():
            return float("nan")
        err = err[mask]
    mse = float(err.mean())
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def reconstruct(vae, videos: np.ndarray, batch_size: int = 8):
    """Reconstructions (uint8) and latent modes (float, raw) of uint8 videos `(B, F, H, W, 3)`."""
    recons, latents = [], []
    with torch.no_grad():
        for i in range(0, len(videos), batch_size):
            x = to_model_input(videos[i : i + batch_size])
            z = vae.encode(x).latent_dist.mode()
            y = vae.decode(z).sample
            recons.append(to_uint8_videos(y))
            latents.append(z)
    return np.concatenate(recons), torch.cat(latents)


def latent_informativeness(latents, recompute=None) -> dict[str, float]:
    """Mean pairwise L2 distance between different scenes' normalised latents, relative to the latents' norm.

    Latents are normalised per channel (the statistics of these latents), then flattened per clip. `between` is the
    mean distance between two different clips; `between_over_norm` divides by the mean clip norm (sqrt(2) ~ 1.41 for
    independent latents, ~0 when every clip has the same latent). `nn_margin` is the smallest between-clip distance
    relative to the mean one.
    """
    z = latents.float()
    mean = z.mean(dim=(0, 2, 3, 4), keepdim=True)
    std = z.std(dim=(0, 2, 3, 4), keepdim=True).clamp_min(1e-8)
    flat = ((z - mean) / std).flatten(1)
    d = torch.cdist(flat, flat)
    n = len(flat)
    off = d[~torch.eye(n, dtype=torch.bool)]
    norm = flat.norm(dim=1).mean()
    raw = z.flatten(1)
    raw_d = torch.cdist(raw, raw)[~torch.eye(n, dtype=torch.bool)]
    return {
        "between": float(off.mean()),
        "between_over_norm": float(off.mean() / norm.clamp_min(1e-8)),
        "nn_margin": float(off.min() / off.mean()),
        # Unnormalised: the distance between clips relative to the spread of a single clip's latent around its mean.
        "raw_between_over_within": float(raw_d.mean() / (raw - raw.mean(1, keepdim=True)).norm(dim=1).mean()),
    }


def evaluate(vae, videos: np.ndarray, scenes, with_analyzer: bool = True) -> dict[str, Any]:
    was_training = vae.training
    vae.eval()
    recons, latents = reconstruct(vae, videos)
    vae.train(was_training)
    fg = (videos > 0).any(-1, keepdims=True).repeat(3, -1)
    out = {"psnr": psnr(recons, videos), "psnr_obj": psnr(recons, videos, fg), "psnr_first": psnr(recons[:, :1], videos[:, :1])}
    if with_analyzer:
        scores = score_generation(list(recons), list(scenes))
        out.update({k: scores[k] for k in ("colour_accuracy", "shape_accuracy", "motion_accuracy", "extra_objects_per_sample")})
    out.update(latent_informativeness(latents))
    return out, recons, latents


def fmt(metrics: dict[str, Any]) -> str:
    keys = [("psnr", "psnr"), ("psnr_obj", "obj"), ("colour_accuracy", "col"), ("shape_accuracy", "shp"),
            ("motion_accuracy", "mot"), ("between_over_norm", "zdist")]
    return " ".join(f"{short}={metrics[k]:.3g}" for k, short in keys if k in metrics)


def set_latent_stats(vae, latents) -> None:
    z = latents.float()
    mean = z.mean(dim=(0, 2, 3, 4)).tolist()
    std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-6).tolist()
    vae.register_to_config(latents_mean=[round(m, 5) for m in mean], latents_std=[round(s, 5) for s in std])


def load_init(folder, decoder_base_dim: int | None = None, seed: int = 0):
    """The VAE saved in `folder`; with `decoder_base_dim`, the same encoder in front of a fresh decoder that wide."""
    torch.manual_seed(seed)
    vae = AutoencoderKLWan.from_pretrained(folder)
    if decoder_base_dim is None or decoder_base_dim == (vae.config.decoder_base_dim or vae.config.base_dim):
        return vae
    config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    wider = AutoencoderKLWan(**{**config, "decoder_base_dim": decoder_base_dim})
    wider.encoder.load_state_dict(vae.encoder.state_dict())
    wider.quant_conv.load_state_dict(vae.quant_conv.state_dict())
    return wider


def train(args, vae=None) -> dict[str, Any]:
    set_single_thread(args.threads)
    decoder_only = args.train_part == "decoder"
    if vae is not None:
        pass
    elif args.init:
        vae = load_init(args.init, args.decoder_base_dim if decoder_only else None, args.seed)
    elif decoder_only:
        raise ValueError("`--train-part decoder` fine-tunes the decoder of an existing VAE: pass `--init FOLDER`.")
    else:
        vae = build_vae(base_dim=args.base_dim, z_dim=args.z_dim, num_res_blocks=args.num_res_blocks, seed=args.seed)
    vae.train()
    params = sum(p.numel() for p in vae.parameters())
    if decoder_only:
        # The encoder, and so every latent a generator was trained on, stays bit for bit; only the way back to
        # pixels learns. `latents_mean` / `latents_std` are kept below for the same reason.
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    trainable = [p for p in vae.parameters() if p.requires_grad]
    # Latent noise is `latent_noise` standard deviations per latent channel: a decoder that also has to render nearby
    # latents cleanly copes better with a generator's imperfect ones.
    noise_scale = args.latent_noise * torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    opt = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    stream = SceneStream(args.seed, world=args.world)
    val_scenes = sample_scenes(args.val_samples, split="val", seed=1234, num_frames=9, version=args.world)
    val_videos = np.stack([render_scene(s) for s in val_scenes])

    budget = args.minutes * 60.0
    warmup = args.warmup_frac
    start = time.perf_counter()
    history = []
    step = 0
    bar = tqdm(total=round(budget), unit="s", desc="vae (train seconds)", mininterval=2.0)
    last_eval = start
    last_tick = start
    ema = None
    while True:
        elapsed = time.perf_counter() - start
        frac = elapsed / budget
        if frac >= 1.0:
            break
        # Learning rate follows wall time: linear warmup, cosine decay to `min_lr_frac`.
        if frac < warmup:
            lr_scale = max(frac / warmup, 0.02)
        else:
            p = (frac - warmup) / max(1.0 - warmup, 1e-8)
            lr_scale = args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p))
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale
        if frac < args.single_frame_frac:
            num_frames, batch_size = 1, args.frame_batch_size
        else:
            num_frames, batch_size = args.train_frames, args.batch_size
        x = to_model_input(stream.batch(batch_size, num_frames))
        with torch.set_grad_enabled(not decoder_only):
            posterior = vae.encode(x).latent_dist
        z = posterior.sample() if args.sample_posterior else posterior.mode()
        if args.latent_noise > 0:
            z = z + noise_scale.to(z.dtype) * torch.randn_like(z)
        recon = decode_unclamped(vae, z) if args.unclamped_loss else vae.decode(z).sample
        loss = weighted_recon_loss(recon, x, args.fg_weight, args.l1_weight, args.edge_weight)
        if args.kl_weight > 0 and not decoder_only:
            mu, logvar = posterior.mean, posterior.logvar
            loss = loss + args.kl_weight * 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        now = time.perf_counter()
        if int(now - last_tick) >= 1:
            bar.update(int(now - last_tick))
            last_tick += int(now - last_tick)
        bar.set_postfix_str(f"step={step} F={num_frames} loss={ema:.4f} lr={args.lr * lr_scale:.2e}")
        if args.eval_every_s > 0 and now - last_eval >= args.eval_every_s:
            metrics, _, _ = evaluate(vae, val_videos, val_scenes, with_analyzer=True)
            metrics.update(step=step, minutes=(now - start) / 60.0, loss=ema)
            history.append(metrics)
            tqdm.write(f"[eval] step {step} {metrics['minutes']:.1f} min loss={ema:.4f} {fmt(metrics)}")
            last_eval = time.perf_counter()
            start += last_eval - now  # evaluation time does not count against the training budget
            last_tick = last_eval
    bar.close()
    train_minutes = (time.perf_counter() - start) / 60.0

    vae.eval()
    metrics, recons, latents = evaluate(vae, val_videos, val_scenes, with_analyzer=True)
    if not decoder_only:
        # Latent statistics from a larger sample of the train distribution.
        stat_videos = stream.batch(args.stat_samples, 9)
        _, stat_latents = reconstruct(vae, stat_videos)
        set_latent_stats(vae, stat_latents)
    metrics.update(step=step, minutes=train_minutes, loss=ema, params=params)
    history.append(metrics)
    print(f"[final] step {step} {train_minutes:.1f} min train {fmt(metrics)}")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        vae.save_pretrained(args.out, safe_serialization=True)
        with open(os.path.join(args.out, "train_log.json"), "w") as f:
            json.dump({"args": vars(args), "history": history}, f, indent=1)
        if args.image:
            n = min(args.image_clips, len(val_videos))
            videos, labels = [], []
            for i in range(n):
                videos += [val_videos[i], recons[i]]
                labels += [f"original: {scene_to_prompt(val_scenes[i])}", "reconstruction"]
            save_video_grid(args.image, videos, labels)
    return {"vae": vae, "metrics": metrics, "history": history}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python training/shapesworld/pretrain_vae.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="save_pretrained folder")
    p.add_argument("--minutes", type=float, default=14.0, help="stage 1 wall-time budget (evaluation excluded)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initialisation and the clip stream")
    p.add_argument("--world", default="shapesworld-v1", choices=tuple(WORLDS), help="the ShapesWorld version")
    p.add_argument("--init", default=None, help="start from this save_pretrained folder (fine-tuning)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--train-part", choices=("all", "decoder"), default="all",
                   help="'decoder' trains only the decoder of `--init` (its latents, and any generator trained on "
                        "them, stay valid)")
    p.add_argument("--decoder-base-dim", type=int, default=None,
                   help="with --train-part decoder: replace the decoder by a fresh one this wide")
    p.add_argument("--base-dim", type=int, default=8, help="AutoencoderKLWan base_dim (width of the first stage)")
    p.add_argument("--z-dim", type=int, default=16, help="latent channels")
    p.add_argument("--num-res-blocks", type=int, default=1, help="residual blocks per stage (0 crashes in diffusers)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of stage 1")
    p.add_argument("--min-lr-frac", type=float, default=0.05, help="the cosine schedule ends at this fraction of lr")
    p.add_argument("--warmup-frac", type=float, default=0.03, help="linear warm-up, as a fraction of the budget")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip")
    p.add_argument("--fg-weight", type=float, default=20.0, help="loss weight of object pixels over background")
    p.add_argument("--l1-weight", type=float, default=1.0, help="weight of the L1 term next to the MSE")
    p.add_argument("--edge-weight", type=float, default=0.0,
                   help="extra loss weight on the one-pixel band around object outlines (0: off)")
    p.add_argument("--kl-weight", type=float, default=1e-4, help="per-latent-element KL weight")
    p.add_argument("--unclamped-loss", type=int, default=1, help="loss on the decoder output before the clamp")
    p.add_argument("--sample-posterior", action="store_true", help="train on posterior samples, not the mode")
    p.add_argument("--latent-noise", type=float, default=0.0,
                   help="decode latents with Gaussian noise of this many per-channel standard deviations added")
    p.add_argument("--single-frame-frac", type=float, default=0.0, help="fraction of the budget on single frames")
    p.add_argument("--frame-batch-size", type=int, default=8, help="batch size of the single-frame phase")
    p.add_argument("--batch-size", type=int, default=4, help="clips per step")
    p.add_argument("--train-frames", type=int, default=5, help="frames per training clip (4k+1)")
    p.add_argument("--finetune-minutes", type=float, default=4.0, help="stage 2: minutes on 9-frame clips (0: off)")
    p.add_argument("--finetune-lr", type=float, default=1e-3, help="peak learning rate of stage 2")
    p.add_argument("--val-samples", type=int, default=16, help="val clips scored at every evaluation")
    p.add_argument("--stat-samples", type=int, default=64, help="clips that set latents_mean / latents_std")
    p.add_argument("--eval-every-s", type=float, default=60.0, help="seconds of training between evaluations")
    p.add_argument("--image", default=None, help="PNG of originals vs reconstructions")
    p.add_argument("--image-clips", type=int, default=4, help="clips shown in --image")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    set_single_thread(args.threads)
    if args.finetune_minutes <= 0:
        train(args)
        return
    # Stage 1: 5-frame clips (cheap); stage 2: 9-frame clips at a lower lr, so that the second temporal chunk (frames
    # 5-8, run on a warm causal cache) is trained too.
    stage1 = argparse.Namespace(**{**vars(args), "out": None, "image": None})
    vae = train(stage1)["vae"]
    stage2 = argparse.Namespace(**{**vars(args), "minutes": args.finetune_minutes, "train_frames": 9,
                                   "lr": args.finetune_lr, "warmup_frac": 0.05, "single_frame_frac": 0.0})
    vae.train()
    train(stage2, vae=vae)


if __name__ == "__main__":
    main()
