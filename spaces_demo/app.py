# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Uni-ViGU in the browser: one video diffusion transformer that writes videos from text and captions videos.

    python spaces_demo/app.py                       # the bundled ShapesWorld checkpoint, http://127.0.0.1:7860
    python spaces_demo/app.py --model PATH_OR_HUB_ID --dtype bfloat16 --cpu-offload
    python spaces_demo/app.py --model Fr0zencr4nE/Uni-ViGU   # the authors' weights, converted on first start

On a Hugging Face Space (`SPACE_ID` is set) the app binds 0.0.0.0. Settings also come from the environment:
`UNIVIGU_MODEL` (pipeline folder or Hub id), `UNIVIGU_DTYPE` (float32 / bfloat16 / float16), `UNIVIGU_DEVICE`,
`UNIVIGU_CPU_OFFLOAD=1` (`enable_model_cpu_offload`), `UNIVIGU_VAE_TILING=1`, `UNIVIGU_FP8=1` (fp8 weight storage), `UNIVIGU_MAX_UPLOAD_MB`,
`UNIVIGU_MAX_VIDEO_SECONDS`, `UNIVIGU_MAX_WORK`, `UNIVIGU_GPU_DURATION`; for a reference checkpoint `UNIVIGU_WAN`,
`UNIVIGU_CACHE`, `UNIVIGU_REVISION`, `UNIVIGU_FILENAME`, `UNIVIGU_REFERENCE=1`. Flags win over the environment.

The model is the bundled ShapesWorld checkpoint, a converted UniViGU pipeline folder or its Hub id, or a *reference*
checkpoint: the authors' release `Fr0zencr4nE/Uni-ViGU` (a raw training checkpoint, not a diffusers folder), a local
`.pth` / `.safetensors` file, or a folder holding one. A reference checkpoint is converted once (`univigu convert
reference`, with the Wan2.1-T2V-1.3B folder it was trained from, `--wan`) into the cache (`--cache-dir`, default
`$HF_HOME/univigu/converted`), and every later start loads the converted folder from there. With the `spaces` package
(ZeroGPU Spaces have it), the three inference functions run under `spaces.GPU(duration=--gpu-duration)`.

One pipeline is loaded once; every request goes through one queue with a concurrency limit of one, so inference
never holds two models' worth of memory (or two requests' activations) at once. So that no request holds that queue
for long, each one's work is bounded: frames x height x width x (steps + VAE_STEP_EQUIVALENT) of the video the
model sees (generated, or an upload after it is brought to the checkpoint's size and frame count) must stay within
`--max-work` (default `MAX_WORK`: about 60 s on a 2-core CPU with the bundled checkpoint); a request above it is
refused with a `gr.Error` naming the limit and its values. Uploads of any size are captioned: the pipeline resizes,
crops and samples them to what the checkpoint was trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any
from collections.abc import Sequence

try:  # ZeroGPU: `spaces` is imported before gradio and torch, as its documentation asks
    import spaces
except ImportError:  # anywhere else the app runs without it
    spaces = None

import gradio as gr
import numpy as np
import torch


TITLE = "Uni-ViGU: one video diffusion model, both directions"
EXAMPLE_PROMPTS = [
    "a red circle moving left",
    "a blue triangle moving up",
    "a yellow square staying still",
    "a green square moving right and a magenta circle moving down",
]
#: Prompts for a model of real videos (the reference checkpoint, or any checkpoint that is not a ShapesWorld one).
REAL_EXAMPLE_PROMPTS = [
    "A cat walks on the grass, realistic style.",
    "A red sports car drives along a coastal road at sunset, aerial shot.",
    "Waves crash against the rocks of a lighthouse on a stormy day.",
    "Two astronauts in white suits float inside a space station, cinematic lighting.",
]
#: The authors' release: a raw training checkpoint (not a diffusers folder), converted on the first start.
REFERENCE_REPO = "Fr0zencr4nE/Uni-ViGU"
#: The Wan2.1 folder the reference checkpoint was trained from (its text encoder, tokenizer and VAE).
WAN_REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
#: Seconds one request may hold a ZeroGPU (`spaces.GPU(duration=...)`): an estimate for the 1.3B model at its
#: default 81 x 480 x 832, 50 steps with guidance, not a measurement of a full request (docs/memory.md measured 12.9 s
#: for 3 steps + decode on an H100); `--gpu-duration` changes it.
GPU_DURATION = 180
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif", ".m4v"}
LIMITS = {"seed": (0, 2**31 - 1), "steps": (1, 100), "guidance": (0.0, 20.0), "text_length": (4, 128),
          "size": (16, 1024), "frames": (1, 161)}
#: The VAE's share of a request, in denoising steps (it encodes or decodes once; measured on the bundled checkpoint:
#: 17 x 128 x 128 costs ~2.6 s a step and ~12 s of VAE and set-up on the 2-core CPU).
VAE_STEP_EQUIVALENT = 5
#: frames x height x width x (steps + VAE_STEP_EQUIVALENT) one request may ask for: ~60 s on the 2-core CPU with the
#: bundled checkpoint (measured: 9 x 64 x 64 at 100 steps, 3.9M, 57 s; 17 x 128 x 128 at 8 steps, 3.6M, 33 s;
#: 17 x 256 x 256 at 1 step, 6.7M, 80 s). A bigger model or a GPU wants another value (`--max-work`); without one,
#: the limit is the larger of this and the checkpoint's own default request (`default_max_work`).
MAX_WORK = 4_000_000


# ------------------------------------------------------------------------------------------------ settings, model


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Uni-ViGU Gradio app (text -> video, video -> text, joint).")
    p.add_argument("--model", default=env("UNIVIGU_MODEL"),
                   help="UniViGU pipeline folder or Hub id, or a reference checkpoint to convert on the first start "
                        f"({REFERENCE_REPO}, a .pth / .safetensors file or a folder holding one) (default: the bundled "
                        "ShapesWorld checkpoint)")
    p.add_argument("--reference", action="store_true", default=env("UNIVIGU_REFERENCE", "0") == "1",
                   help=f"treat --model as a reference checkpoint to convert (automatic for {REFERENCE_REPO}, files "
                        "and folders without model_index.json; needed for a Hub copy of the release under another id)")
    p.add_argument("--wan", default=env("UNIVIGU_WAN", WAN_REPO),
                   help=f"the Wan2.1 folder or Hub id a reference checkpoint was trained from (default {WAN_REPO})")
    p.add_argument("--cache-dir", default=env("UNIVIGU_CACHE"),
                   help="where a converted reference checkpoint is kept (default: $HF_HOME/univigu/converted)")
    p.add_argument("--revision", default=env("UNIVIGU_REVISION"), help="branch, tag or commit of a reference Hub repo")
    p.add_argument("--filename", default=env("UNIVIGU_FILENAME"),
                   help="the checkpoint file of a reference repo or folder that holds several")
    p.add_argument("--gpu-duration", type=int, default=int(env("UNIVIGU_GPU_DURATION", str(GPU_DURATION))),
                   help=f"seconds one request may hold a ZeroGPU (spaces.GPU(duration=...); default {GPU_DURATION})")
    p.add_argument("--dtype", default=env("UNIVIGU_DTYPE"), choices=("float32", "bfloat16", "float16"),
                   help="transformer/text-encoder dtype (default: bfloat16 on CUDA, float32 otherwise)")
    p.add_argument("--device", default=env("UNIVIGU_DEVICE"), help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--cpu-offload", action="store_true", default=env("UNIVIGU_CPU_OFFLOAD", "0") == "1",
                   help="pipe.enable_model_cpu_offload(): weights live on the CPU, each model moves to the GPU in turn")
    p.add_argument("--vae-tiling", action="store_true", default=env("UNIVIGU_VAE_TILING", "0") == "1")
    p.add_argument("--fp8", action="store_true", default=env("UNIVIGU_FP8", "0") == "1",
                   help="store the transformer's layers in float8 (layerwise casting; computes in --dtype)")
    p.add_argument("--max-upload-mb", type=float, default=float(env("UNIVIGU_MAX_UPLOAD_MB", "50")))
    p.add_argument("--max-video-seconds", type=float, default=float(env("UNIVIGU_MAX_VIDEO_SECONDS", "60")))
    max_work = env("UNIVIGU_MAX_WORK")
    p.add_argument("--max-work", type=float, default=float(max_work) if max_work else None,
                   help="the most frames x height x width x (steps + %d) one request may ask for (default: %d, about "
                        "60 s on a 2-core CPU with the bundled checkpoint, or the checkpoint's default request if "
                        "that is more)" % (VAE_STEP_EQUIVALENT, MAX_WORK))
    p.add_argument("--host", default=None, help="default: 0.0.0.0 on a Space (SPACE_ID set), else 127.0.0.1")
    p.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")))
    return p.parse_args(argv)


def is_reference_checkpoint(model: str | None, reference: bool = False) -> bool:
    """Whether `model` is a reference checkpoint to convert (not a pipeline folder): the authors' Hub repo, a checkpoint
    file, a local folder without `model_index.json`, or anything when `reference` is set."""
    if model is None:
        return False
    if reference:
        return True
    path = Path(model)
    if path.is_file():
        return True
    if path.is_dir():
        return not (path / "model_index.json").is_file()
    return model.strip("/").lower() == REFERENCE_REPO.lower()


def default_cache_dir() -> Path:
    """`$HF_HOME/univigu/converted` (on a Space with persistent storage HF_HOME lies under /data, so it survives)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "univigu" / "converted"


def converted_folder(model: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None,
                     filename: str | None = None) -> Path:
    """Where the conversion of the reference checkpoint `model` is kept: one folder per Hub id (and revision, file),
    or per local file or folder (its absolute path, size and modification time: a new checkpoint there is converted
    anew)."""
    def safe(text: str) -> str:
        return re.sub(r"[^\w.-]+", "_", text)

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = Path(model)
    if path.exists():
        stat = path.resolve().stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{filename}"
        return root / f"local--{safe(path.resolve().name)}--{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    parts = [model.strip("/").replace("/", "--")] + [safe(part) for part in (revision, filename) if part]
    return root / "--".join(parts)


def prepare_model(model: str | None = None, reference: bool = False, wan: str = WAN_REPO,
                  cache_dir: str | os.PathLike | None = None, revision: str | None = None,
                  filename: str | None = None) -> str:
    """The pipeline folder or Hub id to load: `model` as is (the bundled checkpoint when None), or, for a reference
    checkpoint, its converted folder in the cache, converting it on the first start only."""
    from univigu.toyworld import DEFAULT_CHECKPOINT

    if not is_reference_checkpoint(model, reference):
        return model or DEFAULT_CHECKPOINT
    from univigu.conversion.common import PROVENANCE_FILE

    folder = converted_folder(model, cache_dir, revision, filename)
    if (folder / "model_index.json").is_file() and (folder / PROVENANCE_FILE).is_file():
        print(f"Using the converted reference checkpoint {model} from {folder} (delete that folder to convert anew).",
              flush=True)
        return str(folder)
    from univigu.conversion.reference import convert_reference_checkpoint

    print(f"Converting the reference checkpoint {model} with {wan} into {folder} (first start only) ...", flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # overwrite: a folder left without its provenance record is a conversion that did not finish
    convert_reference_checkpoint(model, wan, folder, filename=filename, revision=revision, overwrite=True)
    print(f"Converted {model} into {folder}.", flush=True)
    return str(folder)


def load_pipeline(model: str | None = None, dtype: str | None = None, device: str | None = None,
                  cpu_offload: bool = False, vae_tiling: bool = False, fp8: bool = False):
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    pipe = UniViGUPipeline.from_pretrained(model or DEFAULT_CHECKPOINT, dtype=getattr(torch, dtype))
    if dtype != "float32":
        pipe.vae.to(torch.float32)  # Wan's VAE runs in fp32, as in diffusers' Wan examples
    if vae_tiling:
        pipe.vae.enable_tiling()
    if fp8:  # keeps in high precision exactly what WanTransformer3DModel keeps (docs/memory.md)
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, dtype))
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


# ------------------------------------------------------------------------------------------------ input checks


def _number(name: str, value: Any, kind=int) -> Any:
    """Sliders bound their values in the browser; API callers can send anything, so check again here."""
    low, high = LIMITS[name]
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):  # int(inf) is an OverflowError
        raise gr.Error(f"{name} must be a number between {low} and {high}, got {value!r}.")
    if not np.isfinite(number) or not low <= number <= high or (kind is int and float(value) != number):
        raise gr.Error(f"{name} must be {'an integer' if kind is int else 'a number'} between {low} and {high}, "
                       f"got {value!r}.")
    return number


def _given(value: Any, default: Any) -> Any:
    """`value`, or `default` when it was left out (None or ""): a 0 is checked, not replaced by the default (found by
    benchmarks/probe_bad_inputs.py: steps=0 or frames=0 from an API caller ran with the defaults)."""
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


def _prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise gr.Error("The prompt is empty: describe a video, e.g. 'a red circle moving left'.")
    return prompt.strip()


def check_work(frames: int, height: int, width: int, steps: int, max_work: float) -> None:
    """Refuse a request whose work (frames x height x width x (steps + VAE_STEP_EQUIVALENT)) is above `max_work`,
    naming the limit and the values, so that no single request holds the queue for long."""
    work = frames * height * width * (steps + VAE_STEP_EQUIVALENT)
    if work > max_work:
        raise gr.Error(
            f"This request is too much work for this Space: frames x height x width x (steps + "
            f"{VAE_STEP_EQUIVALENT}) = {frames} x {height} x {width} x ({steps} + {VAE_STEP_EQUIVALENT}) = {work:,}, "
            f"above the limit of {max_work:,.0f}. Use fewer frames, a smaller size or fewer steps."
        )


def default_max_work(pipe) -> float:
    """The work bound when none is given: `MAX_WORK`, or the checkpoint's default text-to-video request if that is
    more (the reference checkpoint's 81 x 480 x 832 at 50 steps), so that the default request is always served."""
    size = [pipe.call_default(k, "t2v") for k in ("num_frames", "height", "width", "num_inference_steps")]
    frames, height, width, steps = size
    return float(max(MAX_WORK, frames * height * width * (steps + VAE_STEP_EQUIVALENT)))


def is_shapesworld(pipe) -> bool:
    """A ShapesWorld checkpoint (it records its world in shapesworld.json): its example prompts and clips apply."""
    from univigu.toyworld.world import WORLD_FILENAME

    return (Path(str(pipe.name_or_path)) / WORLD_FILENAME).is_file()


def on_gpu(fn, duration: int):
    """`fn` under `spaces.GPU(duration=...)` when the `spaces` package is there (a ZeroGPU Space), else `fn`."""
    return fn if spaces is None else spaces.GPU(duration=duration)(fn)


def check_video_file(path: Any, max_upload_mb: float, max_seconds: float) -> str:
    """Refuse what the pipeline cannot or should not read, before any decoding of frames."""
    if isinstance(path, dict):  # gradio_client / API callers may send a FileData dict
        path = path.get("video") or path.get("path")
        if isinstance(path, dict):
            path = path.get("path")
    if not path:
        raise gr.Error("No video: upload one (mp4, webm, gif, ...) or click one of the example clips.")
    path = str(path)
    if not os.path.isfile(path):
        raise gr.Error("The uploaded video could not be found on the server: upload it again.")
    size_mb = os.path.getsize(path) / 2**20
    if size_mb > max_upload_mb:
        raise gr.Error(f"The video is {size_mb:.0f} MB; the limit here is {max_upload_mb:.0f} MB. Trim or re-encode "
                       "it (e.g. `ffmpeg -i in.mp4 -t 10 -vf scale=-2:256 out.mp4`).")
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise gr.Error(f"'{Path(path).name}' is not a video file; upload an mp4, webm, mov, mkv, avi or gif.")
    import imageio.v3 as iio

    try:
        meta = iio.immeta(path)
        if Path(path).suffix.lower() == ".gif":  # pillow reports a gif's duration per frame, in milliseconds
            duration = iio.improps(path).shape[0] * float(meta.get("duration") or 100) / 1000.0
        else:
            duration = meta.get("duration")
    except Exception as error:  # imageio/ffmpeg raise many different types for a broken file
        raise gr.Error(f"Could not read '{Path(path).name}' as a video ({type(error).__name__}). Re-encode it as "
                       "H.264 mp4: `ffmpeg -i in -c:v libx264 -pix_fmt yuv420p out.mp4`.")
    if duration is not None and np.isfinite(duration) and duration > max_seconds:
        raise gr.Error(f"The video is {duration:.0f} s long; the limit here is {max_seconds:.0f} s. Trim it "
                       "(e.g. `ffmpeg -i in.mp4 -t 10 out.mp4`): the model samples a few frames from the whole clip.")
    return path


# ------------------------------------------------------------------------------------------------ caption forming


def settled_steps(history: list[list[int]]) -> list[int]:
    """For each text position, the first step from which its token never changed again (1-based)."""
    final = history[-1]
    settled = []
    for position, token in enumerate(final):
        step = len(history)
        while step > 1 and history[step - 2][position] == token:
            step -= 1
        settled.append(step)
    return settled


def _step_colour(step: int, num_steps: int) -> str:
    # early (blue) -> late (red): the order in which the discrete flow committed the words
    hue = 230 - 230 * (step - 1) / max(1, num_steps - 1)
    return f"hsl({hue:.0f}, 75%, 45%)"


def forming_html(pipe, history: list[list[int]]) -> str:
    """The caption as it forms: the final words coloured by the step they settled at, then the text at every step."""
    if not history:
        return ""
    tokenizer = pipe.tokenizer
    special = set(tokenizer.all_special_ids)
    num_steps = len(history)

    def words(ids: list[int]) -> list[str]:
        return ["" if i in special or not 0 <= i < len(tokenizer) else tokenizer.decode([i]).strip() for i in ids]

    final = words(history[-1])
    settled = settled_steps(history)
    spans = [f'<span class="tok" title="settled at step {s}" style="color:{_step_colour(s, num_steps)};'
             f'font-weight:600">{html.escape(w)}</span>' for w, s in zip(final, settled) if w]
    legend = (f'<div style="font-size:0.85em;opacity:0.8">colour = the denoising step a word settled at: '
              f'<span style="color:{_step_colour(1, num_steps)}">step 1</span> &rarr; '
              f'<span style="color:{_step_colour(num_steps, num_steps)}">step {num_steps}</span></div>')
    rows = []
    for step, ids in enumerate(history, start=1):
        cells = " ".join(html.escape(w) if w else '<span style="opacity:0.35">&middot;</span>' for w in words(ids))
        rows.append(f"<tr><td style='padding-right:1em;opacity:0.7'>{step}</td><td>{cells}</td></tr>")
    table = (f"<details open><summary>the text at each of the {num_steps} steps</summary>"
             f"<table class='forming'>{''.join(rows)}</table></details>")
    return f'<div class="caption-forming"><p style="font-size:1.2em">{" ".join(spans)}</p>{legend}{table}</div>'


class _TextRecorder:
    """`callback_on_step_end` that keeps the text stream's tokens after every step (first sample of the batch)."""

    def __init__(self):
        self.history: list[list[int]] = []

    def __call__(self, pipe, step, timestep, callback_kwargs):
        self.history.append(callback_kwargs["text_ids"][0].tolist())
        return {}


# ------------------------------------------------------------------------------------------------ the app


class UniViGUDemo:
    def __init__(self, pipe, max_upload_mb: float = 50, max_video_seconds: float = 60, output_dir: str | None = None,
                 max_work: float | None = None, gpu_duration: int = GPU_DURATION):
        self.pipe = pipe
        self.max_work = default_max_work(pipe) if max_work is None else max_work
        self.gpu_duration = gpu_duration
        self.shapesworld = is_shapesworld(pipe)
        self.max_upload_mb = max_upload_mb
        self.max_video_seconds = max_video_seconds
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="univigu-space-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # The queue already runs one request at a time; the lock also covers direct calls of these methods.
        self._lock = threading.Lock()
        self.defaults = {
            "height": pipe.call_default("height", "t2v"), "width": pipe.call_default("width", "t2v"),
            "num_frames": pipe.call_default("num_frames", "t2v"),
            "t2v_steps": pipe.call_default("num_inference_steps", "t2v"),
            "v2t_steps": pipe.call_default("num_inference_steps", "v2t"),
            "guidance": pipe.call_default("guidance_scale", "t2v"),
            "text_length": pipe.call_default("max_text_length", "v2t"),
            # what the model sees of an upload: the pipeline brings any video to its trained size and frame count
            "v2t_view": tuple(pipe.call_default(k, "v2t") for k in ("num_frames", "height", "width")),
            "t2vt_view": tuple(pipe.call_default(k, "t2vt") for k in ("num_frames", "height", "width")),
        }

    def _generator(self, seed) -> torch.Generator:
        return torch.Generator().manual_seed(_number("seed", seed))

    def _write_video(self, frames: np.ndarray, fps: int = 8) -> str:
        from diffusers.utils import export_to_video

        path = tempfile.NamedTemporaryFile(suffix=".mp4", dir=self.output_dir, delete=False).name
        export_to_video(list(frames), path, fps=fps)
        return path

    def _run(self, **kwargs):
        try:
            with self._lock:
                return self.pipe(**kwargs)
        except (ValueError, TypeError) as error:  # the pipeline's own input checks say what to change
            raise gr.Error(str(error))

    def text_to_video(self, prompt, seed=0, steps=None, guidance=None, height=None, width=None, frames=None,
                      progress=gr.Progress(track_tqdm=True)):
        size = dict(num_frames=_number("frames", _given(frames, self.defaults["num_frames"])),
                    height=_number("size", _given(height, self.defaults["height"])),
                    width=_number("size", _given(width, self.defaults["width"])))
        steps = _number("steps", _given(steps, self.defaults["t2v_steps"]))
        check_work(*size.values(), steps, self.max_work)
        result = self._run(
            prompt=_prompt(prompt), generator=self._generator(seed), num_inference_steps=steps,
            guidance_scale=_number("guidance", self.defaults["guidance"] if guidance is None else guidance, float),
            **size,
        )
        return self._write_video(result.frames[0])

    def video_to_text(self, video, seed=0, steps=None, text_length=None, progress=gr.Progress(track_tqdm=True)):
        steps = _number("steps", _given(steps, self.defaults["v2t_steps"]))
        check_work(*self.defaults["v2t_view"], steps, self.max_work)
        path = check_video_file(video, self.max_upload_mb, self.max_video_seconds)
        recorder = _TextRecorder()
        result = self._run(
            video=path, task="v2t", generator=self._generator(seed), num_inference_steps=steps,
            max_text_length=_number("text_length", _given(text_length, self.defaults["text_length"])),
            callback_on_step_end=recorder, callback_on_step_end_tensor_inputs=["text_ids"],
        )
        return result.text[0], forming_html(self.pipe, recorder.history)

    def joint(self, prompt, seed=0, steps=None, guidance=None, text_length=None,
              progress=gr.Progress(track_tqdm=True)):
        steps = _number("steps", _given(steps, self.defaults["t2v_steps"]))
        check_work(*self.defaults["t2vt_view"], steps, self.max_work)
        recorder = _TextRecorder()
        result = self._run(
            prompt=_prompt(prompt), task="t2vt", generator=self._generator(seed), num_inference_steps=steps,
            guidance_scale=_number("guidance", self.defaults["guidance"] if guidance is None else guidance, float),
            max_text_length=_number("text_length", _given(text_length, self.defaults["text_length"])),
            callback_on_step_end=recorder, callback_on_step_end_tensor_inputs=["text_ids"],
        )
        return self._write_video(result.frames[0]), result.text[0], forming_html(self.pipe, recorder.history)

    def example_clips(self, count: int = 4) -> list[str]:
        """Fresh ShapesWorld test clips of the checkpoint's world (the first holds a colour-shape pair never seen in
        training), rendered once."""
        from univigu.toyworld import render_scene, scene_to_prompt, world_of_folder, write_video
        from univigu.toyworld.evaluate import held_out_test_scenes

        clips = []
        folder = self.output_dir / "examples"
        folder.mkdir(exist_ok=True)
        world = world_of_folder(self.pipe.name_or_path).version  # the world the checkpoint knows (its shapesworld.json)
        for index, scene in enumerate(held_out_test_scenes(count, num_objects=1, seed=7, version=world)):
            path = folder / f"{index}_{scene_to_prompt(scene).replace(' ', '_')}.mp4"
            if not path.exists():
                write_video(path, render_scene(scene), lossless=False)  # yuv420p: plays in browsers
            clips.append(str(path))
        return clips


def build_demo(demo_app: UniViGUDemo) -> gr.Blocks:
    d = demo_app.defaults
    size = f"{d['width']}x{d['height']}, {d['num_frames']} frames"
    model_note = (f"the ShapesWorld checkpoint ({size}; coloured shapes on black)" if demo_app.shapesworld
                  else f"the Uni-ViGU checkpoint {demo_app.pipe.name_or_path} ({size})")
    prompts = EXAMPLE_PROMPTS if demo_app.shapesworld else REAL_EXAMPLE_PROMPTS
    with gr.Blocks(title=TITLE) as blocks:
        gr.Markdown(f"# {TITLE}\nA video diffusion transformer that also reads: its text stream is denoised by "
                    f"discrete flow matching next to the video stream. Running {model_note}.")
        with gr.Tab("Text -> Video", id="t2v"):
            with gr.Row():
                with gr.Column():
                    t2v_prompt = gr.Textbox(label="Prompt", value=prompts[0], elem_id="t2v-prompt")
                    with gr.Accordion("Settings", open=False):
                        t2v_seed = gr.Number(label="Seed", value=0, precision=0)
                        t2v_steps = gr.Slider(*LIMITS["steps"], value=d["t2v_steps"], step=1, label="Steps")
                        t2v_guidance = gr.Slider(*LIMITS["guidance"], value=d["guidance"], step=0.5, label="Guidance scale")
                        t2v_height = gr.Slider(*LIMITS["size"], value=d["height"], step=16, label="Height")
                        t2v_width = gr.Slider(*LIMITS["size"], value=d["width"], step=16, label="Width")
                        t2v_frames = gr.Slider(*LIMITS["frames"], value=d["num_frames"], step=4, label="Frames (4k+1)")
                    t2v_button = gr.Button("Generate video", variant="primary", elem_id="t2v-run")
                t2v_video = gr.Video(label="Generated video", elem_id="t2v-video", autoplay=True, loop=True)
            gr.Examples([[p] for p in prompts], inputs=[t2v_prompt])
        with gr.Tab("Video -> Text", id="v2t"):
            with gr.Row():
                with gr.Column():
                    v2t_video = gr.Video(label="Video to caption", sources=["upload"], elem_id="v2t-video")
                    with gr.Accordion("Settings", open=False):
                        v2t_seed = gr.Number(label="Seed", value=0, precision=0)
                        v2t_steps = gr.Slider(*LIMITS["steps"], value=d["v2t_steps"], step=1, label="Text steps")
                        v2t_length = gr.Slider(*LIMITS["text_length"], value=d["text_length"], step=1, label="Text length (tokens)")
                    v2t_button = gr.Button("Caption it", variant="primary", elem_id="v2t-run")
                with gr.Column():
                    v2t_caption = gr.Textbox(label="Caption", elem_id="v2t-caption", interactive=False)
                    v2t_forming = gr.HTML(label="The caption forming")
            if demo_app.shapesworld:  # clips of the checkpoint's world; a model of real videos takes uploads
                gr.Examples([[clip] for clip in demo_app.example_clips()], inputs=[v2t_video],
                            label="ShapesWorld clips the model never saw (click one)")
        with gr.Tab("Text -> Video + Caption", id="t2vt"):
            with gr.Row():
                with gr.Column():
                    joint_prompt = gr.Textbox(label="Prompt", value=prompts[3], elem_id="joint-prompt")
                    with gr.Accordion("Settings", open=False):
                        joint_seed = gr.Number(label="Seed", value=0, precision=0)
                        joint_steps = gr.Slider(*LIMITS["steps"], value=d["t2v_steps"], step=1, label="Steps")
                        joint_guidance = gr.Slider(*LIMITS["guidance"], value=d["guidance"], step=0.5, label="Guidance scale")
                        joint_length = gr.Slider(*LIMITS["text_length"], value=d["text_length"], step=1, label="Text length (tokens)")
                    joint_button = gr.Button("Generate video and caption", variant="primary", elem_id="joint-run")
                with gr.Column():
                    joint_video = gr.Video(label="Generated video", autoplay=True, loop=True, elem_id="joint-video")
                    joint_caption = gr.Textbox(label="Its caption", interactive=False, elem_id="joint-caption")
                    joint_forming = gr.HTML(label="The caption forming")
            gr.Examples([[p] for p in prompts], inputs=[joint_prompt])

        # One concurrency group for every event: one request runs at a time, whatever the tab. On ZeroGPU each
        # request holds a GPU for at most --gpu-duration seconds.
        common = dict(concurrency_limit=1, concurrency_id="model")
        gpu = lambda fn: on_gpu(fn, demo_app.gpu_duration)  # noqa: E731
        t2v_button.click(gpu(demo_app.text_to_video), [t2v_prompt, t2v_seed, t2v_steps, t2v_guidance, t2v_height,
                                                       t2v_width, t2v_frames], t2v_video, api_name="t2v", **common)
        v2t_button.click(gpu(demo_app.video_to_text), [v2t_video, v2t_seed, v2t_steps, v2t_length],
                         [v2t_caption, v2t_forming], api_name="v2t", **common)
        joint_button.click(gpu(demo_app.joint), [joint_prompt, joint_seed, joint_steps, joint_guidance, joint_length],
                           [joint_video, joint_caption, joint_forming], api_name="t2vt", **common)
    blocks.queue(default_concurrency_limit=1, max_size=64)
    return blocks


def create_demo(args: argparse.Namespace) -> gr.Blocks:
    """What a start does before serving: the model (a reference checkpoint converted on the first start), the
    pipeline, the app and its page."""
    model = prepare_model(args.model, args.reference, args.wan, args.cache_dir, args.revision, args.filename)
    pipe = load_pipeline(model, args.dtype, args.device, args.cpu_offload, args.vae_tiling, args.fp8)
    app = UniViGUDemo(pipe, max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_video_seconds,
                      max_work=args.max_work, gpu_duration=args.gpu_duration)
    return build_demo(app)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    host = args.host or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    create_demo(args).launch(server_name=host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
