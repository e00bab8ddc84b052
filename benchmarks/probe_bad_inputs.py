# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""A probe of bad inputs (issue #29, "Done when"): a few hundred wrong arguments, files and folders thrown at every
entry point, each outcome classified.

    nice -n 15 python benchmarks/probe_bad_inputs.py [--only pipeline,loading,cli,training,space] [--timeout 60]

Entry points, all on tiny random components built here (no download, no checkpoint): the pipeline's `__call__`,
`UniViGUPipeline.from_pretrained` on damaged folders, the `univigu` command (`univigu.cli.main`, run as the console
script runs it: arguments from `sys.argv`), the training scripts (`univigu.training.cli.script_main`, what
`training/train_recall.py` runs) and the Space's `UniViGUDemo` methods (called directly, no server).

An outcome is *handled* when the call ends with a clear error (`ValueError`, `TypeError`, `OSError`, `gr.Error`, or
a non-zero exit status of a command) whose message names the argument, flag or file, or when a probe marked
"may run" runs to the end. It is *mishandled* when it raises another type (a traceback), exits 0 while printing an
error (or ends with no error at all where one is due), runs past the timeout, changes a user's file (every file a
probe could touch is hashed before and after), or names a `--flag` that no parser has.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # probe this checkout, whatever univigu is installed from
CLASSES = ("pipeline", "loading", "cli", "training", "space")


class ProbeTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise ProbeTimeout()


def tree_hashes(*paths) -> dict:
    out = {}
    for root in paths:
        root = Path(root)
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def known_flags() -> set:
    """Every option string of every parser a user can reach (univigu, its subcommands, training, the Space)."""
    flags = set()

    def walk(parser):
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    from univigu.cli import build_parser
    from univigu.training.arguments import build_parser as train_parser

    walk(build_parser())
    for stage in ("recall", "refine"):
        walk(train_parser(stage))
    try:
        sys.path.insert(0, str(ROOT / "spaces_demo"))
        import app  # noqa: F401

        flags.update(re.findall(r'"(--[\w-]+)"', (ROOT / "spaces_demo" / "app.py").read_text()))
    except ImportError:
        pass
    return flags


FLAG_RE = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*)")
#: flags of other programs a message may quote (pip, ffmpeg, accelerate)
FOREIGN_FLAGS = {"--upgrade", "--extra-index-url", "--index-url", "--config_file", "--num_processes", "--help",
                 "--constraint", "--no-deps"}


class Prober:
    def __init__(self, timeout: float, flags: set):
        self.timeout = timeout
        self.flags = flags
        self.results = []  # (cls, name, outcome, detail)

    def probe(self, cls, name, fn, names=(), may_run=False, watch=(), exit_style=False, typed=()):
        """Run `fn()`; classify. `names`: strings one of which the error message must contain (case-insensitive).
        `may_run`: finishing without an error is fine. `watch`: files/folders that must not change.
        `exit_style`: fn returns (exit_status, output text) of a command."""
        before = tree_hashes(*watch)
        out, err = io.StringIO(), io.StringIO()
        outcome, detail = None, ""
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        start = time.time()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = fn()
            if exit_style:
                status, text = value
                text = text + out.getvalue() + err.getvalue()
                if status:
                    outcome, detail = "error", text
                elif re.search(r"\berror\b|Traceback", text, re.I):
                    outcome, detail = "mishandled", f"exit status 0 with an error printed: {text.strip()[-300:]}"
                else:
                    outcome, detail = ("ran", "") if may_run else ("mishandled", "exit status 0, no error")
            else:
                outcome, detail = ("ran", "") if may_run else ("mishandled", "no error raised")
        except ProbeTimeout:
            outcome, detail = "mishandled", f"hang: still running after {self.timeout:.0f} s"
        except SystemExit as exit_:
            code = exit_.code
            text = out.getvalue() + err.getvalue() + (code if isinstance(code, str) else "")
            if code in (0, None):
                outcome, detail = "mishandled", f"SystemExit(0): {text.strip()[-300:]}"
            else:
                outcome, detail = "error", text
        except Exception as error:  # noqa: BLE001
            kind = type(error).__name__
            clear = isinstance(error, (ValueError, TypeError, OSError)) or kind == "Error"  # gr.Error
            if clear:
                outcome, detail = "error", f"{kind}: {error}"
            else:
                tb = traceback.extract_tb(error.__traceback__)[-1]
                outcome = "mishandled"
                detail = (f"{kind}: {str(error)[:240]} (at {Path(tb.filename).name}:{tb.lineno})")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        elapsed = time.time() - start
        if outcome == "error":
            message = detail
            if names and not any(n.lower() in message.lower() for n in names):
                outcome, detail = "mishandled", f"message names none of {list(names)}: {message.strip()[-300:]}"
            else:
                outcome = "handled"
            bad = [f for f in FLAG_RE.findall(message)
                   if f not in self.flags and f not in FOREIGN_FLAGS and f not in typed]
            if bad:
                outcome, detail = "mishandled", f"names a flag that does not exist {bad}: {message.strip()[-300:]}"
        elif outcome == "ran":
            outcome = "handled"
        after = tree_hashes(*watch)
        if before != after:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            outcome, detail = "mishandled", f"user files changed: {changed[:4]}"
        self.results.append((cls, name, outcome, detail.strip().replace("\n", " ")[:400], elapsed))


# ------------------------------------------------------------------------------------------------ fixtures


def make_pipeline():
    from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
    from univigu.toyworld.components import build_tiny_components

    c = build_tiny_components(0)
    tok = c["tokenizer"]
    torch.manual_seed(0)
    transformer = UniViGUTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=c["text_encoder"].config.d_model, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=8,
        vocab_size=len(tok), text_rope_max_seq_len=64).eval()
    pipe = UniViGUPipeline(tokenizer=tok, text_encoder=c["text_encoder"], vae=c["vae"], transformer=transformer,
                           scheduler=c["scheduler"], text_scheduler=DiscreteFlowScheduler(vocab_size=len(tok)))
    # what a checkpoint stores: small defaults, so the Space's work bound is about the request, not Wan's 81x480x832
    pipe.register_to_config(call_defaults=dict(height=32, width=32, num_frames=9, num_inference_steps=2,
                                               max_text_length=8, max_sequence_length=16))
    pipe.set_progress_bar_config(disable=True)
    return pipe, c


def make_files(d: Path):
    """User files: a good short clip, a text file, a zero-byte and a truncated mp4, a gif, a playlist."""
    from univigu.toyworld import make_dataset

    files = {}
    data = make_dataset(d / "data", 2, split="train", seed=0)
    clip = sorted(Path(data).glob("**/*.mp4"))[0]
    files["data"] = Path(data)
    files["clip"] = clip
    (d / "notes.mp4").write_text("this is not a video\n")
    files["text_mp4"] = d / "notes.mp4"
    (d / "empty.mp4").write_bytes(b"")
    files["empty"] = d / "empty.mp4"
    raw = clip.read_bytes()
    (d / "truncated.mp4").write_bytes(raw[: len(raw) // 3])
    files["truncated"] = d / "truncated.mp4"
    (d / "list.m3u8").write_text("#EXTM3U\n#EXTINF:1,\nhttp://example.invalid/a.ts\n")
    files["playlist"] = d / "list.m3u8"
    (d / "caption.txt").write_text("keep me\n")
    files["txt"] = d / "caption.txt"
    (d / "existing.mp4").write_bytes(raw)
    files["existing"] = d / "existing.mp4"
    return files


# ------------------------------------------------------------------------------------------------ classes


def probe_pipeline(P: Prober, pipe, files):
    small = dict(num_frames=9, height=32, width=32, num_inference_steps=1, max_sequence_length=16)
    prompt = "a red circle moving left"

    def call(**kw):
        args = dict(small, prompt=prompt, generator=torch.Generator().manual_seed(0), output_type="latent")
        args.update(kw)
        args = {k: v for k, v in args.items() if v is not _DROP}
        return lambda: pipe(**args)

    bad_counts = [0, -1, -9, 1.5, "9", True, float("nan"), float("inf"), 10**9, [9], None]
    for arg in ("num_inference_steps", "num_frames", "height", "width", "max_sequence_length",
                "num_videos_per_prompt"):
        for value in bad_counts:
            if value is None and arg != "num_videos_per_prompt":
                continue
            P.probe("pipeline", f"{arg}={value!r}", call(**{arg: value}), names=[arg])
    for value in bad_counts:
        if value is None:
            continue
        P.probe("pipeline", f"v2t max_text_length={value!r}",
                call(prompt=_DROP, video=str(files["clip"]), task="v2t", max_text_length=value),
                names=["max_text_length"], watch=[files["clip"]])
    for arg in ("guidance_scale", "temperature"):
        for value in (-1.0, float("nan"), float("inf"), "1", True, [1.0]):
            P.probe("pipeline", f"{arg}={value!r}", call(**{arg: value}), names=[arg])
    for frames in (2, 3, 4, 6, 8, 10, 12):
        P.probe("pipeline", f"num_frames={frames} (not 4k+1)", call(num_frames=frames), names=["num_frames"])
    for size in (8, 17, 33, 40, 100):
        for arg in ("height", "width"):
            P.probe("pipeline", f"{arg}={size}", call(**{arg: size}), names=[arg])
    P.probe("pipeline", "num_frames=81 past the RoPE table", call(num_frames=81), names=["num_frames"])
    P.probe("pipeline", "height=1024 past the RoPE table", call(height=1024), names=["height"])
    for value in ("", "   ", "\n\t", 123, None, ["a", ""], ["a", 3], [], b"bytes", {"a": 1}):
        P.probe("pipeline", f"prompt={value!r}", call(prompt=value), names=["prompt"])
    P.probe("pipeline", "prompt of 20k words", call(prompt="word " * 20000), names=["prompt", "max_sequence_length"],
            may_run=True)
    P.probe("pipeline", "prompt with emoji and NUL", call(prompt="a \u2603 circle \x00 left"), may_run=True)
    P.probe("pipeline", "negative_prompt=5", call(negative_prompt=5), names=["negative_prompt"])
    P.probe("pipeline", "negative_prompt list of wrong length", call(negative_prompt=["a", "b"]),
            names=["negative_prompt"])
    for value in ("bogus", 3, "", "T2V"):
        P.probe("pipeline", f"task={value!r}", call(task=value), names=["task"])
    for value in ("bogus", 3, "pt "):
        P.probe("pipeline", f"output_type={value!r}", call(output_type=value), names=["output_type"])
    for arg in ("text_update", "video_latents_mode", "commit_strategy", "understanding_attention"):
        P.probe("pipeline", f"{arg}='bogus'", call(**{arg: "bogus"}), names=[arg])
    for value in ("seed", 3, [torch.Generator()] * 3, [None]):
        P.probe("pipeline", f"generator={value!r}"[:60], call(generator=value), names=["generator"])
    for value in ([], [0.5, 0.9], [2.0, 1.0], [float("nan")], "abc", [1.0, 1.0]):
        P.probe("pipeline", f"sigmas={value!r}", call(sigmas=value), names=["sigmas"])
    P.probe("pipeline", "callback_on_step_end=3", call(callback_on_step_end=3), names=["callback"])
    P.probe("pipeline", "callback returns a string", call(callback_on_step_end=lambda *a: "x"), names=["callback"])
    P.probe("pipeline", "callback_on_step_end_tensor_inputs=['nope']",
            call(callback_on_step_end=lambda p, s, t, k: k, callback_on_step_end_tensor_inputs=["nope"]),
            names=["callback_on_step_end_tensor_inputs", "nope"])
    lat = (1, 16, 3, 4, 4)
    for desc, value in [("wrong shape", torch.zeros(1, 16, 3, 4)), ("wrong size", torch.zeros(1, 16, 5, 4, 4)),
                        ("NaN", torch.full(lat, float("nan"))), ("int", torch.zeros(lat, dtype=torch.long)),
                        ("numpy", np.zeros(lat, np.float32)), ("list", [[0.0]]), ("inf", torch.full(lat, float("inf")))]:
        P.probe("pipeline", f"latents {desc}", call(latents=value), names=["latents"])
    for desc, value in [("wrong shape", torch.zeros(1, 16)), ("NaN", torch.full((1, 16, 32), float("nan"))),
                        ("numpy", np.zeros((1, 16, 32), np.float32)), ("wrong width", torch.zeros(1, 16, 7))]:
        P.probe("pipeline", f"prompt_embeds {desc}", call(prompt=_DROP, prompt_embeds=value), names=["prompt_embeds"])
    P.probe("pipeline", "prompt and prompt_embeds", call(prompt_embeds=torch.zeros(1, 16, 32)),
            names=["prompt_embeds", "prompt"])
    v2t = dict(prompt=_DROP, task="v2t", max_text_length=8)
    clip = files["clip"]
    videos = [
        ("2-D array", np.zeros((32, 32), np.uint8)), ("6-D array", np.zeros((1, 1, 9, 32, 32, 3), np.uint8)),
        ("0 frames", np.zeros((0, 32, 32, 3), np.uint8)), ("int32", np.zeros((9, 32, 32, 3), np.int32)),
        ("float above 1", np.full((9, 32, 32, 3), 200.0, np.float32)),
        ("float below -1", np.full((9, 32, 32, 3), -5.0, np.float32)),
        ("NaN", np.full((9, 32, 32, 3), np.nan, np.float32)), ("2 channels", np.zeros((9, 32, 32, 2), np.uint8)),
        ("bool", np.zeros((9, 32, 32, 3), bool)), ("tensor 2-D", torch.zeros(32, 32)),
        ("list of mixed sizes", [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]),
        ("empty list", []), ("int", 5), ("missing path", str(Path(files["data"]).parent / "nope.mp4")),
        ("text file", str(files["text_mp4"])), ("zero-byte mp4", str(files["empty"])),
        ("truncated mp4", str(files["truncated"])), ("a folder", str(files["data"])),
        ("playlist", str(files["playlist"])), ("URL", "http://example.invalid/a.mp4"),
        ("file:// URL", "file://" + str(clip)), ("pipe:", "pipe:0"), ("empty string", ""),
        ("Path missing", Path("/nonexistent/x.mp4")),
    ]
    names_for = lambda desc, value: (["video", Path(str(value)).name] if isinstance(value, (str, Path)) and value
                                     else ["video"])
    for desc, value in videos:
        P.probe("pipeline", f"v2t video {desc}", call(video=value, **v2t), names=names_for(desc, value),
                watch=[files["data"].parent])
    good = str(clip)
    for arg, values in {"fps": (0, -1, float("nan"), "8", float("inf")), "start": (-1, float("nan"), "0", 1e9),
                        "duration": (0, -1, float("nan"), "1"), "crop": ("zoom", 1, None)}.items():
        for value in values:
            if value is None:
                continue
            P.probe("pipeline", f"v2t {arg}={value!r}", call(video=good, **{arg: value}, **v2t),
                    names=[arg, "window", "frames"], watch=[clip])
    P.probe("pipeline", "t2v with fps", call(fps=8), names=["fps"])
    P.probe("pipeline", "t2v with crop", call(crop="center"), names=["crop"])
    P.probe("pipeline", "v2t num_frames=6", call(video=good, num_frames=6, **v2t), names=["num_frames"])
    P.probe("pipeline", "v2t height=17", call(video=good, height=17, **v2t), names=["height"])
    P.probe("pipeline", "prompt and video without task", call(video=good), names=["task"])
    P.probe("pipeline", "neither prompt nor video", call(prompt=_DROP), names=["prompt"])
    P.probe("pipeline", "text_ids float", call(task="t2vt", text_ids=torch.zeros(1, 8)), names=["text_ids"])
    P.probe("pipeline", "text_ids out of vocab", call(task="t2vt", text_ids=torch.full((1, 8), 10**7)),
            names=["text_ids"])
    P.probe("pipeline", "text_ids in t2v", call(text_ids=torch.zeros(1, 8, dtype=torch.long)), names=["text_ids"])
    P.probe("pipeline", "video_latents wrong shape", call(video_latents=torch.zeros(1, 16), **v2t),
            names=["video_latents"])
    P.probe("pipeline", "video_latents NaN", call(video_latents=torch.full(lat, float("nan")), **v2t),
            names=["video_latents"])
    P.probe("pipeline", "video_cache_interval=0", call(video=good, video_cache_interval=0, **v2t),
            names=["video_cache_interval"])
    P.probe("pipeline", "unknown keyword", call(num_steps=3), names=["num_steps"])


_DROP = object()


def probe_loading(P: Prober, pipe, components, d: Path):
    from diffusers import WanPipeline
    from safetensors.torch import load_file, save_file

    from univigu import UniViGUPipeline

    good = d / "good"
    pipe.save_pretrained(good)
    wan = d / "wan"
    WanPipeline(**components).save_pretrained(wan)

    def variant(name, edit):
        folder = d / name
        shutil.copytree(good, folder)
        edit(folder)
        return folder

    def json_edit(rel, change):
        def edit(folder):
            f = folder / rel
            cfg = json.loads(f.read_text())
            change(cfg)
            f.write_text(json.dumps(cfg))
        return edit

    def setk(key, value):
        return lambda cfg: cfg.__setitem__(key, value)

    def delk(key):
        return lambda cfg: cfg.pop(key, None)

    weights = lambda folder, sub: sorted((folder / sub).glob("*.safetensors"))[0]

    def truncate(sub, frac=0.5):
        def edit(folder):
            f = weights(folder, sub)
            f.write_bytes(f.read_bytes()[: int(f.stat().st_size * frac)])
        return edit

    def nan_weights(folder):
        f = weights(folder, "transformer")
        t = load_file(f)
        k = sorted(t)[0]
        t[k] = torch.full_like(t[k], float("nan"))
        save_file(t, f)

    cases = [
        ("model_index.json missing", lambda f: (f / "model_index.json").unlink(), ["model_index.json"]),
        ("model_index.json empty", lambda f: (f / "model_index.json").write_text(""), ["model_index.json"]),
        ("model_index.json not JSON", lambda f: (f / "model_index.json").write_text("{oops"), ["model_index.json"]),
        ("model_index.json a list", lambda f: (f / "model_index.json").write_text("[1, 2]"), ["model_index.json"]),
        ("model_index.json null", lambda f: (f / "model_index.json").write_text("null"), ["model_index.json"]),
        ("model_index transformer a string", json_edit("model_index.json", setk("transformer", "x")),
         ["model_index.json", "transformer"]),
        ("model_index transformer unknown class",
         json_edit("model_index.json", setk("transformer", ["univigu", "NoSuchModel"])),
         ["transformer", "NoSuchModel"]),
        ("model_index transformer unknown library",
         json_edit("model_index.json", setk("transformer", ["nolib", "UniViGUTransformer3DModel"])),
         ["transformer", "nolib"]),
        ("model_index vae entry removed", json_edit("model_index.json", delk("vae")), ["vae"]),
        ("model_index call_defaults bad", json_edit("model_index.json", setk("call_defaults", {"t2v": {"num_frames": -3}})),
         ["call_defaults", "num_frames"]),
        ("model_index call_defaults a string", json_edit("model_index.json", setk("call_defaults", "x")),
         ["call_defaults"]),
        ("model_index latent_normalization bad", json_edit("model_index.json", setk("latent_normalization", "zz")),
         ["latent_normalization"]),
        ("transformer/ folder missing", lambda f: shutil.rmtree(f / "transformer"), ["transformer"]),
        ("transformer config missing", lambda f: (f / "transformer" / "config.json").unlink(),
         ["config.json", "transformer"]),
        ("transformer config not JSON", lambda f: (f / "transformer" / "config.json").write_text("{"),
         ["config.json"]),
        ("transformer config a list", lambda f: (f / "transformer" / "config.json").write_text("[]"),
         ["config.json"]),
        ("vae config not JSON", lambda f: (f / "vae" / "config.json").write_text("nope"), ["config.json", "vae"]),
        ("text_encoder config not JSON", lambda f: (f / "text_encoder" / "config.json").write_text("nope"),
         ["config.json", "text_encoder"]),
        ("scheduler config not JSON", lambda f: (f / "scheduler" / "scheduler_config.json").write_text("nope"),
         ["scheduler_config.json"]),
        ("text_scheduler config not JSON", lambda f: (f / "text_scheduler" / "scheduler_config.json").write_text("x"),
         ["scheduler_config.json"]),
        ("tokenizer folder emptied", lambda f: [p.unlink() for p in (f / "tokenizer").iterdir()], ["tokenizer"]),
        ("transformer weights truncated", truncate("transformer"), ["transformer", "safetensors"]),
        ("transformer weights zero bytes", truncate("transformer", 0.0), ["transformer", "safetensors"]),
        ("transformer weights header only", truncate("transformer", 0.01), ["transformer", "safetensors"]),
        ("vae weights truncated", truncate("vae"), ["vae", "safetensors"]),
        ("text_encoder weights truncated", truncate("text_encoder"), ["text_encoder", "safetensors"]),
        ("transformer weights removed", lambda f: weights(f, "transformer").unlink(), ["transformer"]),
        ("transformer NaN weights", nan_weights, ["transformer"]),
    ]
    for key, values in {"num_attention_heads": (-2, 0, 2.5, "2", None), "num_layers": (0, -1, 1.5, "two"),
                        "attention_head_dim": (0, 7.5), "vocab_size": (0, -5, "big"), "patch_size": ("x", [1, 2], [0, 2, 2]),
                        "text_rope_max_seq_len": (0, -1), "in_channels": (0, 3.5), "ffn_dim": (-32,)}.items():
        for value in values:
            cases.append((f"transformer config {key}={value!r}",
                          json_edit("transformer/config.json", setk(key, value)), ["config.json", key]))
    for key, value in (("z_dim", -16), ("base_dim", 0), ("z_dim", "16")):
        cases.append((f"vae config {key}={value!r}", json_edit("vae/config.json", setk(key, value)),
                      ["config.json", key]))
    for key, value in (("vocab_size", -1), ("num_train_timesteps", 0)):
        cases.append((f"text_scheduler {key}={value!r}",
                      json_edit("text_scheduler/scheduler_config.json", setk(key, value)), [key]))
    for i, (name, edit, names) in enumerate(cases):
        folder = variant(f"bad{i}", edit)
        P.probe("loading", name, lambda folder=folder: UniViGUPipeline.from_pretrained(folder), names=names,
                watch=[folder])
        shutil.rmtree(folder, ignore_errors=True)
    P.probe("loading", "a Wan folder", lambda: UniViGUPipeline.from_pretrained(wan),
            names=["WanPipeline", "WanTransformer", "convert", "UniViGU"], watch=[wan])
    P.probe("loading", "missing folder", lambda: UniViGUPipeline.from_pretrained(d / "nope"), names=["nope"])
    (d / "emptydir").mkdir()
    P.probe("loading", "empty folder", lambda: UniViGUPipeline.from_pretrained(d / "emptydir"),
            names=["model_index.json", "emptydir"])
    P.probe("loading", "a file, not a folder", lambda: UniViGUPipeline.from_pretrained(good / "model_index.json"),
            names=["model_index.json"])
    P.probe("loading", "path ''", lambda: UniViGUPipeline.from_pretrained(""), names=["model", "path", "''", "folder"])
    P.probe("loading", "path None", lambda: UniViGUPipeline.from_pretrained(None), names=["pretrained", "None", "path"])
    P.probe("loading", "torch_dtype='float33'", lambda: UniViGUPipeline.from_pretrained(good, torch_dtype="float33"),
            names=["dtype", "float33"], may_run=False, watch=[good])
    return good, wan


def run_cli(argv):
    """`univigu ARGS` as the console script runs it: returns (exit status, printed text)."""
    from univigu.cli import main

    saved = sys.argv
    sys.argv = ["univigu", *argv]
    try:
        return main(None), ""
    finally:
        sys.argv = saved


def probe_cli(P: Prober, files, good, wan, d: Path):
    m = str(good)
    small = ["--num-inference-steps", "1", "--device", "cpu"]
    user = [files["data"].parent]

    def cli(cls_name, argv, names, may_run=False, watch=user):
        P.probe("cli", cls_name, lambda: run_cli(argv), names=names, may_run=may_run, watch=watch, exit_style=True,
                typed=argv)

    cap = ["caption", "--model", m, *small]
    cli("caption missing file", [*cap, str(d / "nope.mp4")], ["nope.mp4"])
    cli("caption text file", [*cap, str(files["text_mp4"])], ["notes.mp4"])
    cli("caption zero-byte mp4", [*cap, str(files["empty"])], ["empty.mp4"])
    cli("caption truncated mp4", [*cap, str(files["truncated"])], ["truncated.mp4"])
    cli("caption a folder", [*cap, str(files["data"])], ["data"])
    cli("caption playlist", [*cap, str(files["playlist"])], ["list.m3u8"])
    cli("caption URL", [*cap, "http://example.invalid/a.mp4"], ["http://example.invalid/a.mp4"])
    clip = str(files["clip"])
    for flag, values in {"--num-frames": ("0", "-1", "abc", "6", "1.5"), "--height": ("17", "0", "-32", "x"),
                         "--width": ("17",), "--fps": ("0", "nan", "-1", "inf"), "--start": ("-1", "nan"),
                         "--duration": ("0", "-1", "nan"), "--crop": ("zoom",), "--max-text-length": ("0", "-1", "99999"),
                         "--num-inference-steps": ("0", "-1", "x"), "--seed": ("abc", "1.5"), "--dtype": ("int8",),
                         "--guidance-scale": ("nan",), "--device": ("gpu7",), "--lora": (str(d / "nolora"),)}.items():
        for value in values:
            cli(f"caption {flag} {value}", [*cap, clip, flag, value], [flag, flag.strip("-"), "nolora", "gpu7",
                                                                       flag.strip("-").replace("-", "_")])
    cli("caption --model missing", ["caption", "--model", str(d / "nomodel"), clip], ["nomodel"])
    cli("caption --model a Wan folder", ["caption", "--model", str(wan), *small, clip], ["wan", "Wan"])
    cli("caption --model a file", ["caption", "--model", clip, *small, clip], [Path(clip).name, "model"])
    cli("caption no videos", ["caption", "--model", m], ["videos"])
    cli("caption unknown flag", [*cap, clip, "--frames-per-second", "8"], ["--frames-per-second"])
    gen = ["generate", "--model", m, *small, "--num-frames", "9", "--height", "32", "--width", "32"]
    ex = files["existing"]
    cli("generate --out onto an existing mp4", [*gen, "--prompt", "a red circle", "--out", str(ex)],
        ["existing.mp4", "--overwrite"], watch=[ex])
    (d / "clipb.png").write_bytes(b"png!")
    cli("generate --out whose .png exists", [*gen, "--prompt", "a", "--out", str(d / "clipb.mp4")],
        ["clipb.png", "--overwrite"], watch=[d / "clipb.png"])
    (d / "clipc.txt").write_text("mine")
    cli("generate --caption whose .txt exists", [*gen, "--prompt", "a", "--caption", "--out", str(d / "clipc.mp4")],
        ["clipc.txt", "--overwrite"], watch=[d / "clipc.txt"])
    cli("generate --out a folder", [*gen, "--prompt", "a", "--out", str(files["data"])], ["data", "out"])
    cli("generate --out onto model_index.json", [*gen, "--prompt", "a", "--out", str(good / "model_index.json")],
        ["model_index.json", "out"], watch=[good])
    cli("generate --out inside the model folder", [*gen, "--prompt", "a", "--out", str(good / "x.mp4")],
        ["model", "out", str(good)], watch=[good], may_run=True)
    cli("generate --out .txt suffix", [*gen, "--prompt", "a", "--out", str(d / "o.txt")], ["o.txt", "out", "mp4"],
        may_run=True)
    cli("generate --out in a missing folder", [*gen, "--prompt", "a", "--out", str(d / "no" / "o.mp4")],
        ["no", "out"], may_run=True)
    for value in ("", "   "):
        cli(f"generate --prompt {value!r}", [*gen, "--prompt", value, "--out", str(d / "p.mp4")], ["prompt"])
    for flag, values in {"--num-frames": ("6", "0"), "--height": ("17",), "--guidance-scale": ("nan", "-1", "inf"),
                         "--fps": ("0", "-3"), "--num-inference-steps": ("0",)}.items():
        for value in values:
            cli(f"generate {flag} {value}", [*gen, "--prompt", "a", "--out", str(d / "q.mp4"), flag, value],
                [flag, flag.strip("-"), flag.strip("-").replace("-", "_")])
    cli("generate missing --prompt", ["generate", "--model", m], ["--prompt"])
    ev = ["evaluate", "--model", m, "--num-inference-steps", "1", "--device", "cpu"]
    runs = d.parent / "runs"  # the probes' own outputs: not user files
    runs.mkdir(exist_ok=True)
    data = str(files["data"])
    cli("evaluate --data-dir missing", [*ev, "--data-dir", str(d / "nodata")], ["nodata"])
    (d / "nometa").mkdir()
    cli("evaluate --data-dir without metadata", [*ev, "--data-dir", str(d / "nometa")], ["metadata", "nometa"])
    (d / "badmeta").mkdir()
    (d / "badmeta" / "metadata.jsonl").write_text("{not json\n")
    cli("evaluate metadata not JSON", [*ev, "--data-dir", str(d / "badmeta")], ["metadata.jsonl"],
        watch=[d / "badmeta"])
    (d / "emptymeta").mkdir()
    (d / "emptymeta" / "metadata.jsonl").write_text("")
    cli("evaluate metadata empty", [*ev, "--data-dir", str(d / "emptymeta")], ["metadata", "emptymeta"])
    cli("evaluate --out = data dir", [*ev, "--data-dir", data, "--out", data], ["--out", "data"])
    cli("evaluate --out = metadata.jsonl", [*ev, "--data-dir", data, "--out", str(Path(data) / "metadata.jsonl")],
        ["metadata.jsonl", "--out"])
    cli("evaluate --out = a clip", [*ev, "--data-dir", data, "--out", clip], [Path(clip).name, "--out"])
    cli("evaluate --out = model folder", [*ev, "--data-dir", data, "--out", m], ["--out", "model"], watch=[good, *user])
    cli("evaluate --out existing file", [*ev, "--data-dir", data, "--out", str(files["txt"])],
        ["caption.txt", "--overwrite"])
    cli("evaluate --out = data dir with --overwrite", [*ev, "--data-dir", data, "--out", data, "--overwrite"],
        ["--out", "data", "input"])
    for flag, value in (("--num-samples", "0"), ("--num-samples", "-1"), ("--num-inference-steps", "0"),
                        ("--max-text-length", "0"), ("--max-text-length", "-4"), ("--num-frames", "6"),
                        ("--height", "17"), ("--fps", "0"), ("--temperature", "-1"), ("--temperature", "nan"),
                        ("--start", "-1"), ("--duration", "0"), ("--video-column", "nope"),
                        ("--reference-column", "nope")):
        cli(f"evaluate {flag} {value}", [*ev, "--data-dir", data, flag, value, "--out", str(runs / f"ev{len(P.results)}.json")],
            [flag, flag.strip("-"), flag.strip("-").replace("-", "_"), "nope"])
    cli("params --config missing", ["params", "--config", str(d / "nocfg.json")], ["nocfg.json"])
    cli("params --config not JSON", ["params", "--config", str(files["txt"])], ["caption.txt"])
    (d / "list.json").write_text("[1]")
    cli("params --config a JSON list", ["params", "--config", str(d / "list.json")], ["list.json"])
    cli("params --config bad values", ["params", "--config", str(good / "transformer" / "config.json"),
                                       "--num-layers", "-1"] if False else
        ["params", "--config", str(d / "list.json")], ["list.json"])
    cli("params --model missing", ["params", "--model", str(d / "nomodel")], ["nomodel", "--model"])
    cw = ["convert", "wan"]
    cli("convert wan --wan missing", [*cw, "--wan", str(d / "nowan"), "--out", str(d / "cw1")], ["nowan"])
    cli("convert wan --wan a UniViGU folder", [*cw, "--wan", m, "--out", str(d / "cw2")], ["wan", "UniViGU"],
        watch=[good], may_run=True)
    cli("convert wan --out = --wan", [*cw, "--wan", str(wan), "--out", str(wan)], ["--out", "--wan"], watch=[wan])
    cli("convert wan --out = --wan --overwrite", [*cw, "--wan", str(wan), "--out", str(wan), "--overwrite"],
        ["--out", "--wan"], watch=[wan])
    cli("convert wan --out inside --wan", [*cw, "--wan", str(wan), "--out", str(wan / "sub")], ["--out", "--wan"],
        watch=[wan])
    cli("convert wan --out a non-empty folder", [*cw, "--wan", str(wan), "--out", str(files["data"])],
        ["--out", "--overwrite", "data"])
    cli("convert wan --out a file", [*cw, "--wan", str(wan), "--out", str(files["txt"])], ["caption.txt", "--out"])
    cli("convert wan --dtype bad", [*cw, "--wan", str(wan), "--out", str(d / "cw3"), "--dtype", "int4"], ["--dtype"])
    cr = ["convert", "reference", "--wan", str(wan)]
    cli("convert reference --checkpoint missing", [*cr, "--checkpoint", str(d / "ck.pt"), "--out", str(d / "cr1")],
        ["ck.pt"])
    cli("convert reference --checkpoint text", [*cr, "--checkpoint", str(files["txt"]), "--out", str(d / "cr2")],
        ["caption.txt"])
    cli("convert reference --checkpoint truncated", [*cr, "--checkpoint", str(files["truncated"]), "--out",
                                                     str(d / "cr3")], ["truncated.mp4"])
    cli("convert reference --out = --wan", [*cr, "--checkpoint", str(files["txt"]), "--out", str(wan)],
        ["--out", "--wan", "caption.txt"], watch=[wan])
    cli("unknown subcommand", ["frobnicate"], ["frobnicate"])
    cli("no subcommand", [], ["command", "subcommand", "required"])


def probe_training(P: Prober, files, good, wan, d: Path):
    from univigu.training.cli import script_main

    data = str(files["data"])
    watch = [files["data"].parent]
    base = ["--pretrained_model_name_or_path", str(wan), "--train_data_dir", data, "--height", "32", "--width", "32",
            "--num_frames", "9", "--max_train_steps", "1", "--train_batch_size", "1", "--dataloader_num_workers", "0"]

    def tr(name, argv, names, stage="recall", watch=watch, out=True):
        args = list(argv)
        if out and "--output_dir" not in args:
            args += ["--output_dir", str(d.parent / "runs" / f"run_{len(P.results)}")]
        P.probe("training", f"{stage}: {name}", lambda: (script_main(stage, args), ""), names=names, watch=watch,
                exit_style=True, typed=args)

    def replace(flag, value):
        a = list(base)
        a[a.index(flag) + 1] = value
        return a

    for value in ("0", "2", "6", "-1", "-3", "-7", "abc", "1.5", "100000"):
        tr(f"--num_frames {value}", replace("--num_frames", value), ["--num_frames"])
    for flag in ("--height", "--width"):
        for value in ("17", "0", "-16", "x"):
            tr(f"{flag} {value}", replace(flag, value), [flag, "--height/--width"])
    tr("missing --train_data_dir", [a for i, a in enumerate(base) if base[i - 1] != "--train_data_dir"
                                    and a != "--train_data_dir"], ["--train_data_dir"])
    tr("--train_data_dir missing", replace("--train_data_dir", str(d / "nodata")), ["nodata", "--train_data_dir"])
    (d / "tnometa").mkdir()
    tr("--train_data_dir without metadata", replace("--train_data_dir", str(d / "tnometa")),
       ["metadata", "tnometa"])
    tr("--train_data_dir a file", replace("--train_data_dir", str(files["txt"])), ["caption.txt", "--train_data_dir"])
    tr("--output_dir = base model", [*base, "--output_dir", str(wan)], ["--output_dir", "wan", "base"],
       watch=[*watch, wan])
    tr("--output_dir = base model --overwrite_output_dir", [*base, "--output_dir", str(wan), "--overwrite_output_dir"],
       ["--output_dir", "wan", "base"], watch=[*watch, wan])
    tr("--output_dir = data dir", [*base, "--output_dir", data], ["--output_dir", "data"])
    tr("--output_dir = data dir --overwrite_output_dir", [*base, "--output_dir", data, "--overwrite_output_dir"],
       ["--output_dir", "data"])
    tr("--output_dir a file", [*base, "--output_dir", str(files["txt"])], ["caption.txt", "--output_dir"])
    tr("--output_dir = finished UniViGU model", [*base, "--output_dir", str(good)], ["--output_dir", "good"],
       watch=[*watch, good])
    tr("--resume latest onto a finished model", [*base, "--output_dir", str(good), "--resume_from_checkpoint",
                                                 "latest"], ["--output_dir", "good", "checkpoint"],
       watch=[*watch, good])
    tr("--resume_from_checkpoint missing", [*base, "--resume_from_checkpoint", str(d / "ck-9")], ["ck-9", "checkpoint"])
    tr("--pretrained missing", replace("--pretrained_model_name_or_path", str(d / "nobase")), ["nobase"])
    tr("--pretrained a data folder", replace("--pretrained_model_name_or_path", data), ["data", "model_index"])
    for flag, value in (("--learning_rate", "-1"), ("--learning_rate", "nan"), ("--learning_rate", "abc"),
                        ("--train_batch_size", "0"), ("--train_batch_size", "-2"), ("--max_train_steps", "0"),
                        ("--max_train_steps", "-5"), ("--gradient_accumulation_steps", "0"),
                        ("--checkpointing_steps", "-1"), ("--mixed_precision", "fp7"),
                        ("--dataloader_num_workers", "-1"), ("--seed", "x"), ("--validation_steps", "-2"),
                        ("--checkpoints_total_limit", "0"), ("--lr_warmup_steps", "-1"), ("--max_grad_norm", "nan"),
                        ("--max_text_length", "0"), ("--max_text_length", "-3")):
        argv = list(base) + [flag, value] if flag not in base else replace(flag, value)
        tr(f"{flag} {value}", argv, [flag, flag.strip("-")])
    tr("unknown flag --num-frames", [*base, "--num-frames", "9"], ["--num-frames"])
    tr("refine: --num_frames 6", replace("--num_frames", "6"), ["--num_frames"], stage="refine")
    tr("refine: --output_dir = base model", [*base, "--output_dir", str(wan)], ["--output_dir", "wan"],
       stage="refine", watch=[*watch, wan])


def probe_space(P: Prober, pipe, files, d: Path):
    sys.path.insert(0, str(ROOT / "spaces_demo"))
    import app

    demo = app.UniViGUDemo(pipe, max_upload_mb=1, max_video_seconds=30, output_dir=str(d.parent / "runs" / "space"))
    watch = [files["data"].parent]
    sp = lambda name, fn, names: P.probe("space", name, fn, names=names, watch=watch)
    for prompt in ("", "   ", None, 5, ["a"], {"x": 1}):
        sp(f"text_to_video prompt={prompt!r}", lambda p=prompt: demo.text_to_video(p, steps=1), ["prompt"])
        sp(f"joint prompt={prompt!r}", lambda p=prompt: demo.joint(p, steps=1), ["prompt"])
    for arg, values in {"seed": (-1, 2**40, "x", 1.5, float("nan")), "steps": (0, -1, 1000, "x", 2.5, float("inf")),
                        "guidance": (-1.0, float("nan"), 1e9, "g"),
                        "height": (8, 4096, -32, "h", 17), "width": (8, 4096, 17), "frames": (0, 500, 6, -1, "f")}.items():
        for value in values:
            name = {"height": "size", "width": "size", "frames": "frames", "guidance": "guidance"}.get(arg, arg)
            sp(f"text_to_video {arg}={value!r}",
               lambda a=arg, v=value: demo.text_to_video("a red circle", **{a: v}), [name, arg])
    sp("text_to_video too much work", lambda: demo.text_to_video("a", steps=100, height=1024, width=1024, frames=161),
       ["work", "limit"])
    for desc, video in [("None", None), ("empty string", ""), ("missing path", str(d / "gone.mp4")),
                        ("text file", str(files["text_mp4"])), ("zero-byte mp4", str(files["empty"])),
                        ("truncated mp4", str(files["truncated"])), ("playlist", str(files["playlist"])),
                        ("txt suffix", str(files["txt"])), ("a folder", str(files["data"])),
                        ("dict without path", {"foo": 1}), ("dict with missing path", {"path": str(d / "gone.mp4")}),
                        ("URL", "http://example.invalid/a.mp4"), ("int", 5), ("list", [str(files["clip"])])]:
        sp(f"video_to_text video {desc}", lambda v=video: demo.video_to_text(v, steps=1),
           ["video", "upload", Path(str(video)).name if isinstance(video, str) and video else "video"])
    clip = str(files["clip"])
    for arg, values in {"steps": (0, -1, "x", 1000), "text_length": (0, 1, 10**6, "t"), "seed": (-5, "s")}.items():
        for value in values:
            name = {"text_length": "text_length"}.get(arg, arg)
            sp(f"video_to_text {arg}={value!r}", lambda a=arg, v=value: demo.video_to_text(clip, **{a: v}), [name])
    for arg, values in {"text_length": (0, 10**6), "guidance": (float("nan"),), "steps": (0, 10**4)}.items():
        for value in values:
            sp(f"joint {arg}={value!r}", lambda a=arg, v=value: demo.joint("a red circle", **{a: v}), [arg, "work"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(CLASSES), help="comma-separated classes to run")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a probe counts as a hang")
    parser.add_argument("--json", default=None, help="also write every probe's outcome to this file")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    torch.set_num_threads(1)
    start = time.time()
    P = Prober(args.timeout, known_flags())
    with tempfile.TemporaryDirectory(prefix="univigu-probe-") as tmp:
        d = Path(tmp)
        files = make_files(d / "user")
        pipe, components = make_pipeline()
        good, wan = probe_loading(P, pipe, components, d / "folders") if only & {"loading", "cli", "training"} \
            else (None, None)
        if "loading" not in only:
            P.results = [r for r in P.results if r[0] != "loading"]
        if "pipeline" in only:
            probe_pipeline(P, pipe, files)
        if "cli" in only:
            probe_cli(P, files, good, wan, d / "user")
        if "training" in only:
            probe_training(P, files, good, wan, d / "user")
        if "space" in only:
            probe_space(P, pipe, files, d / "user")
    print(f"\n{'class':<10} {'probes':>6} {'handled':>8} {'mishandled':>10}")
    total = [0, 0, 0]
    for cls in CLASSES:
        rows = [r for r in P.results if r[0] == cls]
        if not rows:
            continue
        h = sum(r[2] == "handled" for r in rows)
        print(f"{cls:<10} {len(rows):>6} {h:>8} {len(rows) - h:>10}")
        total = [total[0] + len(rows), total[1] + h, total[2] + len(rows) - h]
    print(f"{'total':<10} {total[0]:>6} {total[1]:>8} {total[2]:>10}   ({time.time() - start:.0f} s)")
    bad = [r for r in P.results if r[2] != "handled"]
    if bad:
        print("\nmishandled:")
        for cls, name, _, detail, elapsed in bad:
            print(f"- [{cls}] {name} ({elapsed:.1f} s): {detail}")
    slow = sorted(P.results, key=lambda r: -r[4])[:5]
    print("\nslowest probes: " + "; ".join(f"{r[1]} {r[4]:.1f} s" for r in slow))
    if args.json:
        Path(args.json).write_text(json.dumps([dict(zip(("class", "probe", "outcome", "detail", "seconds"), r))
                                               for r in P.results], indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
