# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""`univigu convert ...`: build a `UniViGUPipeline` folder from a Wan2.1 checkpoint or from the reference `.pth`.

    univigu convert wan --wan PATH --out DIR [--text-source {uniform,mask}] [--seed 0]
    univigu convert reference --checkpoint FILE.pth --wan PATH --out DIR [--text-source {uniform,mask}]

(`--text-mask-token` / `--no-text-mask-token`, the earlier spellings of `--text-source mask` / `uniform`, still parse,
hidden from --help, for one release.)
"""

import argparse
import sys

from ..utils.cli_flags import add_text_source_argument

_DTYPES = ("keep", "float32", "bfloat16", "float16")


def _dtype(name):
    if name in (None, "keep"):
        return None
    import torch

    return getattr(torch, name)


def _text_mask_token(text_source):
    """`text_source` (None: not given) as the converters' `text_mask_token`."""
    return None if text_source is None else text_source == "mask"


def _add_write_options(parser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace DIR if it exists and is not empty (only once the new folder is complete; a DIR "
                        "that is, contains or lies inside an input is always refused).")
    parser.add_argument("--allow-non-finite", action="store_true",
                        help="Write the folder even if weights hold NaN/inf (default: refuse, naming the tensors).")


def add_convert_parser(subparsers) -> argparse.ArgumentParser:
    """Register `convert` (with `wan` and `reference`) on the `univigu` command's subparsers."""
    parser = subparsers.add_parser(
        "convert",
        help="Build a UniViGUPipeline folder from a Wan2.1 checkpoint or the reference Uni-ViGU checkpoint.",
        description="Build a UniViGUPipeline folder (safetensors) from a Wan2.1 diffusers folder, or from the "
        "reference Uni-ViGU .pth plus the Wan2.1 folder it was trained from.",
    )
    sources = parser.add_subparsers(dest="source", required=True, metavar="{wan,reference}")

    wan = sources.add_parser(
        "wan",
        help="An untrained UniViGU pipeline from a Wan2.1 text-to-video diffusers folder (ready for training).",
        description="Copy every Wan weight, initialise the text experts from the video ones (ffn_t <- ffn, ...), "
        "a fresh vocab_embed and a zero text head. Its text-to-video output equals the Wan pipeline's.",
    )
    wan.add_argument("--wan", required=True, metavar="PATH", help="Wan T2V diffusers folder (model_index.json, "
                     "transformer/, vae/, text_encoder/, tokenizer/, scheduler/) or its Hub id, e.g. "
                     "Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Wan-AI/Wan2.1-T2V-14B-Diffusers or "
                     "Wan-AI/Wan2.2-TI2V-5B-Diffusers (only those files are downloaded). Two-transformer Wan2.2-A14B "
                     "folders are refused (docs/backbones.md).")
    wan.add_argument("--out", required=True, metavar="DIR", help="Output pipeline folder.")
    add_text_source_argument(wan, "uniform", "Noise source of the text stream: uniform over the vocabulary (the "
                             "default, as the reference) or mask (adds a [MASK] token, id = vocab size).")
    wan.add_argument("--seed", type=int, default=0, help="Seed of the vocab_embed initialisation (default 0).")
    wan.add_argument("--dtype", choices=_DTYPES, default="keep",
                     help="Dtype of the written transformer (default: keep the Wan checkpoint's).")
    _add_write_options(wan)
    wan.set_defaults(func=_run_wan)

    ref = sources.add_parser(
        "reference",
        help="The released Uni-ViGU weights (.pth with the state dict under 'model') as a UniViGU pipeline.",
        description="Rename the reference keys (strip _fsdp_wrapped_module., drop rotary_emb_text.inv_freq), infer "
        "vocab size and mask token from the shapes, check everything against the Wan config, and write a pipeline "
        "folder recording the reference's conventions (raw VAE latents, flow-match Euler shift 3.0, uniform text "
        "source, kappa = t). Only torch.load(weights_only=True) is used; no pickle code runs.",
    )
    ref.add_argument("--checkpoint", required=True, metavar="FILE|FOLDER|HUB_ID",
                     help="Reference checkpoint (.pth/.pt, or a .safetensors state dict), a folder holding one, or a "
                     "Hub repo id holding one, e.g. Fr0zencr4nE/Uni-ViGU (the authors' release; only the checkpoint "
                     "file is downloaded, into the Hub cache).")
    ref.add_argument("--filename", metavar="NAME", default=None,
                     help="The checkpoint file to use when the folder or Hub repo holds several (path inside it).")
    ref.add_argument("--revision", metavar="REV", default=None, help="Branch, tag or commit of the Hub repo.")
    ref.add_argument("--cache-dir", metavar="DIR", default=None,
                     help="Hub cache to download the checkpoint into (default: huggingface_hub's, HF_HUB_CACHE).")
    ref.add_argument("--license", metavar="ID", default=None,
                     help="Licence for the converted folder's model card (default: the Hub repo's, else 'other' "
                     "linking to the source).")
    ref.add_argument("--wan", required=True, metavar="PATH",
                     help="The Wan2.1-T2V-1.3B diffusers folder the checkpoint was built on, or its Hub id "
                          "(Wan-AI/Wan2.1-T2V-1.3B-Diffusers).")
    ref.add_argument("--out", required=True, metavar="DIR", help="Output pipeline folder.")
    add_text_source_argument(ref, None, "Noise source of the checkpoint's text stream: mask when its last text "
                             "embedding row is a [MASK] token, else uniform (default: inferred by comparing the "
                             "checkpoint's rows with the tokenizer's vocabulary size).")
    ref.add_argument("--dtype", choices=_DTYPES, default="keep",
                     help="Dtype of the written transformer (default: keep the checkpoint's).")
    _add_write_options(ref)
    ref.set_defaults(func=_run_reference)
    return parser


def _user_errors(run):
    """Input problems (a wrong path, a file that is not a checkpoint, mismatched shapes) end with their message and
    exit status 1, not a traceback."""

    def wrapped(args) -> int:
        try:
            return run(args)
        except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as error:
            print(f"univigu convert {args.source}: error: {error}", file=sys.stderr)
            return 1

    return wrapped


@_user_errors
def _run_wan(args) -> int:
    from .wan import convert_wan

    out = convert_wan(
        args.wan, args.out, text_mask_token=_text_mask_token(args.text_source), seed=args.seed,
        torch_dtype=_dtype(args.dtype), overwrite=args.overwrite, allow_non_finite=args.allow_non_finite,
    )
    print(f"Wrote an untrained UniViGU pipeline to {out}")
    return 0


@_user_errors
def _run_reference(args) -> int:
    from .reference import convert_reference_checkpoint

    out = convert_reference_checkpoint(
        args.checkpoint, args.wan, args.out, text_mask_token=_text_mask_token(args.text_source),
        torch_dtype=_dtype(args.dtype), overwrite=args.overwrite, allow_non_finite=args.allow_non_finite,
        filename=args.filename, revision=args.revision, cache_dir=args.cache_dir, license=args.license,
    )
    print(f"Wrote the converted reference pipeline to {out}")
    return 0
