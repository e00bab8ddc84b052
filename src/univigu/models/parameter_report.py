# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""How many parameters the text stream adds to a Wan backbone, for any config, without allocating memory.

    python -m univigu.models.parameter_report               # Wan2.1-T2V-1.3B with the umT5 vocabulary
    univigu params --backbone wan2.2-ti2v-5b                # another supported backbone (see BACKBONES)
    univigu params --config WAN/transformer/config.json     # a Wan (or UniViGU) transformer config
    univigu params --num-layers 2 --vocab-size 64 ...       # any config
"""

import argparse
import json
from typing import Any

from ..utils.cli_flags import add_text_source_argument


# torch and the model are imported inside the functions, so that `univigu params --help` loads without them.

# Wan2.1-T2V-1.3B (diffusers format) plus the umT5-XXL tokenizer's vocabulary, as the reference uses them.
WAN21_T2V_1_3B_CONFIG: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
    "vocab_size": 256384,
    "text_mask_token": False,
}

# Wan2.1-T2V-14B: 40 heads x 128 (dim 5120), ffn 13824, 40 layers; same VAE and latent space as the 1.3B.
WAN21_T2V_14B_CONFIG: dict[str, Any] = {
    **WAN21_T2V_1_3B_CONFIG, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40,
}

# Wan2.2-TI2V-5B: 24 heads x 128 (dim 3072), ffn 14336, 30 layers, 48 latent channels (Wan2.2's 16x VAE); its
# pipeline gives the video one timestep per token (`expand_timesteps`), which changes no parameter.
WAN22_TI2V_5B_CONFIG: dict[str, Any] = {
    **WAN21_T2V_1_3B_CONFIG, "num_attention_heads": 24, "ffn_dim": 14336, "num_layers": 30,
    "in_channels": 48, "out_channels": 48,
}

#: The backbones `univigu convert wan` supports (docs/backbones.md), for `univigu params --backbone`.
BACKBONES: dict[str, dict[str, Any]] = {
    "wan2.1-t2v-1.3b": WAN21_T2V_1_3B_CONFIG,
    "wan2.1-t2v-14b": WAN21_T2V_14B_CONFIG,
    "wan2.2-ti2v-5b": WAN22_TI2V_5B_CONFIG,
}

# Groups of text-expert parameters, by name prefix/infix, in report order.
_GROUPS = {
    "ffn_t (text feed-forward experts)": lambda n: ".ffn_t." in n,
    "vocab_embed + text_head": lambda n: n.startswith(("vocab_embed.", "text_head.")),
    "text time embedding + table": lambda n: n.startswith(("time_embedding_t.", "scale_shift_table_t")),
}


def build_on_meta(config: dict[str, Any] | None = None) -> "UniViGUTransformer3DModel":
    """Instantiate the model on the meta device: shapes and names only, no memory."""
    import torch

    from .transformer_univigu import UniViGUTransformer3DModel

    with torch.device("meta"):
        return UniViGUTransformer3DModel(**(config or WAN21_T2V_1_3B_CONFIG))


def parameter_report(model_or_config=None) -> dict[str, int]:
    """Parameter counts: `base` (what Wan has), `text_experts` (what UniViGU adds), their groups and `total`."""
    import torch

    from .wan_weights import is_text_expert

    model = model_or_config
    if not isinstance(model, torch.nn.Module):
        model = build_on_meta(model_or_config)
    report = {"base": 0, "text_experts": 0, **{group: 0 for group in _GROUPS}}
    for name, param in model.named_parameters():
        if is_text_expert(name):
            report["text_experts"] += param.numel()
            for group, match in _GROUPS.items():
                if match(name):
                    report[group] += param.numel()
        else:
            report["base"] += param.numel()
    report["total"] = report["base"] + report["text_experts"]
    return report


def format_report(report: dict[str, int]) -> str:
    base = report["base"]
    lines = []
    for key, value in report.items():
        share = f"  ({value / base:6.1%} of base)" if key != "base" else ""
        lines.append(f"{key:<36} {value:>15,}{share}")
    return "\n".join(lines)


def add_params_parser(subparsers) -> None:
    parser = subparsers.add_parser("params", help="Parameter report: Wan base vs text experts, for any config.")
    _add_config_arguments(parser)
    parser.set_defaults(func=_run_params)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = WAN21_T2V_1_3B_CONFIG
    for key in ("num_attention_heads", "attention_head_dim", "text_dim", "freq_dim", "ffn_dim", "num_layers",
                "vocab_size", "in_channels"):
        parser.add_argument("--" + key.replace("_", "-"), type=int, default=defaults[key])
    add_text_source_argument(parser, "uniform", "Noise source of the text stream: mask adds a [MASK] row to the text "
                             "vocabulary.")
    parser.add_argument("--backbone", choices=sorted(BACKBONES),
                        help="A supported Wan backbone's config (overrides the size flags; --vocab-size and "
                        "--text-source still apply).")
    parser.add_argument("--config", help="A transformer config.json to report on (overrides the flags).")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")


def _run_params(args) -> int:
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                loaded = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"--config {args.config} is not a JSON config ({error}): pass a transformer "
                             "config.json.") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {args.config} holds a JSON {type(loaded).__name__}, not a config object.")
        config = {k: v for k, v in loaded.items() if not k.startswith("_") and k != "auto_map"}
        # A Wan transformer config.json has no text keys: report it as UniViGU would build it.
        config.setdefault("vocab_size", args.vocab_size)
        for key in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len"):
            config.pop(key, None)
    elif args.backbone:
        config = dict(BACKBONES[args.backbone], vocab_size=args.vocab_size, text_mask_token=args.text_source == "mask")
    else:
        config = dict(WAN21_T2V_1_3B_CONFIG)
        for key in ("num_attention_heads", "attention_head_dim", "text_dim", "freq_dim", "ffn_dim", "num_layers",
                    "vocab_size", "in_channels"):
            config[key] = getattr(args, key)
        config["out_channels"] = config["in_channels"]
        config["text_mask_token"] = args.text_source == "mask"
    report = parameter_report(config)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_arguments(parser)
    return _run_params(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
