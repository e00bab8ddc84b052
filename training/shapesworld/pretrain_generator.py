# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Stage 0 of the ShapesWorld build: the stand-in for Wan2.1-T2V, a plain diffusers text-to-video model.

    python training/shapesworld/pretrain_generator.py --vae VAE_DIR --out DIR --minutes 30

It writes a folder that stock `diffusers.WanPipeline.from_pretrained(DIR)` loads and runs: a word-level tokenizer
trained on the world's text (🤗 tokenizers), a small frozen `UMT5EncoderModel`, the ShapesWorld VAE, a
`WanTransformer3DModel` trained here by flow matching, and a `FlowMatchEulerDiscreteScheduler`.

Recipe (numbers behind it in docs/research_log.md, sessions 2 and 6):

- Data: `--num-clips` train-split clips rendered once, encoded once with the VAE (posterior mode, normalised with the
  VAE config's `latents_mean`/`latents_std` as WanPipeline does) and their prompts encoded once with the frozen umT5
  (zero-padded to WanPipeline's 512 positions). Training then reads tensors only.
- Flow matching as in diffusers' Wan training scripts: x_s = (1 - s) x0 + s noise, target noise - x0, s from
  `--weighting-scheme` (diffusers' `compute_density_for_timestep_sampling`), 10% null condition (the umT5 embedding of
  the empty prompt, what WanPipeline's CFG uses) so that classifier-free guidance works.
- AdamW, linear warm-up then cosine decay over the wall-time budget (`--minutes` is the knob).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from diffusers.training_utils import EMAModel, compute_density_for_timestep_sampling
from tqdm.auto import tqdm

from univigu.toyworld.components import build_tiny_text_encoder, build_tokenizer
from univigu.toyworld.dataset import iter_samples
from univigu.toyworld.scoring import score_generation
from univigu.toyworld.text import scene_to_prompt
from univigu.toyworld.world import sample_scene, scene_rng
from univigu.training.encoding import encode_prompts, encode_prompts_padded, encode_videos


#: The umT5 condition length ShapesWorld models are trained and sampled at. WanPipeline zero-pads prompts to its
#: `max_sequence_length` (512 by default) and the padded positions still get keys in cross-attention, so a model must
#: be sampled at the length it was trained at. ShapesWorld prompts are at most 13 tokens; 32 instead of 512 makes a
#: stage-0 step 2.4x faster (4.8 vs 2.0 steps/s, batch 32); the UniViGU checkpoint records it in its call defaults.
SHAPESWORLD_SEQUENCE_LENGTH = 32


def build_generator(text_dim: int, width: int = 128, num_layers: int = 4, num_heads: int = 4,
                    patch_size=(1, 2, 2), ffn_mult: int = 4, in_channels: int = 16, seed: int = 0):
    """The stage-0 `WanTransformer3DModel`, sized for ShapesWorld's (16, 5, 16, 16) latents."""

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return WanTransformer3DModel(
            patch_size=tuple(patch_size),
            num_attention_heads=num_heads,
            attention_head_dim=width // num_heads,
            in_channels=in_channels,
            out_channels=in_channels,
            text_dim=text_dim,
            freq_dim=64,
            ffn_dim=width * ffn_mult,
            num_layers=num_layers,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=64,
        )


def encode_prompt_batch(tokenizer, text_encoder, prompts, max_sequence_length: int):
    """umT5 embeddings exactly as WanPipeline computes them: real tokens kept, the rest zero."""
    return encode_prompts_padded(tokenizer, text_encoder, prompts, max_sequence_length)


@torch.no_grad()
def build_latent_cache(vae, tokenizer, text_encoder, num_clips: int, seed: int, max_sequence_length: int,
                       batch_size: int = 32, world: str | None = None):
    """Render, encode and keep in memory: latents (N, 16, 5, 16, 16), prompt embeddings trimmed to the longest real
    prompt (the rest of the 512 positions is zeros and restored at train time), and the prompts."""
    latents, prompts = [], []
    frames_batch = []
    samples = iter_samples(num_clips, split="train", seed=seed, version=world)
    for frames, record in tqdm(samples, total=num_clips, desc="render + encode", mininterval=5):
        frames_batch.append(frames)
        prompts.append(record["prompt"])
        if len(frames_batch) == batch_size or len(prompts) == num_clips:
            video = torch.from_numpy(np.stack(frames_batch)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
            latents.append(encode_videos(vae, video).to("cpu", torch.float32))
            frames_batch = []
    return torch.cat(latents), encode_prompts_trimmed(tokenizer, text_encoder, prompts, max_sequence_length), prompts


def encode_prompts_trimmed(tokenizer, text_encoder, prompts, max_sequence_length: int) -> torch.Tensor:
    """WanPipeline's prompt embeddings, cut after the longest prompt's tokens (the zeros beyond are restored at train
    time): what the latent cache stores."""
    embeds = encode_prompts(tokenizer, text_encoder, prompts, max_sequence_length)
    length = max(e.shape[0] for e in embeds)
    padded = torch.zeros(len(embeds), length, embeds[0].shape[-1])
    for i, e in enumerate(embeds):
        padded[i, : e.shape[0]] = e
    return padded


def eval_scenes(num_samples: int, num_objects: int, seed: int, split: str = "test", world: str | None = None):
    """Seeded scenes with a fixed object count; in "test", even indices hold a held-out colour-shape pair."""
    return [
        sample_scene(scene_rng(seed, split, i), split=split, num_objects=num_objects,
                     require_held_out=split == "test" and i % 2 == 0, version=world)
        for i in range(num_samples)
    ]


def lr_at(progress: float, base_lr: float, warmup: float = 0.03, min_frac: float = 0.05) -> float:
    if progress < warmup:
        return base_lr * max(progress / warmup, 0.01)
    p = (progress - warmup) / max(1e-8, 1 - warmup)
    return base_lr * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def sample_sigmas(n: int, scheme: str, generator: torch.Generator, logit_mean=0.0, logit_std=1.0):
    """Flow-matching times from `scheme`, drawn from `generator` (diffusers' `compute_density_for_timestep_sampling`
    draws from the global RNG, which a resumed run cannot replay; the logit-normal density is the same)."""
    if scheme == "logit_normal":
        u = torch.sigmoid(logit_mean + logit_std * torch.randn(n, generator=generator))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            u = compute_density_for_timestep_sampling(scheme, n, logit_mean=logit_mean, logit_std=logit_std,
                                                      mode_scale=1.29)
    return u.clamp(1e-4, 1.0)


@torch.no_grad()
def evaluate_generator(pipe, prompts, scenes, num_inference_steps: int, guidance_scale: float, seed: int = 0,
                       batch_size: int = 8, max_sequence_length: int = SHAPESWORLD_SEQUENCE_LENGTH) -> dict[str, float]:
    """Generate one video per prompt with the (Wan)pipeline and score it with the ShapesWorld analyzer."""
    videos = []
    for start in range(0, len(prompts), batch_size):
        out = pipe(prompt=prompts[start:start + batch_size], num_frames=9, height=64, width=64,
                   num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   max_sequence_length=max_sequence_length,
                   generator=torch.Generator().manual_seed(seed + start), output_type="np")
        videos.extend(list((np.asarray(out.frames) * 255).round().clip(0, 255).astype(np.uint8)))
    return score_generation(videos, scenes)


def train(args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    tokenizer = build_tokenizer()
    text_encoder = build_tiny_text_encoder(vocab_size=len(tokenizer), d_model=args.text_dim, seed=args.seed,
                                           num_layers=2, num_heads=2)
    device = torch.device(args.device)
    vae = AutoencoderKLWan.from_pretrained(args.vae).eval().to(device)

    cache_path = out / "cache" / f"latents_{args.num_clips}_{args.seed}.pt"
    if cache_path.exists():
        cache = torch.load(cache_path, weights_only=True)
    else:
        t0 = time.time()
        lat, emb, _ = build_latent_cache(vae, tokenizer, text_encoder, args.num_clips, args.seed,
                                           args.max_sequence_length)
        cache = {"latents": lat, "embeds": emb}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, cache_path)
        print(f"cached {len(lat)} clips in {time.time() - t0:.0f}s")
    latents, embeds = cache["latents"].to(device), cache["embeds"].to(device)
    msl = args.max_sequence_length
    null = encode_prompt_batch(tokenizer, text_encoder, [""], msl)[0, : embeds.shape[1]].to(device)
    text_encoder.to(device)

    model = build_generator(text_dim=args.text_dim, width=args.width, num_layers=args.layers, num_heads=args.heads,
                            patch_size=args.patch, seed=args.seed).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"generator: {n_params / 1e6:.2f} M params")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    # An exponential moving average of the weights is what gets saved and sampled (diffusers' EMAModel, with its
    # warm-up so that early averages do not drag in the random initialisation).
    ema = EMAModel(model.parameters(), decay=args.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=0.75) \
        if args.ema_decay > 0 else None
    gen = torch.Generator().manual_seed(args.seed)
    budget = args.minutes * 60
    history = []
    ema_loss = None
    t_start = time.time()
    step = 0
    bar = tqdm(total=int(budget), desc="stage 0 (s)", unit="s", mininterval=10)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=args.sample_shift)

    def make_pipe():
        pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=model,
                           scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    probe_scenes = eval_scenes(12, num_objects=1, seed=args.seed + 555)
    probe_prompts = [scene_to_prompt(s) for s in probe_scenes]
    last_eval = time.time()
    while True:
        elapsed = time.time() - t_start
        if elapsed >= budget or (args.max_steps and step >= args.max_steps):
            break
        # the schedule runs over the wall-time budget, or over --max-steps when that ends first
        progress = max(elapsed / budget, step / args.max_steps) if args.max_steps else elapsed / budget
        lr = lr_at(progress, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        # every draw comes from the CPU generator, so a run on another device sees the same samples and noise
        idx = torch.randint(0, len(latents), (args.batch_size,), generator=gen).to(device)
        x0 = latents[idx]
        cond = embeds[idx].clone()
        drop = (torch.rand(args.batch_size, generator=gen) < args.null_prob).to(device)
        cond[drop] = null
        cond = F.pad(cond, (0, 0, 0, msl - cond.shape[1]))
        noise = torch.randn(x0.shape, generator=gen).to(device)
        s = sample_sigmas(args.batch_size, args.weighting_scheme, gen).to(device)
        s_b = s.view(-1, 1, 1, 1, 1)
        xt = (1 - s_b) * x0 + s_b * noise
        pred = model(hidden_states=xt, timestep=s * 1000, encoder_hidden_states=cond, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), (noise - x0).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            ema.step(model.parameters())
        step += 1
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        due = (args.eval_every_minutes and time.time() - last_eval >= args.eval_every_minutes * 60) or (
            args.eval_every_steps and step % args.eval_every_steps == 0)
        if due:
            pause = time.time()
            model.eval()
            if ema is not None:
                ema.store(model.parameters())
                ema.copy_to(model.parameters())
            metrics = evaluate_generator(make_pipe(), probe_prompts, probe_scenes, 16, args.eval_cfg,
                                         max_sequence_length=msl)
            if ema is not None:
                ema.restore(model.parameters())
            model.train()
            history.append({"step": step, "seconds": round(pause - t_start, 1), "probe": metrics})
            tqdm.write(f"step {step} ({(pause - t_start) / 60:.1f} min) loss {ema_loss:.4f} probe "
                       + " ".join(f"{k}={v:.2f}" for k, v in metrics.items() if k.endswith("accuracy")))
            last_eval = time.time()
            t_start += last_eval - pause  # evaluation does not count against the budget
        if step % 50 == 0:
            history.append({"step": step, "seconds": round(time.time() - t_start, 1), "loss_ema": ema_loss, "lr": lr})
            bar.set_postfix(step=step, loss=f"{ema_loss:.4f}")
            bar.update(int(time.time() - t_start) - bar.n)
    bar.close()
    train_seconds = time.time() - t_start
    print(f"stage 0: {step} steps in {train_seconds:.0f}s ({step / train_seconds:.2f} steps/s), loss EMA {ema_loss:.4f}")

    model.eval()
    if ema is not None:
        ema.copy_to(model.parameters())
    pipe = make_pipe()
    pipe.save_pretrained(out)
    summary = {"steps": step, "train_seconds": train_seconds, "params": n_params, "loss_ema": ema_loss,
               "args": vars(args), "history": history}
    if args.eval_prompts:
        scenes = eval_scenes(args.eval_prompts, num_objects=1, seed=args.seed + 777)
        prompts = [scene_to_prompt(s) for s in scenes]
        t0 = time.time()
        summary["eval_one_object"] = evaluate_generator(pipe, prompts, scenes, args.eval_steps, args.eval_cfg,
                                                        max_sequence_length=msl)
        print("eval (one object):", json.dumps(summary["eval_one_object"]), f"{time.time() - t0:.0f}s")
    (out / "stage0_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python training/shapesworld/pretrain_generator.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vae", required=True, help="the ShapesWorld VAE folder")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=30.0, help="wall-time budget of training")
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="1 is the fastest per core for these tiny models")
    p.add_argument("--num-clips", type=int, default=4000)
    p.add_argument("--text-dim", type=int, default=64)
    p.add_argument("--max-sequence-length", type=int, default=SHAPESWORLD_SEQUENCE_LENGTH,
                   help="umT5 condition length trained at (WanPipeline's default is 512)")
    p.add_argument("--eval-every-minutes", type=float, default=0.0)
    p.add_argument("--eval-every-steps", type=int, default=0, help="probe every N steps (e.g. on a fast device)")
    p.add_argument("--device", default="cpu", help="where training runs (the build uses the CPU; cuda works too)")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--patch", type=int, nargs=3, default=(1, 2, 2))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3,
                   help="2e-3: 5e-4 learns 3x slower (docs/research_log.md, session 6)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--null-prob", type=float, default=0.1)
    p.add_argument("--ema-decay", type=float, default=0.999, help="0 disables the weight EMA")
    p.add_argument("--weighting-scheme", default="logit_normal", choices=("none", "logit_normal", "mode"))
    p.add_argument("--sample-shift", type=float, default=1.0, help="FlowMatchEulerDiscreteScheduler shift saved")
    p.add_argument("--eval-prompts", type=int, default=24)
    p.add_argument("--eval-steps", type=int, default=24)
    p.add_argument("--eval-cfg", type=float, default=5.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    train(parse_args())
