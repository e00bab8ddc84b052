#!/usr/bin/env python
# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Peak memory of ONE LoRA training step of UniViGU at the full Wan2.1-T2V-1.3B config (30 blocks, dim 1536,
ffn 8960, umT5 vocabulary 256,384), random weights, bf16 base, a 1-latent-frame clip, on CPU.

The step runs in a fresh subprocess that reports its resident memory (VmRSS) and high-water mark (VmHWM, reset
between phases through /proc/self/clear_refs) after building the model, adding the LoRA, the forward pass, the
backward pass and the optimizer step. The goal: a peak <= 12 GB, so that a 24 GB consumer GPU fits the step with
room for real clip lengths.

    python benchmarks/bench_training_memory.py                      # 480 x 832, 1 latent frame, 128 text tokens
    python benchmarks/bench_training_memory.py --height 240 --width 416 --no-gradient-checkpointing

Compute dtype. Base weights are STORED in bf16. `--compute fp32-upcast` (default) runs every layer in fp32 by
upcasting its weight on the fly (diffusers' layerwise casting): CPUs without AVX512-BF16/AMX multiply bf16 at
<1 GFLOP/s (0.74 measured on this machine's AMD EPYC), so a true bf16 step would take hours here. The fp32 path is
an upper bound of a bf16 step's memory: activations are fp32 (2x bf16), and a layer's weight exists in fp32 while
it computes (autograd also keeps the fp32 copy of a layer outside the checkpointed blocks, i.e. text_head.linear,
until backward). The report gives those terms separately. `--compute bf16` runs true bf16 on CPUs that have it.

RSS is read with glibc's mmap threshold fixed at 128 KiB (`MALLOC_MMAP_THRESHOLD_`), so that freed tensors leave
the resident set; `--default-malloc` keeps glibc's adaptive threshold, whose retained heap inflates RSS.

Without the VAE and umT5 (latents and the 512 x 4096 condition are given, as with --latents_cache_dir).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
GB = 1024**3


def _status():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                values[key] = int(value.split()[0]) * 1024
    return values


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(args) -> dict:
    sys.path.insert(0, str(REPO / "src"))
    import torch

    torch.set_num_threads(args.threads)
    from diffusers.hooks import apply_layerwise_casting
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    from univigu.models import UniViGUTransformer3DModel
    from univigu.models.parameter_report import WAN21_T2V_1_3B_CONFIG
    from univigu.schedulers import DiscreteFlowScheduler
    from univigu.training.losses import JOINT, UnifiedLoss, UnifiedLossConfig
    from univigu.training.components import DEFAULT_LORA_TARGETS

    phases = {}
    can_reset = _reset_peak()

    def mark(name):
        s = _status()
        phases[name] = {"rss_gb": round(s["VmRSS"] / GB, 3), "peak_gb": round(s["VmHWM"] / GB, 3),
                        "seconds": round(time.time() - start, 1)}
        print(f"[{phases[name]['seconds']:7.1f}s] {name:28s} rss {phases[name]['rss_gb']:6.2f} GB  "
              f"peak {phases[name]['peak_gb']:6.2f} GB", file=sys.stderr, flush=True)
        _reset_peak()

    start = time.time()
    mark("imports")

    # 1. The model in bf16 straight away (no fp32 copy ever exists): build on meta with bf16 as the default dtype.
    config = dict(WAN21_T2V_1_3B_CONFIG)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("meta"):
        model = UniViGUTransformer3DModel(**config)
    torch.set_default_dtype(torch.float32)
    model.to_empty(device="cpu")
    model.rope = WanRotaryPosEmbed(config["attention_head_dim"], config["patch_size"], config["rope_max_seq_len"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, 0.02, generator=generator)
    # Small modules that must compute in fp32 (norms feed their dtype forward; time embedders) are stored in fp32.
    keep = ("norm", "time_embedder")
    for name, module in model.named_modules():
        if any(k in name.split(".")[-1] for k in keep):
            module.to(torch.float32)
    weight_bytes = {}
    for name, param in model.named_parameters():
        group = ("vocab_embed" if name.startswith("vocab_embed") else "text_head" if name.startswith("text_head")
                 else "ffn_t" if ".ffn_t." in name else "wan_base")
        weight_bytes[group] = weight_bytes.get(group, 0) + param.numel() * param.element_size()
    num_params = sum(p.numel() for p in model.parameters())
    mark("model built (bf16 weights)")

    if args.compute == "fp32-upcast":
        compute_dtype = torch.float32
        apply_layerwise_casting(model, storage_dtype=torch.bfloat16, compute_dtype=torch.float32,
                                skip_modules_pattern=("norm", "time_embedder", "vocab_embed"))
        model.vocab_embed.register_forward_hook(lambda module, inputs, output: output.float())
    else:
        compute_dtype = torch.bfloat16

    # 2. LoRA on attention + ffn_t, adapters in fp32; AdamW over them.
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank, init_lora_weights="gaussian",
                                 target_modules=list(DEFAULT_LORA_TARGETS)))
    cast_training_params(model, dtype=torch.float32)
    lora_params = [p for p in model.parameters() if p.requires_grad]
    num_lora = sum(p.numel() for p in lora_params)
    optimizer = torch.optim.AdamW(lora_params, lr=1e-4)
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    mark("LoRA added")

    # 3. One clip: 1 latent frame at height x width, its umT5 condition, a text of text_length tokens (joint view:
    #    both streams noised, so both losses and both heads are exercised).
    h, w = args.height // 8, args.width // 8
    latents = torch.randn(1, 16, 1, h, w, generator=generator)
    prompt_embeds = torch.randn(1, args.context_length, 4096, generator=generator).to(compute_dtype)
    text_ids = torch.randint(0, config["vocab_size"], (1, args.text_length), generator=generator)
    loss_fn = UnifiedLoss(DiscreteFlowScheduler(vocab_size=config["vocab_size"]), UnifiedLossConfig())
    tokens = (h // 2) * (w // 2)
    mark("inputs ready")

    inputs = loss_fn.prepare(latents, text_ids, None, prompt_embeds, views=torch.tensor([JOINT]),
                             generator=torch.Generator().manual_seed(1))
    kwargs = inputs.model_kwargs()
    kwargs["hidden_states"] = kwargs["hidden_states"].to(compute_dtype)
    kwargs["encoder_hidden_states"] = kwargs["encoder_hidden_states"].to(compute_dtype)
    from univigu.training.losses import compute_unified_loss

    out = model(**kwargs)
    loss = compute_unified_loss(out.sample, out.text_logits, inputs, loss_fn.config)
    del out
    mark("forward")
    loss.loss.backward()
    mark("backward")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    mark("optimizer step")

    fp32_text_head = 2 * weight_bytes["text_head"] if args.compute == "fp32-upcast" else 0
    peak = max(p["peak_gb"] for p in phases.values())
    return {
        "config": "Wan2.1-T2V-1.3B + UniViGU text stream (vocab 256,384)",
        "clip": {"latent_frames": 1, "height": args.height, "width": args.width, "video_tokens": tokens,
                 "text_tokens": args.text_length, "umT5_context": args.context_length},
        "compute": args.compute,
        "gradient_checkpointing": args.gradient_checkpointing,
        "threads": args.threads,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", "glibc default (adaptive)"),
        "parameters": num_params,
        "lora_parameters": num_lora,
        "weights_gb": {k: round(v / GB, 3) for k, v in weight_bytes.items()} | {
            "total": round(sum(weight_bytes.values()) / GB, 3)},
        "lora_and_adam_gb": round(num_lora * 4 * 4 / GB, 3),  # weights + grads + 2 Adam moments, fp32
        "fp32_copy_of_text_head_kept_for_backward_gb": round(fp32_text_head / GB, 3),
        "phases": phases,
        "peak_rss_gb": peak,
        "peak_reset_per_phase": can_reset,
        "loss": {"total": float(loss.loss.detach()), "video": float(loss.video_loss), "text": float(loss.text_loss)},
        "seconds": round(time.time() - start, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--text-length", dest="text_length", type=int, default=128)
    parser.add_argument("--context-length", dest="context_length", type=int, default=512)
    parser.add_argument("--lora-rank", dest="lora_rank", type=int, default=16)
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument("--compute", choices=("fp32-upcast", "bf16"), default="fp32-upcast")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--default-malloc", dest="default_malloc", action="store_true",
                        help="Keep glibc's adaptive mmap threshold (RSS then also counts freed heap memory that "
                             "glibc keeps: ~2 GB more at 240x416).")
    parser.add_argument("--json", default=None, help="Also write the result here.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    cmd = [sys.executable, __file__, "--child"] + [a for a in sys.argv[1:] if not a.startswith("--json")]
    if args.json:
        cmd = [a for a in cmd if a != args.json]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if not args.default_malloc:
        # Large blocks straight from mmap, returned to the OS when freed: RSS then follows the live tensors instead
        # of glibc's retained heap (the CPU analogue of reading a GPU's allocated, not reserved, memory).
        env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True)
    if proc.returncode != 0:
        sys.exit(f"the measuring subprocess failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))
    goal = 12.0
    print(f"\npeak RSS of one LoRA step: {result['peak_rss_gb']:.2f} GB (goal <= {goal} GB: "
          f"{'met' if result['peak_rss_gb'] <= goal else 'NOT met'}); weights alone "
          f"{result['weights_gb']['total']:.2f} GB", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
