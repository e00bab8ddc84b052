"""Peak memory of t2v and v2t at the Wan2.1-1.3B config, per memory switch.

    python benchmarks/bench_memory.py             # ESTIMATES from parameter and activation counts (no GPU needed)
    python benchmarks/bench_memory.py --measure   # on a CUDA device with a converted 1.3B folder (--model PATH)

Without a GPU this prints an estimate, marked as such: every component is built on the meta device (umT5-XXL
encoder, AutoencoderKLWan, UniViGUTransformer3DModel) and its parameter bytes counted per storage dtype; the
transformer's activations are counted from the token count (81x480x832 -> 32,760 video tokens, 128 text tokens;
guidance runs the conditional and unconditional passes one after the other, as WanPipeline does, so batch 1). The VAE decode's activation peak is not modelled (it depends on tiling): the
estimate takes diffusers' tiled decode as ~1 GiB, an assumption a GPU run should replace.
"""

from __future__ import annotations

import argparse
import time

import torch


GiB = 2**30
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu", is_encoder_decoder=False)


def parameter_bytes(module: torch.nn.Module, dtype_bytes: float) -> float:
    return sum(p.numel() for p in module.parameters()) * dtype_bytes


def components_on_meta():
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from univigu.models.parameter_report import build_on_meta

    with torch.device("meta"):
        text_encoder = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
        vae = AutoencoderKLWan()
    return {"text_encoder": text_encoder, "transformer": build_on_meta(), "vae": vae}


def transformer_activation_bytes(tokens: int, dim: int = 1536, ffn: int = 8960, batch: int = 1, bytes_per: int = 2,
                                 text_tokens: int = 128, vocab: int = 256384) -> float:
    """Live tensors of one block at inference (no autograd): the residual stream and its normed copy, q/k/v, the
    attention output (memory-efficient SDPA: no N x N matrix) and the FFN's hidden layer; plus the text logits, sampled
    in float64 by default."""
    per_token = (2 * dim + 3 * dim + dim + ffn) * bytes_per
    return batch * tokens * per_token + batch * text_tokens * vocab * (4 + 8)


def estimate():
    parts = components_on_meta()
    bf16, fp8 = 2, 1
    te = parameter_bytes(parts["text_encoder"], bf16)
    tr = parameter_bytes(parts["transformer"], bf16)
    # fp8 layerwise casting stores every cast layer in 1 byte; the skipped ones (embeddings, norms, heads, time
    # embeddings: `_skip_layerwise_casting_patterns`) stay in bf16. Computed over the same meta model.
    skip = parts["transformer"]._skip_layerwise_casting_patterns
    tr_fp8 = sum(p.numel() * (bf16 if any(s in name for s in skip) else fp8)
                 for name, p in parts["transformer"].named_parameters())
    vae = parameter_bytes(parts["vae"], 4)
    tokens = 21 * 30 * 52 + 128
    # t2v: two passes a step (CFG), each batch 1, plus the latents; v2t: one pass a step
    act_t2v = transformer_activation_bytes(tokens) + 2 * 16 * 21 * 60 * 104 * 4
    act_v2t = transformer_activation_bytes(tokens)
    vae_decode = 1.0 * GiB  # assumed, tiled (see the module docstring)
    rows = [
        ("everything on the GPU, bf16", te + tr + vae + max(act_t2v, vae_decode)),
        ("enable_model_cpu_offload", max(te, tr + act_t2v, vae + vae_decode)),
        ("model offload + fp8 transformer", max(te, tr_fp8 + act_t2v, vae + vae_decode)),
        ("model offload + fp8 + umT5 group offload (leaf)", max(0.5 * GiB, tr_fp8 + act_t2v, vae + vae_decode)),
        ("group offload (leaf) everywhere, bf16", max(0.5 * GiB, act_t2v + 0.2 * GiB, vae + vae_decode)),
    ]
    print("ESTIMATE (parameter and activation counts, not a measurement; see the docstring)")
    print(f"weights: umT5-XXL encoder {te / GiB:.2f} GiB (bf16), transformer {tr / GiB:.2f} GiB (bf16) / "
          f"{tr_fp8 / GiB:.2f} GiB (fp8 storage), VAE {vae / GiB:.2f} GiB (fp32)")
    print(f"transformer activations at 81x480x832: t2v {act_t2v / GiB:.2f} GiB, "
          f"v2t {act_v2t / GiB:.2f} GiB\n")
    print(f"{'switches':<50} {'t2v + v2t peak (GiB, est.)':>28}")
    for name, peak in rows:
        print(f"{name:<50} {peak / GiB:>28.1f}")


def measure(model: str, height: int, width: int, num_frames: int):
    from univigu import UniViGUPipeline

    device = "cuda"
    for switch in ("none", "model_cpu_offload", "fp8", "group_offload_leaf"):
        pipe = UniViGUPipeline.from_pretrained(model, dtype=torch.bfloat16)
        pipe.vae.to(torch.float32)
        pipe.vae.enable_tiling()
        if switch == "fp8":
            pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
        if switch == "group_offload_leaf":
            for component in (pipe.text_encoder, pipe.transformer):
                component.enable_group_offload(torch.device(device), offload_type="leaf_level", use_stream=True)
            pipe.vae.to(device)
        elif switch in ("model_cpu_offload", "fp8"):
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
        torch.cuda.reset_peak_memory_stats()
        start = time.time()
        video = pipe(prompt="a cat walking in the snow", height=height, width=width, num_frames=num_frames,
                     num_inference_steps=4, output_type="np").frames[0]
        t2v = time.time() - start
        start = time.time()
        pipe(video=video, task="v2t", num_inference_steps=4)
        v2t = time.time() - start
        print(f"{switch:<22} peak {torch.cuda.max_memory_allocated() / GiB:6.2f} GiB  t2v {t2v:6.1f} s  v2t {v2t:6.1f} s "
              "(4 steps each)")
        del pipe
        torch.cuda.empty_cache()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--model", default=None, help="a converted Wan2.1-1.3B UniViGU folder (with --measure)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--num-frames", type=int, default=81)
    args = parser.parse_args(argv)
    if args.measure:
        if not torch.cuda.is_available() or args.model is None:
            raise SystemExit("--measure needs a CUDA device and --model PATH (a converted 1.3B UniViGU folder).")
        measure(args.model, args.height, args.width, args.num_frames)
    else:
        estimate()


if __name__ == "__main__":
    main()
