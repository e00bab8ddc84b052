"""Shared by the example scripts: load a UniViGU pipeline from a folder, or build a tiny random one.

With no `--model`, the examples run on tiny, randomly initialised components (a tiny Wan transformer converted with
`UniViGUTransformer3DModel.from_wan`, a tiny umT5 encoder and VAE, the ShapesWorld word-level tokenizer): they show
the API and run in a second on a CPU, but the videos are noise and the captions random words.
"""

import argparse

import torch


def add_model_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--model", default=None, help="a UniViGU pipeline folder (default: tiny random components)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="needed for folders written by export_for_hub (they carry their own module files)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--seed", type=int, default=0)


def tiny_pipeline(seed: int = 0):
    from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
    from univigu.toyworld.components import build_tiny_components

    components = build_tiny_components(seed)
    tokenizer = components["tokenizer"]
    transformer = UniViGUTransformer3DModel.from_wan(components["transformer"], vocab_size=len(tokenizer), seed=seed)
    return UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=components["text_encoder"],
        vae=components["vae"],
        transformer=transformer,
        scheduler=components["scheduler"],
        text_scheduler=DiscreteFlowScheduler(vocab_size=len(tokenizer)),
    )


def load_pipeline(args):
    from univigu import UniViGUPipeline

    dtype = getattr(torch, args.dtype)
    if args.model is None:
        pipe = tiny_pipeline(args.seed).to(dtype=dtype)
    else:
        pipe = UniViGUPipeline.from_pretrained(args.model, dtype=dtype, trust_remote_code=args.trust_remote_code)
        if args.dtype != "float32":
            pipe.vae.to(torch.float32)  # Wan's VAE is usually run in fp32
    return pipe.to(args.device)


def size_defaults(args, tiny=(9, 64, 64, 4), real=(81, 480, 832, 50)):
    """Fill --num-frames/--height/--width/--num-inference-steps left unset: small for the tiny model, Wan2.1's 480p
    otherwise."""
    frames, height, width, steps = tiny if args.model is None else real
    args.num_frames = args.num_frames or frames
    args.height = args.height or height
    args.width = args.width or width
    args.num_inference_steps = args.num_inference_steps or steps
    return args
