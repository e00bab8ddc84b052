"""Peak memory of `univigu convert reference` (and optionally `convert wan`) at the real Wan2.1-T2V-1.3B size.

    python benchmarks/bench_conversion_memory.py [--dtype bfloat16] [--workdir /tmp/x] [--wan-scenario]

What it does, each step in its own subprocess so that peak RSS is measured per step:
  1. writes a *random* reference-layout checkpoint with the real shapes (Wan2.1-T2V-1.3B backbone: patch (1,2,2),
     12 heads x 128, in/out 16, text_dim 4096, freq_dim 256, ffn_dim 8960, 30 layers, cross_attn_norm; the umT5
     vocabulary of 256,384 rows; ffn_t per block; the FSDP infix on block keys; `rotary_emb_text.inv_freq`), as
     `torch.save({"model": ..., "step": 0})`, ~2.1B parameters: 4.3 GB in bf16;
  2. writes a Wan folder with the real transformer config and a tokenizer of 256,384 tokens (the text encoder and
     VAE are tiny stand-ins: conversion copies them as files, so their size does not change its peak);
  3. measures the peak RSS (`ru_maxrss`) of a process that only imports what the conversion imports (the baseline);
  4. measures the peak RSS of a process running `convert_reference_checkpoint` on them.
Reports peak RSS / checkpoint size (the goal is < 1.5) and the same with the import baseline subtracted.

With `--wan-scenario` it also writes a real-size Wan2.1 transformer (diffusers layout) and measures `convert_wan`.

Never run from the unit tests: it needs ~2x the checkpoint size of free disk and takes minutes.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


from univigu.models.parameter_report import WAN21_T2V_1_3B_CONFIG  # one source for the real sizes

# The stock diffusers `WanTransformer3DModel` config of Wan2.1-T2V-1.3B: the backbone part of univigu's config.
_UNIVIGU_ONLY_KEYS = ("vocab_size", "text_mask_token")
WAN21_1_3B = {
    "_class_name": "WanTransformer3DModel",
    **{k: list(v) if isinstance(v, tuple) else v
       for k, v in WAN21_T2V_1_3B_CONFIG.items() if k not in _UNIVIGU_ONLY_KEYS},
    "image_dim": None,
    "added_kv_proj_dim": None,
}
VOCAB = WAN21_T2V_1_3B_CONFIG["vocab_size"]


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run(code: str, label: str, rss_limit: int = None) -> dict:
    """Run `code` in a fresh Python process; return its wall time and the peak RSS (bytes) it printed. A process
    whose RSS passes `rss_limit` is killed (so a regression cannot take the machine down)."""
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-c", code], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = False
    while proc.poll() is None:
        if rss_limit and _rss_bytes(proc.pid) > rss_limit:
            proc.kill()
            killed = True
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    wall = time.time() - start
    if killed:
        raise SystemExit(f"{label}: killed, its RSS passed {rss_limit / 1024**3:.1f} GiB")
    if proc.returncode != 0:
        sys.stderr.write(stdout + stderr)
        raise SystemExit(f"{label} failed (exit {proc.returncode})")
    peak = None
    for line in stdout.splitlines():
        if line.startswith("PEAK_RSS_KB="):
            peak = int(line.split("=", 1)[1]) * 1024  # Linux reports ru_maxrss in KiB
    return {"wall_s": wall, "peak_rss": peak}


_PEAK = "import resource; print('PEAK_RSS_KB=%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def _write_reference_checkpoint(path: Path, dtype: str) -> None:
    code = textwrap.dedent(
        f"""
        import torch
        cfg = {WAN21_1_3B!r}
        D = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        F, T, Q, C, V = cfg["ffn_dim"], cfg["text_dim"], cfg["freq_dim"], cfg["in_channels"], {VOCAB}
        shapes = {{
            "vocab_embed.weight": (V, D),
            "patch_embedding.weight": (D, C, 1, 2, 2), "patch_embedding.bias": (D,),
            "cond_text_embedder.linear_1.weight": (D, T), "cond_text_embedder.linear_1.bias": (D,),
            "cond_text_embedder.linear_2.weight": (D, D), "cond_text_embedder.linear_2.bias": (D,),
            "scale_shift_table_v": (1, 2, D), "scale_shift_table_t": (1, 2, D),
            "video_head.proj_out.weight": (C * 4, D), "video_head.proj_out.bias": (C * 4,),
            "text_head.norm_final.weight": (D,), "text_head.linear.weight": (V, D), "text_head.linear.bias": (V,),
            "rotary_emb_text.inv_freq": (cfg["attention_head_dim"] // 2,),
        }}
        for s in "vt":
            shapes.update({{
                f"time_embedding_{{s}}.time_embedder.linear_1.weight": (D, Q),
                f"time_embedding_{{s}}.time_embedder.linear_1.bias": (D,),
                f"time_embedding_{{s}}.time_embedder.linear_2.weight": (D, D),
                f"time_embedding_{{s}}.time_embedder.linear_2.bias": (D,),
                f"time_embedding_{{s}}.time_proj.weight": (6 * D, D),
                f"time_embedding_{{s}}.time_proj.bias": (6 * D,),
            }})
        for i in range(cfg["num_layers"]):
            b = f"_fsdp_wrapped_module.blocks.{{i}}."
            shapes[b + "scale_shift_table"] = (1, 6, D)
            for a in ("attn1", "attn2"):
                for p in ("to_q", "to_k", "to_v", "to_out.0"):
                    shapes[f"{{b}}{{a}}.{{p}}.weight"] = (D, D)
                    shapes[f"{{b}}{{a}}.{{p}}.bias"] = (D,)
                shapes[f"{{b}}{{a}}.norm_q.weight"] = (D,)
                shapes[f"{{b}}{{a}}.norm_k.weight"] = (D,)
            shapes[b + "norm2.weight"] = (D,)
            shapes[b + "norm2.bias"] = (D,)
            for f in ("ffn", "ffn_t"):
                shapes[f"{{b}}{{f}}.net.0.proj.weight"] = (F, D)
                shapes[f"{{b}}{{f}}.net.0.proj.bias"] = (F,)
                shapes[f"{{b}}{{f}}.net.2.weight"] = (D, F)
                shapes[f"{{b}}{{f}}.net.2.bias"] = (D,)
        g = torch.Generator().manual_seed(0)
        state = {{k: torch.empty(s, dtype=torch.{dtype}).normal_(0, 0.02, generator=g) for k, s in shapes.items()}}
        n = sum(t.numel() for t in state.values())
        torch.save({{"model": state, "step": 0}}, {str(path)!r})
        print("PARAMS=%d" % n)
        """
    )
    _run(code, "writing the checkpoint")


def _write_wan_folder(path: Path, with_transformer_weights: bool, dtype: str) -> None:
    code = textwrap.dedent(
        f"""
        import json, os, torch
        from pathlib import Path
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler
        from tokenizers import Tokenizer, models, pre_tokenizers, processors
        from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel
        root = Path({str(path)!r})
        (root / "transformer").mkdir(parents=True, exist_ok=True)
        cfg = dict({WAN21_1_3B!r}, _diffusers_version="0.42.1")
        (root / "transformer" / "config.json").write_text(json.dumps(cfg, indent=2))
        vocab = {{"<pad>": 0, "</s>": 1, "<unk>": 2}}
        for i in range({VOCAB} - 3):
            vocab["w%d" % i] = len(vocab)
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
        tok.save_pretrained(root / "tokenizer")
        te = UMT5EncoderModel(UMT5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2))
        te.save_pretrained(root / "text_encoder")
        AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                         temperal_downsample=[False, True, True]).save_pretrained(root / "vae")
        FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained(root / "scheduler")
        index = {{"_class_name": "WanPipeline", "_diffusers_version": "0.42.1",
                  "tokenizer": ["transformers", type(tok).__name__],
                  "text_encoder": ["transformers", "UMT5EncoderModel"], "vae": ["diffusers", "AutoencoderKLWan"],
                  "transformer": ["diffusers", "WanTransformer3DModel"],
                  "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}}
        (root / "model_index.json").write_text(json.dumps(index, indent=2))
        if {with_transformer_weights!r}:
            from diffusers import WanTransformer3DModel
            with torch.device("meta"):
                model = WanTransformer3DModel(**{{k: v for k, v in cfg.items() if not k.startswith("_")}})
            from safetensors.torch import save_file
            g = torch.Generator().manual_seed(0)
            state = {{k: torch.empty(v.shape, dtype=torch.{dtype}).normal_(0, 0.02, generator=g)
                      for k, v in model.state_dict().items()}}
            save_file(state, root / "transformer" / "diffusion_pytorch_model.safetensors", metadata={{"format": "pt"}})
        """
    )
    _run(code, "writing the Wan folder")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    parser.add_argument("--workdir", default=None, help="Where to write the ~2x checkpoint-size files (default: a temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep the files.")
    parser.add_argument("--wan-scenario", action="store_true", help="Also measure `convert_wan` at the real size.")
    parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    parser.add_argument("--rss-limit-gib", type=float, default=16.0,
                        help="Kill a conversion whose RSS passes this (default 16 GiB).")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="univigu_bench_conv_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"dtype": args.dtype}
    try:
        ckpt = workdir / "reference.pth"
        wan = workdir / "wan"
        t0 = time.time()
        _write_reference_checkpoint(ckpt, args.dtype)
        _write_wan_folder(wan, with_transformer_weights=args.wan_scenario, dtype=args.dtype)
        results["setup_s"] = round(time.time() - t0, 1)
        results["checkpoint_bytes"] = _size(ckpt)

        baseline = _run(
            "import torch, diffusers, transformers, univigu.conversion.reference, univigu.pipelines\n" + _PEAK,
            "baseline",
        )
        results["baseline_peak_rss_bytes"] = baseline["peak_rss"]

        out = workdir / "converted"
        conv = _run(
            "from univigu.conversion.reference import convert_reference_checkpoint\n"
            f"convert_reference_checkpoint({str(ckpt)!r}, {str(wan)!r}, {str(out)!r}, overwrite=True)\n" + _PEAK,
            "convert reference",
            rss_limit=args.rss_limit_gib * 1024**3,
        )
        results["reference"] = {
            "wall_s": round(conv["wall_s"], 1),
            "peak_rss_bytes": conv["peak_rss"],
            "output_transformer_bytes": _size(out / "transformer"),
            "peak_over_checkpoint": round(conv["peak_rss"] / results["checkpoint_bytes"], 3),
            "peak_minus_baseline_over_checkpoint": round(
                (conv["peak_rss"] - baseline["peak_rss"]) / results["checkpoint_bytes"], 3
            ),
        }
        shutil.rmtree(out, ignore_errors=True)
        print(json.dumps(results), flush=True)

        if args.wan_scenario:
            wan_weights = _size(wan / "transformer" / "diffusion_pytorch_model.safetensors")
            out = workdir / "converted_wan"
            conv = _run(
                "from univigu.conversion.wan import convert_wan\n"
                f"convert_wan({str(wan)!r}, {str(out)!r}, overwrite=True)\n" + _PEAK,
                "convert wan",
                rss_limit=args.rss_limit_gib * 1024**3,
            )
            written = _size(out / "transformer")
            results["wan"] = {
                "wan_transformer_bytes": wan_weights,
                "output_transformer_bytes": written,
                "wall_s": round(conv["wall_s"], 1),
                "peak_rss_bytes": conv["peak_rss"],
                "peak_over_output": round(conv["peak_rss"] / written, 3),
                "peak_minus_baseline_over_output": round((conv["peak_rss"] - baseline["peak_rss"]) / written, 3),
            }
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    gb = 1024**3
    print(f"checkpoint ({args.dtype}): {results['checkpoint_bytes'] / gb:.2f} GiB")
    print(f"import baseline peak RSS: {results['baseline_peak_rss_bytes'] / gb:.2f} GiB")
    r = results["reference"]
    print(
        f"convert reference: peak RSS {r['peak_rss_bytes'] / gb:.2f} GiB = {r['peak_over_checkpoint']:.2f}x the "
        f"checkpoint ({r['peak_minus_baseline_over_checkpoint']:.2f}x above the import baseline), {r['wall_s']} s"
    )
    if "wan" in results:
        w = results["wan"]
        print(
            f"convert wan: Wan transformer {w['wan_transformer_bytes'] / gb:.2f} GiB -> UniViGU "
            f"{w['output_transformer_bytes'] / gb:.2f} GiB; peak RSS {w['peak_rss_bytes'] / gb:.2f} GiB = "
            f"{w['peak_over_output']:.2f}x the output ({w['peak_minus_baseline_over_output']:.2f}x above baseline), "
            f"{w['wall_s']} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
