"""Captioning videos from the wild with the bundled ShapesWorld checkpoint (issue #29, item 1): time and peak memory.

    python benchmarks/bench_caption_wild_video.py              # the table of docs/benchmarks.md
    python benchmarks/bench_caption_wild_video.py --json out.json

Clips are written (PyAV, H.264 yuv420p, moving coloured boxes on a gradient) into a temporary folder: 320 x 240 at 30
fps for 3 s (the clip that took 13 minutes before the fix), 1280 x 720 at 30 fps for 10 s, and 3840 x 2160 at 30 fps
for 10 s. Each case runs in its own subprocess (one torch thread, as the project's benchmarks do), which loads the
pipeline and then captions the clip from its path with the checkpoint's defaults (64 x 64, 9 frames at 8 fps from
the start, 16 steps, 40 tokens): `caption s` is that call, file to text (decoding and resizing included; `decode s`
is the `preprocess_video` share of it, measured in a second call), and `peak RSS` the process's peak resident memory
(VmHWM of /proc/self/status, loading included; the clips are written by another subprocess, so that no parent's
memory is counted). `univigu caption` is the whole command as a user runs it (a new Python process: imports,
loading, decoding, captioning).

Goals: the 720p clip captioned in <= 10 s; the 4K clip's peak RSS <= 2x the 720p clip's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


CASES = (  # name, width, height, fps, seconds
    ("320x240, 30 fps, 3 s", 320, 240, 30, 3),
    ("1280x720, 30 fps, 10 s", 1280, 720, 30, 10),
    ("3840x2160, 30 fps, 10 s", 3840, 2160, 30, 10),
)


def write_clip(path: str, width: int, height: int, fps: int, seconds: int) -> None:
    """A browser-playable H.264 clip: two boxes moving over a gradient."""
    import av

    ys, xs = np.mgrid[0:height, 0:width]
    background = np.stack([xs * 255 // width, ys * 255 // height, np.full_like(xs, 96)], axis=-1).astype(np.uint8)
    box = max(8, height // 5)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(fps * seconds):
            frame = background.copy()
            x = int((width - box) * (i / (fps * seconds)))
            frame[height // 4 : height // 4 + box, x : x + box] = (220, 30, 30)
            frame[height // 2 : height // 2 + box, width - box - x : width - x] = (30, 30, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM (Linux), else `getrusage`'s ru_maxrss (which Linux carries over
    from a parent across fork and exec)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(path: str) -> dict:
    """In this (sub)process: load the bundled pipeline, caption `path`, report times and peak RSS."""
    import torch

    torch.set_num_threads(1)
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT

    started = time.perf_counter()
    pipe = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - started
    rss_loaded = peak_rss_mib()

    started = time.perf_counter()
    caption = pipe(video=path, generator=torch.Generator().manual_seed(0)).text[0]
    seconds = time.perf_counter() - started
    peak = peak_rss_mib()

    started = time.perf_counter()
    video = pipe.preprocess_video(path)
    decode = time.perf_counter() - started
    return {
        "load_s": round(load, 2), "caption_s": round(seconds, 2), "decode_s": round(decode, 2),
        "peak_rss_mib": round(peak), "peak_rss_after_load_mib": round(rss_loaded), "model_input": list(video.shape),
        "caption": caption,
    }


def run_cli(path: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "univigu.cli", "caption", path, "--device", "cpu"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: one case, in a subprocess
    parser.add_argument("--write", default=None, help=argparse.SUPPRESS)  # internal: write the clips there
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return 0
    if args.write:
        for _, width, height, fps, seconds in CASES:
            write_clip(os.path.join(args.write, f"{width}x{height}.mp4"), width, height, fps, seconds)
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, __file__, "--write", folder], check=True)
        for name, width, height, fps, seconds in CASES:
            path = os.path.join(folder, f"{width}x{height}.mp4")
            size = os.path.getsize(path) / 2**20
            out = subprocess.run([sys.executable, __file__, "--case", path], check=True, capture_output=True,
                                 text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(name=name, file_mib=round(size, 1), cli_s=round(run_cli(path), 2))
            rows.append(result)
            print(f"{name}: {result}", file=sys.stderr)

    print("| clip | file | caption s (file -> text) | of which decode s | peak RSS | `univigu caption` s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['file_mib']} MiB | {r['caption_s']:.2f} | {r['decode_s']:.2f} | "
              f"{r['peak_rss_mib']} MiB | {r['cli_s']:.1f} |")
    hd, uhd = rows[1], rows[2]
    ratio = uhd["peak_rss_mib"] / hd["peak_rss_mib"]
    print(f"\n720p captioned in {hd['caption_s']:.2f} s (goal <= 10 s: {'met' if hd['caption_s'] <= 10 else 'NOT met'}); "
          f"4K peak RSS {ratio:.2f}x the 720p one (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'}). "
          f"Model input: {hd['model_input']}; pipeline load {hd['load_s']:.2f} s; peak RSS after loading "
          f"{hd['peak_rss_after_load_mib']} MiB.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
