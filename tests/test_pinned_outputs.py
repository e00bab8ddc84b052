"""Seeded outputs of the tiny pipeline pinned bit-exactly: t2v (text stream on and off), v2t (exact sampler, video KV
cache, confidence commits, per-sample generators) and t2vt (scheduler and reference text updates). The fixture was
computed with the code before the pipeline/scheduler refactor of issue #12; any change to what a seeded call returns
fails here with the case and the first differing output named.

Float outputs differ in the last bits between CPU kinds (torch picks AVX512 or AVX2 kernels at run time), so there
is one fixture per kind the project has run on, and a call must match one of them bit for bit:
`pinned_outputs.npz` (AVX512, the machines of sessions 1-10) and `pinned_outputs_avx2.npz` (an AMD EPYC with AVX2
only, session 11, computed with the same code). Regenerate the current kind's fixture (only for an intended change
of behaviour, and say so in the commit): `python tests/test_pinned_outputs.py --regenerate`.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_pipeline import PROMPT, PROMPTS, SMALL, TEXT_LEN, gen, make_pipeline, rand_video


FIXTURES = {
    "AVX512": Path(__file__).resolve().parent / "fixtures" / "pinned_outputs.npz",
    "AVX2": Path(__file__).resolve().parent / "fixtures" / "pinned_outputs_avx2.npz",
}
T2VT = dict(SMALL, num_inference_steps=3, max_text_length=TEXT_LEN)
V2T = dict(num_inference_steps=5, max_text_length=TEXT_LEN)


def _two_videos():
    return np.stack([rand_video(1), rand_video(2)])


#: name -> keyword arguments of one seeded call (callables so that generators are fresh each time).
CASES = {
    # t2v
    "t2v_stream_np": lambda: dict(prompt=PROMPT, generator=gen(0), output_type="np", **dict(SMALL, num_frames=5)),
    "t2v_stream_batch": lambda: dict(prompt=PROMPTS, generator=gen(1), output_type="latent", **SMALL),
    "t2v_stream_generators_noguidance": lambda: dict(
        prompt=PROMPTS, generator=[gen(1), gen(2)], guidance_scale=1.0, output_type="latent", **SMALL
    ),
    "t2v_no_stream": lambda: dict(
        prompt=PROMPTS, generator=gen(3), text_stream=False, negative_prompt="blurry", output_type="latent", **SMALL
    ),
    "t2v_no_stream_pt": lambda: dict(
        prompt=PROMPT, generator=gen(4), text_stream=False, output_type="pt", **dict(SMALL, num_frames=5)
    ),
    # v2t
    "v2t": lambda: dict(video=rand_video(0), generator=gen(0), return_text_history=True, **V2T),
    "v2t_generators": lambda: dict(video=_two_videos(), generator=[gen(1), gen(2)], **V2T),
    "v2t_per_video_generators": lambda: dict(
        video=rand_video(3), num_videos_per_prompt=2, generator=[gen(4), gen(5)], **V2T
    ),
    "v2t_cache4": lambda: dict(
        video=rand_video(0), generator=gen(0), video_cache_interval=4, return_text_history=True,
        **dict(V2T, num_inference_steps=7),
    ),
    "v2t_cache4_generators": lambda: dict(
        video=_two_videos(), generator=[gen(6), gen(7)], video_cache_interval=4, **dict(V2T, num_inference_steps=6)
    ),
    "v2t_confidence": lambda: dict(
        video=rand_video(0), generator=gen(0), commit_strategy="confidence", return_text_history=True, **V2T
    ),
    "v2t_confidence_argmax_generators": lambda: dict(
        video=_two_videos(), generator=[gen(8), gen(9)], commit_strategy="confidence", temperature=0.0, **V2T
    ),
    "v2t_temperature_conditioning": lambda: dict(
        video=rand_video(1), generator=gen(2), temperature=0.5, conditioning_text="a red circle",
        video_latents_mode="argmax", **V2T
    ),
    "v2t_text_update_reference": lambda: dict(
        video=rand_video(0), generator=gen(0), text_update="reference", **V2T
    ),
    "v2t_video_prefix": lambda: dict(
        video=rand_video(0), generator=gen(0), understanding_attention="video_prefix", **V2T
    ),
    # t2vt
    "t2vt_scheduler": lambda: dict(
        prompt=PROMPT, task="t2vt", generator=gen(0), return_text_history=True, output_type="latent", **T2VT
    ),
    "t2vt_scheduler_generators": lambda: dict(
        prompt=PROMPTS, task="t2vt", generator=[gen(1), gen(2)], output_type="latent", **T2VT
    ),
    "t2vt_confidence": lambda: dict(
        prompt=PROMPT, task="t2vt", generator=gen(3), commit_strategy="confidence", output_type="latent", **T2VT
    ),
    "t2vt_reference": lambda: dict(
        prompt=PROMPT, task="t2vt", text_update="reference", generator=gen(0), return_text_history=True,
        output_type="latent", **T2VT
    ),
    "t2vt_reference_generators": lambda: dict(
        prompt=PROMPTS, task="t2vt", text_update="reference", generator=[gen(1), gen(2)], temperature=0.5,
        output_type="latent", **T2VT
    ),
    "t2vt_reference_argmax": lambda: dict(
        prompt=PROMPT, task="t2vt", text_update="reference", generator=gen(5), temperature=0.0,
        output_type="latent", **T2VT
    ),
}


def outputs_of(pipe, name):
    """The arrays one case pins: frames (as numpy), text_ids, text and text history (as unicode arrays)."""
    out = pipe(**CASES[name]())
    arrays = {}
    if out.frames is not None:
        frames = out.frames
        arrays["frames"] = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if out.text_ids is not None:
        arrays["text_ids"] = out.text_ids.numpy()
    if out.text is not None:
        arrays["text"] = np.array(out.text, dtype=np.str_)
    if out.text_history is not None:
        arrays["text_history"] = np.array(out.text_history, dtype=np.str_)
    return {f"{name}/{key}": value for key, value in arrays.items()}


@pytest.fixture(scope="module")
def pipe():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and the fixture was computed on one
    yield make_pipeline()[0]
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pinned():
    """CPU kind -> that kind's pinned arrays."""
    fixtures = {}
    for kind, path in FIXTURES.items():
        with np.load(path, allow_pickle=False) as data:
            fixtures[kind] = {key: data[key] for key in data.files}
    return fixtures


def test_fixtures_cover_every_case(pinned):
    for arrays in pinned.values():
        assert sorted({key.split("/")[0] for key in arrays}) == sorted(CASES)


def _mismatch(got: dict, expected: dict) -> str | None:
    """Why `got` is not bit-identical to `expected` (None when it is)."""
    if sorted(got) != sorted(expected):
        return f"outputs {sorted(got)}, pinned {sorted(expected)}"
    for key, value in expected.items():
        new = got[key]
        if new.dtype != value.dtype or new.shape != value.shape:
            return f"{key}: got {new.dtype}{new.shape}, pinned {value.dtype}{value.shape}"
        if not np.array_equal(new, value):
            detail = ""
            if value.dtype.kind == "f":
                detail = f" (max abs difference {np.abs(new.astype(np.float64) - value).max():.3g})"
            return f"{key} differs from the pinned output{detail}"
    return None


@pytest.mark.parametrize("name", list(CASES))
def test_seeded_output_is_bit_identical(pipe, pinned, name):
    got = outputs_of(pipe, name)
    mismatches = {}
    for kind, arrays in pinned.items():
        mismatches[kind] = _mismatch(got, {key: value for key, value in arrays.items() if key.split("/")[0] == name})
        if mismatches[kind] is None:
            return
    this = torch.backends.cpu.get_cpu_capability()
    raise AssertionError(f"{name} matches no CPU kind's pins (this one: {this}): " + "; ".join(
        f"{kind}: {why}" for kind, why in mismatches.items()))


def regenerate():
    torch.set_num_threads(1)
    pipe = make_pipeline()[0]
    arrays = {}
    for name in CASES:
        arrays.update(outputs_of(pipe, name))
    kind = torch.backends.cpu.get_cpu_capability()
    if kind not in FIXTURES:
        raise SystemExit(f"no fixture file for CPU kind {kind}: add one to FIXTURES first")
    fixture = FIXTURES[kind]
    fixture.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(fixture, **arrays)
    print(f"wrote {len(arrays)} arrays for {len(CASES)} cases to {fixture} ({fixture.stat().st_size} bytes)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        regenerate()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
