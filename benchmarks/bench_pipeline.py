"""Wall time of UniViGUPipeline vs diffusers' WanPipeline on the same weights, and of video captioning.

Both pipelines share every component (tokenizer, umT5 encoder, VAE, scheduler); UniViGU's transformer is made from
the Wan one with `UniViGUTransformer3DModel.from_wan`. Runs are interleaved (Wan, ours-off, ours-on, Wan, ...) and
the best (minimum) and the median of `--repeats` are reported, so that machine load drifts affect all variants alike
(on a shared CPU the minimum is the steadier figure; ratios are given for both).

  1. t2v, text stream off (`text_stream=False`, exactly Wan's computation): goal ratio <= 1.03.
  2. t2v, text stream on (the prompt's tokens in the stream, as in the reference).
  3. v2t: caption tokens per transformer forward (= max_text_length / steps, one forward per step) and wall time per
     caption for several step counts.

    python benchmarks/bench_pipeline.py                     # CPU, a mid-size transformer
    python benchmarks/bench_pipeline.py --device cuda --layers 8 --frames 33 --size 256
"""

import argparse
import statistics
import time

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
from univigu.toyworld.components import build_tiny_components


def timed(fn, device):
    """Wall time of `fn()`; also records the process CPU time in `timed.cpu` (steadier on a shared CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    timed.cpu = time.process_time() - cpu_start
    return time.perf_counter() - start


def build(args, device, dtype):
    components = build_tiny_components(0)
    text_dim = components["text_encoder"].config.d_model
    torch.manual_seed(0)
    wan_transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=args.heads,
        attention_head_dim=args.head_dim,
        in_channels=16,
        out_channels=16,
        text_dim=text_dim,
        freq_dim=64,
        ffn_dim=args.ffn_dim,
        num_layers=args.layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=256,
    ).eval()
    tokenizer = components["tokenizer"]
    transformer = UniViGUTransformer3DModel.from_wan(wan_transformer, vocab_size=len(tokenizer), seed=0).eval()
    shared = dict(
        tokenizer=tokenizer,
        text_encoder=components["text_encoder"].to(device, dtype),
        vae=components["vae"].to(device),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    wan = WanPipeline(transformer=wan_transformer.to(device, dtype), **shared)
    ours = UniViGUPipeline(
        transformer=transformer.to(device, dtype),
        text_scheduler=DiscreteFlowScheduler(vocab_size=len(tokenizer)),
        **shared,
    )
    for pipe in (wan, ours):
        pipe.set_progress_bar_config(disable=True)
    params = sum(p.numel() for p in wan_transformer.parameters())
    return wan, ours, params


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest for small models here)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--ffn-dim", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=128, help="height = width in pixels")
    parser.add_argument("--steps", type=int, default=10, help="t2v denoising steps")
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--text-length", type=int, default=64, help="v2t caption length")
    parser.add_argument("--v2t-steps", default="8,16,32,64")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    wan, ours, params = build(args, device, dtype)
    prompt = "a red circle moving left and a blue square staying still"
    latent_tokens = ((args.frames - 1) // 4 + 1) * (args.size // 16) ** 2
    prompt_tokens = len(wan.tokenizer(prompt).input_ids)
    print(
        f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} | Wan transformer "
        f"{args.layers} layers x {args.heads} heads x {args.head_dim}, ffn {args.ffn_dim} "
        f"({params / 1e6:.1f}M params) | "
        f"video {args.frames}x{args.size}x{args.size} -> {latent_tokens} video tokens, prompt {prompt_tokens} tokens | "
        f"{args.steps} steps, guidance {args.guidance}"
    )

    # ---- t2v: end to end (np output, VAE decode included) and denoising only (latent output)
    for output_type in ("latent", "np"):
        common = dict(
            num_frames=args.frames, height=args.size, width=args.size, num_inference_steps=args.steps,
            guidance_scale=args.guidance, output_type=output_type, max_sequence_length=64,
        )
        variants = {
            "wan": lambda: wan(prompt, generator=torch.Generator().manual_seed(0), **common),
            "ours_stream_off": lambda: ours(
                prompt, generator=torch.Generator().manual_seed(0), text_stream=False, **common
            ),
            "ours_stream_on": lambda: ours(prompt, generator=torch.Generator().manual_seed(0), **common),
        }
        for fn in variants.values():  # warm-up
            fn()
        times = {name: [] for name in variants}
        cpu = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, fn in variants.items():
                times[name].append(timed(fn, device))
                cpu[name].append(timed.cpu)
        med = {name: statistics.median(v) for name, v in times.items()}
        best = {name: min(v) for name, v in times.items()}
        best_cpu = {name: min(v) for name, v in cpu.items()}
        label = "denoise only (output_type='latent')" if output_type == "latent" else "end to end (output_type='np')"
        print(f"\nt2v {label}, {args.repeats} interleaved repeats; ratios vs Wan:")
        print("  variant          wall best  wall median  cpu best | ratio wall best  wall median  cpu best")
        for name in variants:
            ratios = (best[name] / best["wan"], med[name] / med["wan"], best_cpu[name] / best_cpu["wan"])
            print(
                f"  {name:16s} {best[name]:8.3f}s {med[name]:10.3f}s {best_cpu[name]:8.3f}s | "
                f"{ratios[0]:15.3f} {ratios[1]:12.3f} {ratios[2]:9.3f}"
            )

    # ---- v2t: tokens per forward and time per caption vs steps
    video = np.random.default_rng(0).random((args.frames, args.size, args.size, 3)).astype(np.float32)
    latents = ours.encode_video(ours.preprocess_video(video).to(device), mode="argmax")
    print(
        f"\nv2t: caption of {args.text_length} tokens, {latent_tokens} clean video tokens (pre-encoded latents; "
        f"VAE encode timed separately), best of {args.repeats}:"
    )
    encode = [timed(lambda: ours.encode_video(ours.preprocess_video(video).to(device)), device)
              for _ in range(args.repeats)]
    print(f"  VAE encode + preprocess: {min(encode):.3f}s")
    print("  steps  forwards  tokens/forward  s/caption  ms/forward")
    for steps in (int(s) for s in args.v2t_steps.split(",")):
        fn = lambda: ours(  # noqa: E731
            video_latents=latents, num_inference_steps=steps, max_text_length=args.text_length,
            generator=torch.Generator().manual_seed(0),
        )
        fn()
        t = min(timed(fn, device) for _ in range(args.repeats))
        print(f"  {steps:5d}  {steps:8d}  {args.text_length / steps:14.2f}  {t:9.3f}  {1000 * t / steps:10.1f}")


if __name__ == "__main__":
    main()
