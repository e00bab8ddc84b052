"""Forward time of UniViGUTransformer3DModel vs diffusers' WanTransformer3DModel on the same weights.

Measured side by side in one process, interleaved (Wan, ours, Wan, ours, ...), median of N repeats:
  1. ours with no text stream vs Wan (goal: ratio <= 1.02; the video path is Wan's computation);
  2. ours with N text tokens in the stream (the cost of understanding / joint generation).

    python benchmarks/bench_transformer.py                    # CPU, a mid-size config
    python benchmarks/bench_transformer.py --device cuda --dtype bfloat16 --full   # Wan2.1-1.3B shapes
"""

import argparse
import random
import statistics
import time

import torch
from diffusers import WanTransformer3DModel

from univigu import UniViGUTransformer3DModel
from univigu.models.parameter_report import WAN21_T2V_1_3B_CONFIG

MID_CONFIG = dict(num_attention_heads=8, attention_head_dim=64, in_channels=16, out_channels=16, text_dim=256,
                  freq_dim=64, ffn_dim=1536, num_layers=4, rope_max_seq_len=256)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--full", action="store_true", help="Wan2.1-T2V-1.3B shapes (needs a GPU)")
    parser.add_argument("--latent", default="5,16,16", help="latent frames,height,width")
    parser.add_argument("--text-tokens", default="0,32,128", help="text stream lengths to time")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1 gives stable timings on small shared CPUs; 0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if args.full:
        wan_config = {k: v for k, v in WAN21_T2V_1_3B_CONFIG.items() if k not in ("vocab_size", "text_mask_token")}
        vocab_size = WAN21_T2V_1_3B_CONFIG["vocab_size"]
    else:
        wan_config, vocab_size = MID_CONFIG, 1000
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**wan_config).eval()
    ours = UniViGUTransformer3DModel.from_wan(wan, vocab_size=vocab_size, seed=0).eval()
    wan.to(device, dtype)
    ours.to(device, dtype)

    frames, height, width = (int(x) for x in args.latent.split(","))
    x = torch.randn(1, wan_config["in_channels"], frames, height, width, device=device, dtype=dtype)
    t = torch.tensor([500.0], device=device)
    cond = torch.randn(1, 512, wan_config["text_dim"], device=device, dtype=dtype)
    video_tokens = frames * height * width // 4

    lengths = [int(n) for n in args.text_tokens.split(",")]
    runs = {"wan": lambda: wan(x, t, cond)}
    for n in lengths:
        ids = torch.randint(0, vocab_size, (1, n), device=device) if n else None
        runs[f"ours+{n}"] = (
            lambda ids=ids: ours(hidden_states=x, timestep=t, encoder_hidden_states=cond, text_ids=ids,
                                 text_timestep=torch.zeros(1, device=device) if ids is not None else None)
        )
    times = {name: [] for name in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        order = list(runs)
        for _ in range(args.repeats):
            random.shuffle(order)  # no run always goes first (caches, allocator state, frequency scaling)
            for name in order:
                times[name].append(timed(runs[name], device))

    med = {name: statistics.median(v) for name, v in times.items()}
    best = {name: min(v) for name, v in times.items()}
    print(f"device={device} dtype={args.dtype} config={'wan2.1-1.3b' if args.full else 'mid'} "
          f"video_tokens={video_tokens} repeats={args.repeats}")
    print(f"{'run':<12}{'median ms':>12}{'ratio':>8}{'best ms':>12}{'ratio':>8}")
    for name in runs:
        print(f"{name:<12}{med[name] * 1e3:>12.2f}{med[name] / med['wan']:>8.3f}"
              f"{best[name] * 1e3:>12.2f}{best[name] / best['wan']:>8.3f}")
    print(f"RATIO no-text/wan = {med['ours+0'] / med['wan']:.3f} median, {best['ours+0'] / best['wan']:.3f} best "
          "(goal <= 1.02)")


if __name__ == "__main__":
    main()
