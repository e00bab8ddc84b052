# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Pretrain the ShapesWorld stand-in for Wan2.1-T2V: a stock `WanPipeline` (VAE + umT5-style encoder +
`WanTransformer3DModel`) trained once, by flow matching, for hours, resumably.

    python training/shapesworld/pretrain_base.py --vae VAE_DIR --out runs/base --world shapesworld-v2
    # stopped? run the same command again: it continues from the newest complete checkpoint, bit for bit
    # finished, and worth more steps? --extend --max-steps 20000 adds a second warm-up + cosine phase
    python training/shapesworld/pretrain_base.py --vae VAE_DIR --out runs/base --export DIR   # the WanPipeline folder
    python training/shapesworld/pretrain_base.py --vae VAE_DIR --out runs/base --export DIR --install  # ... bundled

`--export` writes the EMA weights of the newest checkpoint as a stock `WanPipeline` folder with its world
(`shapesworld.json`), its ladder scores (L1: the VAE's reconstructions; L2: its t2v, `ladder.py`), a model card and
`checksums.json`; `--install` copies that folder into the package as `univigu.toyworld.DEFAULT_BASE_MODEL`.

The recipe is written to be resumed across sessions, so the schedule depends on steps, not wall time:

- Data: `--num-clips` clips of the seeded "train" split, rendered and encoded once (VAE posterior mode, normalised
  with the VAE config's `latents_mean` / `latents_std` as WanPipeline does; prompts through the frozen umT5, the
  embeddings WanPipeline computes) into `OUT/cache/` (safetensors). The umT5 is `--text-encoder DIR`, pretrained on
  the world's prompts by `pretrain_text_encoder.py` as Wan's is on language, or a randomly initialised one.
- Flow matching as in diffusers' Wan training scripts: `x_s = (1 - s) x0 + s noise`, target `noise - x0`, `s` from a
  logit-normal density, `--null-prob` of the prompts replaced by the empty prompt's embedding (classifier-free
  guidance), AdamW with linear warm-up then cosine decay to 5% over `--max-steps`, an EMA of the weights.
- Every draw (clip indices, noise, sigmas, condition drop) comes from one CPU `torch.Generator` whose state is saved
  with each checkpoint (`OUT/checkpoints/step_N/`: model, EMA and optimizer), so a resumed run computes exactly what
  an uninterrupted one would have.
- Every `--probe-every` steps the EMA weights generate `--probe-prompts` one-object test prompts and
  the analyzer scores them (`OUT/probes.jsonl`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import UMT5EncoderModel

from univigu.toyworld.components import build_tiny_text_encoder, build_tokenizer
from univigu.toyworld.text import scene_to_prompt
from univigu.toyworld.world import WORLDS

from package import WAN_CALL, drop_config_keys, install_folder
from pretrain_generator import (
    SHAPESWORLD_SEQUENCE_LENGTH,
    build_generator,
    build_latent_cache,
    encode_prompt_batch,
    encode_prompts_trimmed,
    evaluate_generator,
    eval_scenes,
    lr_at,
    sample_sigmas,
)


CHECKPOINT_PREFIX = "step_"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vae", required=True, help="the ShapesWorld VAE folder (AutoencoderKLWan.save_pretrained)")
    p.add_argument("--out", required=True, help="run folder: cache, checkpoints, probes, args")
    p.add_argument("--world", default="shapesworld-v2", choices=tuple(WORLDS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu",
                   help="where the generator trains (cpu, cuda); the batches are drawn on the CPU from the run's "
                        "generator either way, so a run can be resumed on another device")
    p.add_argument("--num-clips", type=int, default=12000)
    p.add_argument("--max-steps", type=int, default=24000, help="the schedule's length (resume keeps it)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=float, default=0.02, help="linear warm-up, fraction of --max-steps")
    p.add_argument("--null-prob", type=float, default=0.1)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--text-dim", type=int, default=64)
    p.add_argument("--text-encoder", default=None, metavar="DIR",
                   help="the umT5 encoder the prompts go through, frozen: a folder from pretrain_text_encoder.py, "
                        "which knows which words of a prompt belong together (default: a randomly initialised one, "
                        "close to a bag of words: a frozen generator on it cannot tell which colour goes with which "
                        "shape)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--probe-every", type=int, default=2000)
    p.add_argument("--probe-prompts", type=int, default=24)
    p.add_argument("--extend", action="store_true",
                   help="continue a run past its --max-steps: pass a larger --max-steps; the learning rate warms up "
                        "again and decays over the new steps (recorded in the run's args.json as a phase)")
    p.add_argument("--stop-after-minutes", type=float, default=0.0,
                   help="checkpoint and exit after this much wall time (0: run to --max-steps)")
    p.add_argument("--export", default=None, help="write the EMA weights of the newest checkpoint as a WanPipeline "
                   "folder here (with its world, ladder scores, model card and checksums) and exit")
    p.add_argument("--export-eval-samples", type=int, default=48, help="test clips per object count in --export's "
                   "ladder scores (0: skip them)")
    p.add_argument("--save-dtype", default="float32", choices=("float32", "float16"),
                   help="with --export: the dtype the transformer's weights are stored in (float16 halves the folder; "
                   "diffusers loads them as float32 unless told otherwise, and the ladder scores the stored weights)")
    p.add_argument("--install", action="store_true", help="with --export: copy the folder into the package as "
                   "univigu.toyworld.DEFAULT_BASE_MODEL")
    return p.parse_args(argv)


# The arguments that change what is computed: a resume with other values would not continue the same run.
RUN_DEFINING = ("vae", "world", "seed", "num_clips", "max_steps", "batch_size", "lr", "warmup", "null_prob",
                "ema_decay", "width", "layers", "heads", "text_dim", "text_encoder")


def load_or_build_cache(out: Path, vae, tokenizer, text_encoder, args) -> dict[str, torch.Tensor]:
    plain = out / "cache" / f"latents_{args.world}_{args.num_clips}_{args.seed}.safetensors"
    # the clips' latents do not depend on the text encoder: a cache made with another one lends them
    path = plain.with_name(f"{plain.stem}_text-{Path(args.text_encoder).name}.safetensors") if args.text_encoder \
        else plain
    if path.exists():
        return load_file(path)
    t0 = time.time()
    if path != plain and plain.exists():
        latents = load_file(plain)["latents"]
        embeds = encode_prompts_trimmed(tokenizer, text_encoder, train_prompts(args), SHAPESWORLD_SEQUENCE_LENGTH)
    else:
        latents, embeds, _ = build_latent_cache(vae, tokenizer, text_encoder, args.num_clips, args.seed,
                                                SHAPESWORLD_SEQUENCE_LENGTH, world=args.world)
    cache = {"latents": latents.contiguous(), "embeds": embeds.contiguous()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(cache, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    print(f"cached {len(latents)} clips in {time.time() - t0:.0f} s -> {path}", flush=True)
    return cache


def train_prompts(args) -> list[str]:
    """The prompts of the cached clips, in the cache's order (the scenes drawn again from the seed, not rendered)."""
    from univigu.toyworld.dataset import sample_record
    from univigu.toyworld.world import iter_scenes

    scenes = iter_scenes(args.num_clips, split="train", seed=args.seed, version=args.world)
    return [sample_record(scene, f"{i:06d}.mp4", "train", i)["prompt"] for i, scene in enumerate(scenes)]


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a checkpoint is complete once its `state.json` is written, last)."""
    folder = out / "checkpoints"
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / "state.json").exists()] if folder.exists() else []
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(out: Path, step: int, model, ema, opt, gen: torch.Generator, ema_loss, keep: int) -> Path:
    final = out / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    save_file({f"{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)},
              tmp / "ema.safetensors")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    save_file({"rng": gen.get_state()}, tmp / "rng.safetensors")
    state = {"step": step, "ema_optimization_step": ema.optimization_step, "ema_loss": ema_loss}
    (tmp / "state.json").write_text(json.dumps(state) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model, ema, opt, gen: torch.Generator) -> dict:
    model.load_state_dict(load_file(path / "model.safetensors"))
    device = next(model.parameters()).device
    shadow = load_file(path / "ema.safetensors")
    ema.shadow_params = [shadow[f"{i}"].to(device) for i in range(len(shadow))]
    # weights_only: tensors and plain containers, nothing else is unpickled
    opt.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    gen.set_state(load_file(path / "rng.safetensors")["rng"])
    state = json.loads((path / "state.json").read_text())
    ema.optimization_step = state["ema_optimization_step"]
    return state


def schedule_lr(step: int, phases: list, args) -> float:
    """Warm-up + cosine over each phase (the first: the run; later ones: `--extend`ed continuations)."""
    start, end = next((a, b) for a, b in reversed(phases) if step >= a)
    return lr_at((step - start) / (end - start), args.lr, warmup=args.warmup)


def make_pipeline(tokenizer, text_encoder, vae, model) -> WanPipeline:
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=model,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def probe(pipe, args, step: int) -> dict:
    """Score the EMA weights on seeded one- and two-object test prompts (held-out pairs included)."""
    row = {"step": step}
    for num_objects, count in ((1, args.probe_prompts), (2, args.probe_prompts // 2)):
        scenes = eval_scenes(count, num_objects=num_objects, seed=args.seed + 555, world=args.world)
        scores = evaluate_generator(pipe, [scene_to_prompt(s) for s in scenes], scenes, 16, 5.0)
        row[f"{num_objects}obj"] = {k: round(v, 3) for k, v in scores.items() if k.endswith(("accuracy", "match"))}
    return row


MODEL_CARD = """---
library_name: diffusers
license: apache-2.0
pipeline_tag: text-to-video
tags:
- shapesworld
- wan
- text-to-video
---

# ShapesWorld stand-in for Wan2.1-T2V ({version})

A tiny text-to-video model of ShapesWorld ({version}), the synthetic world of coloured shapes that univigu uses to
run the Uni-ViGU recipe on a CPU. It plays the part Wan2.1-T2V-1.3B plays for the real model: the pretrained
generator the recipe (Knowledge Recall, then Capability Refinement) starts from. It is a stock diffusers `WanPipeline`
folder: a `WanTransformer3DModel` ({params:.2f} M parameters), an `AutoencoderKLWan` (4x spatial, 2x temporal), a
small umT5 encoder over a word-level tokenizer ({encoder}), and a flow-matching Euler scheduler.

```python
from diffusers import WanPipeline
from univigu.toyworld import DEFAULT_BASE_MODEL

pipe = WanPipeline.from_pretrained(DEFAULT_BASE_MODEL)
video = pipe("a red circle moving left", height=64, width=64, num_frames=9, num_inference_steps=24,
             guidance_scale=5.0, max_sequence_length=32).frames[0]
```

Sample it at umT5 length 32 (`max_sequence_length=32`): it was trained at that length.
The world it knows (every constant) is in `shapesworld.json`.

## Training

{steps} steps of flow matching, batch {batch_size}, AdamW lr {lr} (warm-up, cosine), EMA {ema_decay}, on {num_clips}
cached clips of the seeded train split (held-out colour-shape pairs never seen), seed {seed}:

```bash
python training/shapesworld/pretrain_base.py --vae VAE_DIR --out RUN_DIR   # resumable: run it again to continue
python training/shapesworld/pretrain_base.py --vae VAE_DIR --out RUN_DIR --export DIR
```

## Scores

The project's analyzer on {num_samples} one-object and {num_samples} two-object test clips (half with a held-out pair):

{ladder}
"""


def export(pipe: WanPipeline, folder: Path, args, step: int, out: Path) -> None:
    """The stand-in as a release: pipeline, world record, ladder scores, model card, checksums."""
    from ladder import report, score_l1, score_l2
    from univigu.pipelines.serialization import write_checksums
    from univigu.toyworld.world import WORLD_FILENAME, get_world

    pipe.transformer.to(getattr(torch, args.save_dtype))  # the ladder below loads and scores what is stored
    pipe.save_pretrained(folder)
    drop_config_keys(folder, "_name_or_path")  # a release names no folder of the machine that built it
    ladder = {}
    if args.export_eval_samples:
        ladder["L1"] = score_l1(str(folder / "vae"), args.world, args.export_eval_samples, seed=2026)
        ladder["L2"] = score_l2(str(folder), args.world, args.export_eval_samples, seed=2026,
                                steps=WAN_CALL["num_inference_steps"], guidance=WAN_CALL["guidance_scale"])
    record = {
        "world": get_world(args.world).to_dict(),
        "stand_in": {"steps": step, **json.loads((out / "args.json").read_text()), "vae": Path(args.vae).name,
                     "params": sum(p.numel() for p in pipe.transformer.parameters()), "stored_as": args.save_dtype,
                     "sample_with": WAN_CALL},
        "ladder": {rung: {str(n): scores for n, scores in rows.items()} for rung, rows in ladder.items()},
    }
    (folder / WORLD_FILENAME).write_text(json.dumps(record, indent=1) + "\n")
    tables = "\n\n".join(f"```\n{report(rung, rows)}\n```" for rung, rows in ladder.items()) or "(not scored)"
    encoder = ("pretrained on ShapesWorld's prompts by `pretrain_text_encoder.py`, then frozen" if args.text_encoder
               else "randomly initialised, frozen")
    card = MODEL_CARD.format(version=args.world, params=record["stand_in"]["params"] / 1e6, steps=step,
                             encoder=encoder,
                             batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay,
                             num_clips=args.num_clips, seed=args.seed, num_samples=args.export_eval_samples,
                             ladder=tables)
    (folder / "README.md").write_text(card)
    write_checksums(folder, world=args.world)
    print(card.split("## Scores", 1)[1])
    print(f"exported step {step} (EMA weights) to {folder}")


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args_path = out / "args.json"
    defining = {k: getattr(args, k) for k in RUN_DEFINING}
    phases = [[0, args.max_steps]]  # [first step, last step] of each learning-rate schedule
    if args_path.exists():
        saved = json.loads(args_path.read_text())
        phases = saved.get("phases", [[0, saved.get("max_steps")]])
        if args.extend and args.max_steps > saved.get("max_steps", 0):
            # a finished (or stopped) run continues with a second warm-up + cosine phase up to the new --max-steps
            phases.append([saved["max_steps"], args.max_steps])
            saved.update(max_steps=args.max_steps, phases=phases)
            args_path.write_text(json.dumps(saved, indent=1) + "\n")
        changed = {k: (saved.get(k), v) for k, v in defining.items() if saved.get(k) != v}
        if changed:
            sys.exit(f"error: {out} holds a run with other settings {changed} (saved, given); "
                     "pass the saved values to resume it (--extend with a larger --max-steps continues a run), or "
                     "another --out for a new run.")
    else:
        args_path.write_text(json.dumps({**defining, "phases": phases}, indent=1) + "\n")

    tokenizer = build_tokenizer()
    if args.text_encoder:
        text_encoder = UMT5EncoderModel.from_pretrained(args.text_encoder).eval()
        if text_encoder.config.d_model != args.text_dim:
            sys.exit(f"error: {args.text_encoder} is {text_encoder.config.d_model} wide; pass --text-dim "
                     f"{text_encoder.config.d_model} (the transformer's text_dim must match it).")
    else:
        text_encoder = build_tiny_text_encoder(vocab_size=len(tokenizer), d_model=args.text_dim, seed=args.seed,
                                               num_layers=2, num_heads=2)
    vae = AutoencoderKLWan.from_pretrained(args.vae).eval()
    model = build_generator(text_dim=args.text_dim, width=args.width, num_layers=args.layers, num_heads=args.heads,
                            seed=args.seed).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ema = EMAModel(model.parameters(), decay=args.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    gen = torch.Generator().manual_seed(args.seed)
    step, ema_loss = 0, None
    found = checkpoints(out)
    if found:
        state = load_checkpoint(found[-1], model, ema, opt, gen)
        step, ema_loss = state["step"], state["ema_loss"]
        print(f"resumed from {found[-1]} (step {step} of {args.max_steps})", flush=True)

    if args.export:
        if not found:
            sys.exit(f"error: {out} has no checkpoint to export yet.")
        if Path(args.export).exists() and any(Path(args.export).iterdir()):
            sys.exit(f"error: {args.export} exists and is not empty; pass a new folder.")
        ema.copy_to(model.parameters())
        model.eval()
        export(make_pipeline(tokenizer, text_encoder, vae, model), Path(args.export), args, step, out)
        if args.install:
            from univigu.toyworld import DEFAULT_BASE_MODEL

            install_folder(Path(args.export), Path(DEFAULT_BASE_MODEL), world=args.world)
        return

    cache = load_or_build_cache(out, vae, tokenizer, text_encoder, args)
    latents, embeds = cache["latents"], cache["embeds"]
    msl = SHAPESWORLD_SEQUENCE_LENGTH
    null = encode_prompt_batch(tokenizer, text_encoder, [""], msl)[0, : embeds.shape[1]]
    vae.to(args.device), text_encoder.to(args.device)  # the probes' pipeline runs where the generator trains
    print(f"generator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {len(latents)} clips, "
          f"{args.world}", flush=True)

    started = time.time()
    bar = tqdm(total=args.max_steps, initial=step, desc="stand-in", unit="step", mininterval=10)
    model.train()
    while step < args.max_steps:
        for g in opt.param_groups:
            g["lr"] = schedule_lr(step, phases, args)
        idx = torch.randint(0, len(latents), (args.batch_size,), generator=gen)
        x0 = latents[idx]
        cond = embeds[idx].clone()
        drop = torch.rand(args.batch_size, generator=gen) < args.null_prob
        cond[drop] = null
        cond = F.pad(cond, (0, 0, 0, msl - cond.shape[1]))
        noise = torch.randn(x0.shape, generator=gen)
        s = sample_sigmas(args.batch_size, "logit_normal", gen)
        x0, cond, noise, s = (t.to(args.device) for t in (x0, cond, noise, s))
        xt = (1 - s.view(-1, 1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1, 1) * noise
        pred = model(hidden_states=xt, timestep=s * 1000, encoder_hidden_states=cond, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.step(model.parameters())
        step += 1
        ema_loss = loss.item() if ema_loss is None else 0.99 * ema_loss + 0.01 * loss.item()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{ema_loss:.4f}")
        stop = args.stop_after_minutes and time.time() - started >= args.stop_after_minutes * 60
        if step % args.checkpoint_every == 0 or step == args.max_steps or stop:
            save_checkpoint(out, step, model, ema, opt, gen, ema_loss, args.keep_checkpoints)
        if step % args.probe_every == 0 or step == args.max_steps:
            ema.store(model.parameters())
            ema.copy_to(model.parameters())
            model.eval()
            t0 = time.time()
            row = probe(make_pipeline(tokenizer, text_encoder, vae, model), args, step)
            row.update(loss_ema=round(ema_loss, 5), probe_seconds=round(time.time() - t0, 1), time=time.time())
            ema.restore(model.parameters())
            model.train()
            with open(out / "probes.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            tqdm.write(json.dumps(row))
        if stop:
            print(f"stopped after {args.stop_after_minutes} min at step {step}; run again to continue", flush=True)
            break
    bar.close()


if __name__ == "__main__":
    main()
