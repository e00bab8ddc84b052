"""Peak memory of t2v and v2t at the Wan2.1-1.3B config, per memory switch.

    python benchmarks/bench_memory.py             # ESTIMATES from parameter and activation counts (no GPU needed)
    python benchmarks/bench_memory.py --measure   # MEASURED on a CUDA device: random 1.3B-config weights, no download
    python benchmarks/bench_memory.py --measure --model PATH --switch model_cpu_offload   # a converted folder, one switch

`--measure` runs each switch in its own process (peaks and hooks do not leak) and prints peak GPU memory and time of
t2v and v2t, plus, with everything on the GPU, WanPipeline against UniViGUPipeline on the same weights and noise
(time ratio and largest latent difference). The last measured table is in docs/memory.md.

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


SWITCHES = {  # in the order measured
    "none": "everything on the GPU (bf16; VAE fp32, tiled)",
    "model_cpu_offload": "enable_model_cpu_offload",
    "model_cpu_offload+fp8": "model offload + fp8 layerwise casting of the transformer",
    "group_offload_block_stream": "group offload: transformer block level, umT5 leaf level, CUDA streams",
    "group_offload_leaf_stream": "group offload, leaf level everywhere, CUDA streams",
    "fp8+group_offload_te": "fp8 transformer on the GPU, umT5 group offload (leaf, stream)",
    "sequential_cpu_offload": "enable_sequential_cpu_offload",
}
PROMPT = "a red circle moving left and a blue square moving up"
DEVICE = "cuda"


def random_pipeline(device: str = DEVICE):
    """A UniViGUPipeline at the Wan2.1-T2V-1.3B config with random weights, built on the GPU (fast init) and left on
    the CPU: umT5-XXL encoder (bf16), Wan's VAE (fp32), the Wan transformer converted with `from_wan_state_dict`
    (bf16), and a word-level tokenizer padded to umT5's 256,384 tokens. Random weights change neither the memory nor
    the time of a call. Also returns the Wan transformer (CPU, bf16) for a side-by-side WanPipeline."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
    from univigu.models.parameter_report import WAN21_T2V_1_3B_CONFIG
    from univigu.toyworld.components import build_tokenizer

    vocab = WAN21_T2V_1_3B_CONFIG["vocab_size"]
    wan_config = {k: v for k, v in WAN21_T2V_1_3B_CONFIG.items() if k not in ("vocab_size", "text_mask_token")}
    torch.manual_seed(0)
    with torch.device(device):
        text_encoder = UMT5EncoderModel(UMT5Config(**UMT5_XXL)).to(torch.bfloat16).eval()
        text_encoder.to("cpu")
        wan = keep_in_fp32_like_from_pretrained(WanTransformer3DModel(**wan_config).to(torch.bfloat16)).eval()
        wan.to("cpu")
        vae = AutoencoderKLWan().eval().to("cpu")
    # the conversion draws the new text table from a CPU generator: outside the device context
    transformer = UniViGUTransformer3DModel.from_wan_state_dict(dict(wan.config), wan.state_dict(), vocab_size=vocab,
                                                                 seed=0)
    transformer = keep_in_fp32_like_from_pretrained(transformer.to(dtype=torch.bfloat16)).eval()
    with torch.no_grad():  # from_wan leaves the text head zero: give it weights so that captions depend on the video
        transformer.text_head.linear.weight.normal_(0, 0.02)
    torch.cuda.empty_cache()
    pipe = UniViGUPipeline(
        tokenizer=build_tokenizer(vocab_size=vocab, model_max_length=512), text_encoder=text_encoder, vae=vae,
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        text_scheduler=DiscreteFlowScheduler(vocab_size=vocab),
    )
    return pipe, wan


def keep_in_fp32_like_from_pretrained(model):
    """`from_pretrained(dtype=torch.bfloat16)` keeps a model's `_keep_in_fp32_modules` in float32: do the same."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, param in model.named_parameters():
        if any(k in name.split(".") for k in keep):
            param.data = param.data.float()
    return model


def group_offload(module, device, **kwargs):
    """diffusers models have `enable_group_offload`; the umT5 encoder (a transformers model) takes the same hook."""
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(module, onload_device=device, **kwargs)


def apply_switch(pipe, switch: str, device: str = DEVICE):
    dev = torch.device(device)
    if "fp8" in switch:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    if switch == "none":
        pipe.to(device)
    elif switch.startswith("model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=device)
    elif switch == "fp8+group_offload_te":
        group_offload(pipe.text_encoder, dev, offload_type="leaf_level", use_stream=True)
        pipe.transformer.to(device)
        pipe.vae.to(device)
    elif switch == "group_offload_block_stream":
        group_offload(pipe.text_encoder, dev, offload_type="leaf_level", use_stream=True)
        pipe.transformer.enable_group_offload(dev, offload_type="block_level", num_blocks_per_group=1,
                                              use_stream=True)
        pipe.vae.to(device)
    elif switch == "group_offload_leaf_stream":
        for component in (pipe.text_encoder, pipe.transformer):
            group_offload(component, dev, offload_type="leaf_level", use_stream=True)
        pipe.vae.to(device)
    elif switch == "sequential_cpu_offload":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        raise ValueError(f"unknown switch {switch!r}; one of {sorted(SWITCHES)}")
    pipe.vae.enable_tiling()


def _timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def measure_switch(switch: str, model, height: int, width: int, num_frames: int, steps: int) -> dict:
    from univigu import UniViGUPipeline

    if model is None:
        pipe, wan = random_pipeline()
    else:
        pipe, wan = UniViGUPipeline.from_pretrained(model, dtype=torch.bfloat16), None
        pipe.vae.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    apply_switch(pipe, switch)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    size = dict(height=height, width=width, num_frames=num_frames)
    result = {"switch": switch, "steps": steps, **size}
    video, result["t2v_s"] = _timed(lambda: pipe(prompt=PROMPT, num_inference_steps=steps, output_type="np",
                                                 generator=torch.Generator().manual_seed(0), **size).frames[0])
    result["t2v_peak_gib"] = torch.cuda.max_memory_allocated() / GiB
    torch.cuda.reset_peak_memory_stats()
    _, result["v2t_s"] = _timed(lambda: pipe(video=video, task="v2t", num_inference_steps=steps,
                                                   max_text_length=128, generator=torch.Generator().manual_seed(0),
                                                   **size).text[0])
    result["v2t_peak_gib"] = torch.cuda.max_memory_allocated() / GiB
    result["peak_gib"] = max(result["t2v_peak_gib"], result["v2t_peak_gib"])
    result["finite_video"] = bool(torch.isfinite(torch.as_tensor(video)).all())
    if switch == "none" and wan is not None:
        result.update(side_by_side(pipe, wan, size, steps))
    return result


def side_by_side(pipe, wan, size: dict, steps: int) -> dict:
    """t2v latents of WanPipeline and of UniViGUPipeline (text stream off, and joint t2vt) on the same weights and
    noise, on the GPU in bf16: seconds per call (`output_type="latent"`, after one warm-up call) and the largest
    difference of the video latents."""
    from diffusers import WanPipeline

    wan_pipe = WanPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae,
                           transformer=wan.to(DEVICE), scheduler=pipe.scheduler)
    wan_pipe.set_progress_bar_config(disable=True)
    kwargs = dict(prompt=PROMPT, num_inference_steps=steps, output_type="latent", **size)
    runs = {
        "wan": lambda: wan_pipe(generator=torch.Generator().manual_seed(0), **kwargs).frames,
        "univigu_text_off": lambda: pipe(generator=torch.Generator().manual_seed(0), text_stream=False,
                                         **kwargs).frames,
        "univigu_t2vt": lambda: pipe(task="t2vt", generator=torch.Generator().manual_seed(0), max_text_length=128,
                                     **kwargs).frames,
    }
    out, latents = {}, {}
    for name, fn in runs.items():
        fn()  # warm-up
        latents[name], out[f"{name}_latent_s"] = _timed(fn)
    out["text_off_vs_wan_max_abs_diff"] = (latents["univigu_text_off"].float() - latents["wan"].float()).abs().max().item()
    out["text_off_vs_wan_time_ratio"] = out["univigu_text_off_latent_s"] / out["wan_latent_s"]
    out["t2vt_vs_wan_time_ratio"] = out["univigu_t2vt_latent_s"] / out["wan_latent_s"]
    return out


def measure(model, height: int, width: int, num_frames: int, steps: int, switches, json_out=None, timeout=300):
    """Each switch in its own process, so that peaks and hooks do not leak from one to the next."""
    import json
    import subprocess
    import sys

    results = []
    for switch in switches:
        cmd = [sys.executable, __file__, "--measure", "--switch", switch, "--height", str(height), "--width",
               str(width), "--num-frames", str(num_frames), "--steps", str(steps)]
        if model is not None:
            cmd += ["--model", model]
        start = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{switch}: timed out after {timeout} s", flush=True)
            results.append({"switch": switch, "error": f"timed out after {timeout} s"})
            continue
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{switch}: failed after {time.time() - start:.0f} s\n{proc.stderr[-3000:]}", flush=True)
            results.append({"switch": switch, "error": proc.stderr[-500:]})
        else:
            result = json.loads(lines[-1][len("RESULT "):])
            result["process_s"] = time.time() - start
            results.append(result)
            print(json.dumps(result), flush=True)
        if json_out:
            with open(json_out, "w") as f:
                json.dump(results, f, indent=2)
    print(f"\nMEASURED on {torch.cuda.get_device_name()} ({num_frames}x{height}x{width}, {steps} steps per call, "
          "guidance 5 for t2v, caption length 128)")
    print(f"{'switch':<28} {'t2v peak':>9} {'v2t peak':>9} {'t2v s':>7} {'v2t s':>7}")
    for r in results:
        if "error" in r:
            print(f"{r['switch']:<28} failed")
        else:
            print(f"{r['switch']:<28} {r['t2v_peak_gib']:>9.2f} {r['v2t_peak_gib']:>9.2f} {r['t2v_s']:>7.1f} "
                  f"{r['v2t_s']:>7.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--model", default=None, help="a converted Wan2.1-1.3B UniViGU folder (with --measure; "
                        "default: random weights at that config, built on the GPU, no download)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--num-frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per measured call")
    parser.add_argument("--switch", action="append", choices=list(SWITCHES),
                        help="measure only these (repeatable); default: all")
    parser.add_argument("--json", default=None, help="also write the measured rows here")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per switch (its own process)")
    args = parser.parse_args(argv)
    if args.measure:
        if not torch.cuda.is_available():
            raise SystemExit("--measure needs a CUDA device; without one this script prints the estimate.")
        if args.switch and len(args.switch) == 1 and args.json is None:  # a child process of `measure`
            import json

            print("RESULT " + json.dumps(measure_switch(args.switch[0], args.model, args.height, args.width,
                                                        args.num_frames, args.steps)))
        else:
            measure(args.model, args.height, args.width, args.num_frames, args.steps, args.switch or list(SWITCHES),
                    args.json, args.timeout)
    else:
        estimate()


if __name__ == "__main__":
    main()
