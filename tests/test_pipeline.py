"""UniViGUPipeline on tiny components built here (no downloads): parity with WanPipeline, reproducibility, batching,
save/load, input validation, output types, callbacks, text history, and the three tasks."""

import os

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline, WanPipeline

from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUPipelineOutput, UniViGUTransformer3DModel
from univigu.toyworld.components import build_tiny_components


PROMPT = "a red circle moving left"
PROMPTS = ["a red circle moving left", "a blue square staying still and a green triangle moving up"]
# 9 frames of 32 x 32: latents (16, 3, 4, 4), 12 video tokens; two steps.
SMALL = dict(num_frames=9, height=32, width=32, num_inference_steps=2, max_sequence_length=16)
TEXT_LEN = 10


def make_pipeline(seed: int = 0, latent_normalization: str = "diffusers"):
    """A tiny UniViGUPipeline whose transformer comes from the tiny Wan transformer (`from_wan`). The text head is
    given random weights (it is zero after `from_wan`), so captions depend on the model's inputs."""
    components = build_tiny_components(seed)
    tokenizer = components["tokenizer"]
    transformer = UniViGUTransformer3DModel.from_wan(components["transformer"], vocab_size=len(tokenizer), seed=seed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        transformer.text_head.linear.weight.copy_(torch.randn(transformer.text_head.linear.weight.shape, generator=g))
    pipe = UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=components["text_encoder"],
        vae=components["vae"],
        transformer=transformer,
        scheduler=components["scheduler"],
        text_scheduler=DiscreteFlowScheduler(vocab_size=len(tokenizer)),
        latent_normalization=latent_normalization,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe, components


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    # The tiny models run 10-30x faster on one thread than on two contended ones (measured on the 2-core CI box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe_and_components():
    return make_pipeline()


@pytest.fixture(scope="module")
def pipe(pipe_and_components):
    return pipe_and_components[0]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand_video(seed=0, frames=9, size=32):
    return np.random.default_rng(seed).random((frames, size, size, 3)).astype(np.float32)


class CallCounter:
    """Counts transformer forwards (and records their keyword arguments) without changing them."""

    def __init__(self, module):
        self.module = module
        self.calls = []

    def __enter__(self):
        self.original = self.module.forward

        def forward(*args, **kwargs):
            self.calls.append(kwargs)
            return self.original(*args, **kwargs)

        self.module.forward = forward
        return self

    def __exit__(self, *exc):
        del self.module.forward


# ---------------------------------------------------------------------- imports and parity


def test_public_imports():
    import univigu
    from univigu.pipelines import export_for_hub

    assert univigu.UniViGUPipeline is UniViGUPipeline
    assert issubclass(UniViGUPipeline, DiffusionPipeline)
    assert callable(export_for_hub)
    assert "text_ids" in UniViGUPipeline._callback_tensor_inputs


@pytest.mark.parametrize("guidance_scale", [5.0, 1.0])
def test_t2v_without_text_stream_equals_wan_pipeline(pipe_and_components, guidance_scale):
    pipe, components = pipe_and_components
    wan = WanPipeline(**components)
    wan.set_progress_bar_config(disable=True)
    kwargs = dict(SMALL, guidance_scale=guidance_scale, negative_prompt="blurry")
    expected = wan(PROMPTS, generator=gen(3), output_type="pt", **kwargs).frames
    got = pipe(PROMPTS, generator=gen(3), output_type="pt", text_stream=False, **kwargs).frames
    assert torch.equal(got, expected)
    expected = wan(PROMPT, generator=gen(4), output_type="latent", **kwargs).frames
    got = pipe(PROMPT, generator=gen(4), output_type="latent", text_stream=False, **kwargs).frames
    assert torch.equal(got, expected)


def test_custom_sigmas_drive_the_video_timesteps(pipe):
    """`sigmas=` (the reference's grid linspace(1, 0, N+1)[:-1]) reaches the video scheduler, shifted by it."""
    seen = []

    def record(pipeline, step, timestep, callback_kwargs):
        seen.append(float(timestep))
        return callback_kwargs

    sigmas = np.linspace(1.0, 0.0, 3 + 1)[:-1]
    pipe(PROMPT, generator=gen(0), callback_on_step_end=record, **dict(SMALL, num_inference_steps=7), sigmas=sigmas)
    shift = pipe.scheduler.config.shift
    expected = [1000 * shift * s / (1 + (shift - 1) * s) for s in sigmas]
    assert np.allclose(seen, expected, atol=1e-2)


def test_t2v_text_stream_holds_the_clean_prompt_tokens(pipe):
    with CallCounter(pipe.transformer) as counter:
        out = pipe(PROMPT, generator=gen(0), **SMALL)
    assert out.text is None and out.frames.shape == (1, 9, 32, 32, 3)
    assert len(counter.calls) == 2 * SMALL["num_inference_steps"]  # cond + uncond per step
    expected_ids = torch.tensor([pipe.tokenizer(PROMPT).input_ids])
    cond, uncond = counter.calls[0], counter.calls[1]
    for call in counter.calls:
        assert torch.equal(call["text_ids"], expected_ids)
        assert torch.equal(call["text_timestep"], torch.zeros(1))
    # guidance swaps only the umT5 embedding
    assert not torch.equal(cond["encoder_hidden_states"], uncond["encoder_hidden_states"])
    # and the text stream does change the video (video tokens attend to it)
    off = pipe(PROMPT, generator=gen(0), text_stream=False, **SMALL).frames
    assert not np.allclose(off, out.frames)


def test_t2v_text_stream_pads_are_masked(pipe):
    with CallCounter(pipe.transformer) as counter:
        pipe(PROMPTS, generator=gen(0), **SMALL)
    call = counter.calls[0]
    lengths = [len(pipe.tokenizer(p).input_ids) for p in PROMPTS]
    assert call["text_ids"].shape == (2, max(lengths))
    assert call["text_attention_mask"].sum(dim=1).tolist() == lengths


# ---------------------------------------------------------------------- the three tasks


def test_task_is_inferred_from_inputs(pipe):
    t2v = pipe(PROMPT, generator=gen(0), **SMALL)
    assert isinstance(t2v, UniViGUPipelineOutput) and t2v.text is None and t2v.frames.shape == (1, 9, 32, 32, 3)
    v2t = pipe(video=rand_video(), generator=gen(0), num_inference_steps=3, max_text_length=TEXT_LEN)
    assert v2t.frames is None and isinstance(v2t.text, list) and isinstance(v2t.text[0], str)
    assert v2t.text_ids.shape == (1, TEXT_LEN)
    t2vt = pipe(PROMPT, generate_caption=True, generator=gen(0), max_text_length=TEXT_LEN, **SMALL)
    assert t2vt.frames.shape == (1, 9, 32, 32, 3) and len(t2vt.text) == 1
    explicit = pipe(PROMPT, task="t2vt", generator=gen(0), max_text_length=TEXT_LEN, **SMALL)
    assert explicit.text == t2vt.text and np.array_equal(explicit.frames, t2vt.frames)


def test_v2t_calls_the_transformer_with_clean_video_and_null_condition(pipe):
    steps = 4
    with CallCounter(pipe.transformer) as counter:
        pipe(video=rand_video(), generator=gen(0), num_inference_steps=steps, max_text_length=TEXT_LEN)
    assert len(counter.calls) == steps  # one forward per text step, no guidance
    text_timesteps = []
    for call in counter.calls:
        assert torch.equal(call["timestep"], torch.zeros(1))
        assert call["encoder_hidden_states"] is None
        assert call["hidden_states"].shape == (1, 16, 3, 4, 4)
        text_timesteps.append(float(call["text_timestep"][0]))
    assert text_timesteps == [1000.0, 750.0, 500.0, 250.0]
    with CallCounter(pipe.transformer) as counter:
        pipe(video=rand_video(), conditioning_text="a red circle", num_inference_steps=1, max_text_length=TEXT_LEN)
    assert counter.calls[0]["encoder_hidden_states"].shape == (1, 512, 32)  # max_sequence_length


def test_t2vt_text_time_follows_video_time(pipe):
    with CallCounter(pipe.transformer) as counter:
        pipe(PROMPT, task="t2vt", generator=gen(0), max_text_length=TEXT_LEN, **SMALL)
    for call in counter.calls:
        assert torch.equal(call["text_timestep"], call["timestep"])
        assert call["text_ids"].shape == (1, TEXT_LEN)
    # guidance applies to the video only: both passes carry the same text
    assert torch.equal(counter.calls[0]["text_ids"], counter.calls[1]["text_ids"])


def test_t2vt_reference_update(pipe):
    steps = SMALL["num_inference_steps"]
    with CallCounter(pipe.transformer) as counter:
        out = pipe(
            PROMPT, task="t2vt", text_update="reference", generator=gen(0), max_text_length=TEXT_LEN,
            return_text_history=True, **SMALL,
        )
    # N steps x (cond + uncond) + the final argmax pass at text time 0 on the clean video
    assert len(counter.calls) == 2 * steps + 1
    final = counter.calls[-1]
    assert torch.equal(final["text_timestep"], torch.zeros(1)) and torch.equal(final["timestep"], torch.zeros(1))
    # step 0 resamples with probability 0: the first text is the source draw
    assert torch.equal(counter.calls[2]["text_ids"], counter.calls[0]["text_ids"])
    assert len(out.text_history) == steps + 1 and out.text_history[-1] == out.text


def test_commit_strategy_and_temperature(pipe):
    video = rand_video()
    kwargs = dict(video=video, num_inference_steps=3, max_text_length=TEXT_LEN, video_latents_mode="argmax")
    a = pipe(generator=gen(0), temperature=0.0, commit_strategy="confidence", **kwargs)
    b = pipe(generator=gen(0), temperature=0.0, commit_strategy="confidence", **kwargs)
    assert a.text == b.text
    # the override is per call: the pipeline's scheduler keeps its own strategy
    assert pipe.text_scheduler.config.commit_strategy == "stochastic"
    # argmax + confidence-ordered commits use no randomness: from the same starting text, any generator gives the
    # same caption
    start = torch.randint(0, pipe.text_scheduler.config.vocab_size, (1, TEXT_LEN), generator=gen(5))
    first = pipe(generator=gen(0), temperature=0.0, commit_strategy="confidence", text_ids=start, **kwargs)
    second = pipe(generator=gen(1), temperature=0.0, commit_strategy="confidence", text_ids=start, **kwargs)
    assert first.text == second.text


def test_video_latents_input(pipe):
    video = pipe.preprocess_video(rand_video())
    latents = pipe.encode_video(video, mode="argmax")
    a = pipe(video=rand_video(), video_latents_mode="argmax", generator=gen(0), num_inference_steps=2,
             max_text_length=TEXT_LEN)
    # encode_video consumed no randomness in argmax mode, so the text draws line up
    b = pipe(video_latents=latents, generator=gen(0), num_inference_steps=2, max_text_length=TEXT_LEN)
    assert a.text == b.text


# ---------------------------------------------------------------------- reproducibility and batching


def test_same_seed_same_video_and_caption(pipe):
    a = pipe(PROMPT, task="t2vt", generator=gen(7), max_text_length=TEXT_LEN, **SMALL)
    b = pipe(PROMPT, task="t2vt", generator=gen(7), max_text_length=TEXT_LEN, **SMALL)
    assert np.array_equal(a.frames, b.frames) and a.text == b.text
    c = pipe(video=rand_video(), generator=gen(7), num_inference_steps=3, max_text_length=TEXT_LEN)
    d = pipe(video=rand_video(), generator=gen(7), num_inference_steps=3, max_text_length=TEXT_LEN)
    assert c.text == d.text and torch.equal(c.text_ids, d.text_ids)
    e = pipe(video=rand_video(), generator=gen(8), num_inference_steps=3, max_text_length=TEXT_LEN)
    assert not torch.equal(c.text_ids, e.text_ids)


@pytest.mark.parametrize("task", ["t2v", "t2vt"])
def test_batch_of_two_equals_two_single_calls(pipe, task):
    kwargs = dict(SMALL, task=task, max_text_length=TEXT_LEN)
    batch = pipe(PROMPTS, generator=[gen(1), gen(2)], output_type="pt", **kwargs)
    singles = [pipe(p, generator=gen(s), output_type="pt", **kwargs) for p, s in zip(PROMPTS, (1, 2))]
    frames = torch.cat([s.frames for s in singles])
    torch.testing.assert_close(batch.frames, frames, atol=1e-5, rtol=1e-5)
    if task == "t2vt":
        assert batch.text == [s.text[0] for s in singles]


def test_v2t_batch_of_two_equals_two_single_calls(pipe):
    videos = np.stack([rand_video(1), rand_video(2)])
    kwargs = dict(num_inference_steps=3, max_text_length=TEXT_LEN)
    batch = pipe(video=videos, generator=[gen(1), gen(2)], **kwargs)
    singles = [pipe(video=v, generator=gen(s), **kwargs) for v, s in zip(videos, (1, 2))]
    assert batch.text == [s.text[0] for s in singles]
    assert torch.equal(batch.text_ids, torch.cat([s.text_ids for s in singles]))


def test_num_videos_per_prompt(pipe):
    out = pipe(PROMPT, task="t2vt", num_videos_per_prompt=2, generator=[gen(1), gen(2)],
               max_text_length=TEXT_LEN, **SMALL)
    assert out.frames.shape[0] == 2 and len(out.text) == 2
    captions = pipe(video=rand_video(), num_videos_per_prompt=3, num_inference_steps=2, max_text_length=TEXT_LEN)
    assert len(captions.text) == 3


# ---------------------------------------------------------------------- outputs, callbacks, history


def test_output_types(pipe):
    np_out = pipe(PROMPT, generator=gen(0), output_type="np", **SMALL).frames
    assert isinstance(np_out, np.ndarray) and np_out.shape == (1, 9, 32, 32, 3)
    assert np_out.min() >= 0 and np_out.max() <= 1
    pt_out = pipe(PROMPT, generator=gen(0), output_type="pt", **SMALL).frames
    assert isinstance(pt_out, torch.Tensor) and pt_out.shape == (1, 9, 3, 32, 32)
    np.testing.assert_allclose(pt_out.permute(0, 1, 3, 4, 2).numpy(), np_out, atol=1e-6)
    pil_out = pipe(PROMPT, generator=gen(0), output_type="pil", **SMALL).frames
    assert len(pil_out) == 1 and len(pil_out[0]) == 9 and isinstance(pil_out[0][0], PIL.Image.Image)
    latent = pipe(PROMPT, generator=gen(0), output_type="latent", **SMALL).frames
    assert latent.shape == (1, 16, 3, 4, 4)
    frames, text = pipe(PROMPT, task="t2vt", generator=gen(0), return_dict=False, max_text_length=TEXT_LEN, **SMALL)
    assert frames.shape == (1, 9, 32, 32, 3) and isinstance(text[0], str)


def test_callback_sees_and_can_edit_text_ids(pipe):
    seen = []

    def callback(p, step, timestep, kwargs):
        seen.append((step, kwargs["text_ids"].clone(), kwargs["latents"].shape))
        if step == SMALL["num_inference_steps"] - 1:
            return {"text_ids": torch.full_like(kwargs["text_ids"], 5)}
        return {}

    out = pipe(
        PROMPT, task="t2vt", generator=gen(0), max_text_length=TEXT_LEN, callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "text_ids"], **SMALL,
    )
    assert [s[0] for s in seen] == [0, 1]
    assert all(s[1].shape == (1, TEXT_LEN) for s in seen)
    assert torch.equal(out.text_ids, torch.full((1, TEXT_LEN), 5))

    seen.clear()
    pipe(video=rand_video(), generator=gen(0), num_inference_steps=2, max_text_length=TEXT_LEN,
         callback_on_step_end=lambda p, i, t, kw: seen.append((i, kw["text_ids"].clone())) or {},
         callback_on_step_end_tensor_inputs=["text_ids"])
    assert len(seen) == 2

    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(PROMPT, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"], **SMALL)


def test_return_text_history(pipe):
    steps = 4
    out = pipe(video=rand_video(), generator=gen(0), num_inference_steps=steps, max_text_length=TEXT_LEN,
               return_text_history=True)
    assert len(out.text_history) == steps and out.text_history[-1] == out.text
    assert all(isinstance(step, list) and len(step) == 1 for step in out.text_history)
    joint = pipe(PROMPT, task="t2vt", generator=gen(0), max_text_length=TEXT_LEN, return_text_history=True, **SMALL)
    assert len(joint.text_history) == SMALL["num_inference_steps"] and joint.text_history[-1] == joint.text
    assert pipe(video=rand_video(), num_inference_steps=2, max_text_length=TEXT_LEN).text_history is None


# ---------------------------------------------------------------------- video inputs


def test_video_input_forms_agree(pipe, tmp_path):
    frames = (rand_video(3) * 255).round().astype(np.uint8)
    reference = pipe.preprocess_video(frames)
    assert reference.shape == (1, 3, 9, 32, 32)
    as_float = frames.astype(np.float32) / 255.0
    forms = [
        as_float,
        [PIL.Image.fromarray(f) for f in frames],
        torch.from_numpy(frames).permute(0, 3, 1, 2),  # (F, C, H, W) uint8
        torch.from_numpy(as_float).permute(0, 3, 1, 2),  # (F, C, H, W) float in [0, 1]
    ]
    for form in forms:
        torch.testing.assert_close(pipe.preprocess_video(form), reference, atol=1e-6, rtol=0)
    batch = pipe.preprocess_video(torch.from_numpy(np.stack([frames, frames])).permute(0, 1, 4, 2, 3))
    assert batch.shape == (2, 3, 9, 32, 32)

    # a file path (gif decodes losslessly enough for a shape check), with more frames than needed -> 4k+1 sampled
    path = tmp_path / "clip.gif"
    long = np.concatenate([frames, frames[:2]])  # 11 frames -> 9
    images = [PIL.Image.fromarray(f) for f in long]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    from_file = pipe.preprocess_video(str(path))
    assert from_file.shape == (1, 3, 9, 32, 32)
    # resizing to an explicit size
    assert pipe.preprocess_video(frames, height=16, width=48).shape == (1, 3, 9, 16, 48)
    assert pipe(video=str(path), num_inference_steps=1, max_text_length=TEXT_LEN).text


def test_video_file_mp4(pipe, tmp_path):
    from diffusers.utils import export_to_video

    path = str(tmp_path / "clip.mp4")
    export_to_video(list(rand_video(5, frames=13)), path, fps=8)
    video = pipe.preprocess_video(path, num_frames=9)
    assert video.shape == (1, 3, 9, 32, 32)


# ---------------------------------------------------------------------- bad inputs fail fast


def _bad_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"this is not a video" * 10)
    return str(path)


def _t2v(**kwargs):
    return {**dict(prompt=PROMPT, num_frames=9, height=32, width=32), **kwargs}


BAD_INPUTS = [
    ("num_frames", lambda tmp: _t2v(num_frames=10), r"num_frames=10 .*4k\+1.*9 or 13"),
    ("num_frames_v2t", lambda tmp: dict(video=rand_video(), num_frames=7), r"use 5 or 9"),
    ("height", lambda tmp: _t2v(height=40), r"height=40 .*multiple of 16.*32 or 48"),
    ("width", lambda tmp: _t2v(width=20), r"width=20 .*16 or 32"),
    ("tiny_height", lambda tmp: _t2v(height=8), r"height=8 .*use 16"),
    ("undecodable", lambda tmp: dict(video=_bad_file(tmp)), r"Could not decode the video file .*ffmpeg"),
    ("missing_file", lambda tmp: dict(video=os.path.join(str(tmp), "nope.mp4")), r"does not exist"),
    (
        "too_few_frames",
        lambda tmp: dict(video=rand_video(frames=5), num_frames=9),
        r"too few frames.*at least 9 frames.*has 5",
    ),
    ("no_frames", lambda tmp: dict(video=np.zeros((0, 32, 32, 3), np.uint8)), r"no frames"),
    ("empty_prompt", lambda tmp: dict(prompt=""), r"`prompt` is empty"),
    ("blank_prompt", lambda tmp: dict(prompt="   ", task="t2vt"), r"`prompt` is empty"),
    ("empty_in_list", lambda tmp: dict(prompt=["a red circle", ""]), r"`prompt` is empty \(item 1\)"),
    ("nothing", lambda tmp: dict(), r"Nothing to do: pass `prompt`.*`video`"),
    ("unknown_task", lambda tmp: dict(prompt=PROMPT, task="i2v"), r"Unknown task 'i2v'.*'t2v'.*'v2t'.*'t2vt'"),
    (
        "ambiguous",
        lambda tmp: dict(prompt=PROMPT, video=rand_video()),
        r"task is ambiguous.*task='v2t'.*conditioning_text",
    ),
    ("t2v_with_video", lambda tmp: dict(prompt=PROMPT, video=rand_video(), task="t2v"), r"does not take `video`"),
    ("v2t_without_video", lambda tmp: dict(task="v2t"), r"needs a `video`"),
    ("output_type", lambda tmp: _t2v(output_type="gif"), r"output_type='gif'"),
    ("text_update", lambda tmp: _t2v(task="t2vt", text_update="greedy"), r"text_update"),
    (
        "stream_needs_prompt",
        lambda tmp: dict(prompt_embeds=torch.zeros(1, 16, 32), num_frames=9, height=32, width=32),
        r"text_stream=True.*needs `prompt`",
    ),
    ("text_length", lambda tmp: dict(video=rand_video(), max_text_length=5000), r"max_text_length=5000"),
]


@pytest.mark.parametrize("name,kwargs,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_before_denoising(pipe, tmp_path, name, kwargs, message):
    with CallCounter(pipe.transformer) as counter, CallCounter(pipe.vae) as vae_counter:
        with pytest.raises(ValueError, match=message):
            pipe(**kwargs(tmp_path))
    assert counter.calls == [] and vae_counter.calls == []


def test_vocab_mismatch_is_reported(pipe_and_components):
    pipe, _ = pipe_and_components
    other = UniViGUPipeline(**{**pipe.components, "text_scheduler": DiscreteFlowScheduler(vocab_size=7)})
    with pytest.raises(ValueError, match="vocab_size=7.*vocab_size=38"):
        other(video=rand_video(), num_inference_steps=1)
    # text_stream=False does not need the text stream at all
    other.set_progress_bar_config(disable=True)
    other(PROMPT, text_stream=False, **SMALL)


def test_bad_latent_normalization(pipe):
    with pytest.raises(ValueError, match="latent_normalization"):
        UniViGUPipeline(**pipe.components, latent_normalization="scaled")


# ---------------------------------------------------------------------- latent convention


def test_latent_normalization_conventions(pipe):
    raw_pipe = UniViGUPipeline(**pipe.components, latent_normalization="raw")
    raw_pipe.set_progress_bar_config(disable=True)
    video = pipe.preprocess_video(rand_video())
    raw = raw_pipe.encode_video(video, mode="argmax")
    normalized = pipe.encode_video(video, mode="argmax")
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(normalized, (raw - mean) / std, atol=1e-5, rtol=1e-5)
    # decoding inverts the pipeline's own normalisation in both conventions
    torch.testing.assert_close(
        pipe.decode_latents(normalized, output_type="pt"), raw_pipe.decode_latents(raw, output_type="pt"), atol=1e-5,
        rtol=1e-5,
    )
    # "raw" t2v decodes the sampled latents as they are
    latents = raw_pipe(PROMPT, generator=gen(0), output_type="latent", **SMALL).frames
    frames = raw_pipe(PROMPT, generator=gen(0), output_type="pt", **SMALL).frames
    decoded = raw_pipe.video_processor.postprocess_video(raw_pipe.vae.decode(latents).sample, output_type="pt")
    torch.testing.assert_close(frames, decoded)


# ---------------------------------------------------------------------- saving


def test_save_pretrained_round_trip(tmp_path):
    pipe, _ = make_pipeline(latent_normalization="raw")
    pipe.save_pretrained(tmp_path)
    loaded = UniViGUPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.transformer) is UniViGUTransformer3DModel
    assert type(loaded.text_scheduler) is DiscreteFlowScheduler
    assert loaded.config.latent_normalization == "raw"
    kwargs = dict(task="t2vt", max_text_length=TEXT_LEN, output_type="pt", **SMALL)
    a = pipe(PROMPT, generator=gen(0), **kwargs)
    b = loaded(PROMPT, generator=gen(0), **kwargs)
    assert torch.equal(a.frames, b.frames) and a.text == b.text
    c = pipe(video=rand_video(), generator=gen(0), num_inference_steps=2, max_text_length=TEXT_LEN)
    d = loaded(video=rand_video(), generator=gen(0), num_inference_steps=2, max_text_length=TEXT_LEN)
    assert c.text == d.text


def test_push_to_hub_goes_through_export(pipe, monkeypatch, tmp_path):
    import huggingface_hub

    uploaded = {}

    class Repo:
        repo_id = "someone/univigu-tiny"

    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **k: Repo())

    def fake_upload(self, folder, repo_id, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["files"] = sorted(
            os.path.relpath(os.path.join(root, f), folder) for root, _, files in os.walk(folder) for f in files
        )
        with open(os.path.join(folder, "README.md")) as f:
            uploaded["card"] = f.read()

    monkeypatch.setattr(UniViGUPipeline, "_upload_folder", fake_upload)
    pipe.push_to_hub("univigu-tiny")
    assert uploaded["repo_id"] == "someone/univigu-tiny"
    for name in ("pipeline_univigu.py", "transformer/transformer_univigu.py",
                 "text_scheduler/scheduling_discrete_flow.py", "model_index.json", "README.md"):
        assert name in uploaded["files"]
    assert 'from_pretrained("someone/univigu-tiny", trust_remote_code=True)' in uploaded["card"]

    uploaded.clear()
    pipe.save_pretrained(tmp_path / "local", push_to_hub=True, repo_id="univigu-tiny")
    assert uploaded["repo_id"] == "someone/univigu-tiny" and "pipeline_univigu.py" in uploaded["files"]
    assert (tmp_path / "local" / "transformer" / "transformer_univigu.py").is_file()


# ---------------------------------------------------------------------- pipeline contract (issue #12)


def test_save_pretrained_forwards_variant_and_serialization_to_the_transformer(tmp_path):
    """DiffusionPipeline.save_pretrained forwards `variant` / `safe_serialization` only to components whose
    save_pretrained names them: the transformer's must, or it silently writes unsuffixed safetensors."""
    import inspect

    from diffusers.models.modeling_utils import ModelMixin

    own = list(inspect.signature(UniViGUTransformer3DModel.save_pretrained).parameters)
    assert own == list(inspect.signature(ModelMixin.save_pretrained).parameters)

    pipe, _ = make_pipeline()
    pipe.save_pretrained(tmp_path, variant="fp16", safe_serialization=False)
    files = sorted(os.listdir(tmp_path / "transformer"))
    assert "diffusion_pytorch_model.fp16.bin" in files, files
    assert not [f for f in files if f.endswith(".safetensors")], files
    assert "transformer_univigu.py" in files  # the module file still ships with the weights
    loaded = UniViGUPipeline.from_pretrained(tmp_path, variant="fp16")
    for key, value in pipe.transformer.state_dict().items():
        assert torch.equal(loaded.transformer.state_dict()[key], value), key


def test_t2v_without_text_scheduler(pipe, tmp_path):
    """A pipeline without a text scheduler generates video (text stream on or off) and names what it lacks for
    captions; it saves and loads without one."""
    bare = UniViGUPipeline(**{**pipe.components, "text_scheduler": None})
    bare.set_progress_bar_config(disable=True)
    for text_stream in (False, True):
        got = bare(PROMPT, generator=gen(0), text_stream=text_stream, output_type="pt", **SMALL).frames
        expected = pipe(PROMPT, generator=gen(0), text_stream=text_stream, output_type="pt", **SMALL).frames
        assert torch.equal(got, expected)
    for call in (lambda: bare(video=rand_video(), num_inference_steps=1),
                 lambda: bare(PROMPT, task="t2vt", max_text_length=TEXT_LEN, **SMALL)):
        with pytest.raises(ValueError, match="text_scheduler=None"):
            call()
    bare.save_pretrained(tmp_path)
    loaded = UniViGUPipeline.from_pretrained(tmp_path)
    assert loaded.text_scheduler is None


@pytest.mark.parametrize("num_videos_per_prompt", [1, 2])
def test_encode_prompt_outputs_are_call_inputs(pipe, num_videos_per_prompt):
    """Encode once, generate many times: `pipe(**dict(zip(names, pipe.encode_prompt(...))))` computes what
    `pipe(prompt)` computes, the text stream included."""
    n = num_videos_per_prompt
    with torch.no_grad():  # as in __call__ (autograd-enabled kernels may round differently)
        encoded = pipe.encode_prompt(PROMPTS, negative_prompt="blurry", num_videos_per_prompt=n,
                                     max_sequence_length=SMALL["max_sequence_length"])
    names = ("prompt_embeds", "negative_prompt_embeds", "prompt_text_ids", "prompt_text_mask")
    inputs = dict(zip(names, encoded))
    assert inputs["prompt_text_ids"].shape[0] == inputs["prompt_embeds"].shape[0] == 2 * n
    assert not bool(inputs["prompt_text_mask"].all())  # the two prompts differ in length
    generators = [gen(i) for i in range(2 * n)]
    expected = pipe(PROMPTS, negative_prompt="blurry", num_videos_per_prompt=n, generator=generators,
                    output_type="latent", **SMALL).frames
    got = pipe(**inputs, generator=[gen(i) for i in range(2 * n)], output_type="latent", **SMALL).frames
    assert torch.equal(got, expected)
    # a mask left out means every token is real
    with torch.no_grad():
        single = dict(zip(names, pipe.encode_prompt(PROMPT, max_sequence_length=SMALL["max_sequence_length"])))
    assert bool(single.pop("prompt_text_mask").all())
    assert torch.equal(pipe(**single, generator=gen(3), output_type="latent", **SMALL).frames,
                       pipe(PROMPT, generator=gen(3), output_type="latent", **SMALL).frames)


def test_encode_prompt_defaults_to_the_call_sequence_length(pipe):
    embeds, negative, ids, mask = pipe.encode_prompt(PROMPT)
    assert embeds.shape[1] == negative.shape[1] == pipe.call_default("max_sequence_length", "t2v")
    assert ids.shape == mask.shape == (1, len(pipe.tokenizer(PROMPT).input_ids))
    # without guidance there is no negative embedding, and only embeddings give no text-stream tokens
    embeds, negative, ids, mask = pipe.encode_prompt(None, do_classifier_free_guidance=False, prompt_embeds=embeds)
    assert negative is None and ids is None and mask is None


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(prompt=PROMPT), ValueError, "either `prompt` or `prompt_text_ids`"),
    (dict(task="t2vt"), ValueError, "t2v with text_stream=True"),
    (dict(text_stream=False), ValueError, "t2v with text_stream=True"),
    (dict(prompt_text_ids=None), ValueError, "with `prompt_embeds`, `prompt_text_ids`"),
    (dict(prompt_text_ids=torch.ones(1, 4)), TypeError, "integer tensor"),
    (dict(prompt_text_ids=torch.ones(2, 4, dtype=torch.long)), ValueError, "batch size 2"),
    (dict(prompt_text_ids=torch.full((1, 4), 10**6)), ValueError, "outside the transformer's text vocabulary"),
    (dict(prompt_text_mask=torch.ones(1, 3, dtype=torch.bool)), ValueError, "shape of `prompt_text_ids`"),
    (dict(prompt_text_mask=torch.zeros(1, 4, dtype=torch.bool)), ValueError, "without any token"),
])
def test_prompt_text_ids_are_checked(pipe, kwargs, error, message):
    call = dict(prompt_embeds=torch.zeros(1, 16, 32), prompt_text_ids=torch.ones(1, 4, dtype=torch.long),
                prompt_text_mask=torch.ones(1, 4, dtype=torch.bool), max_text_length=TEXT_LEN, **SMALL)
    call.update(kwargs)
    if "prompt" in kwargs:
        call.pop("prompt_embeds")
    with CallCounter(pipe.transformer) as counter, pytest.raises(error, match=message):
        pipe(**call)
    assert not counter.calls


def test_prompt_embeds_with_the_text_stream_name_prompt_text_ids(pipe):
    with pytest.raises(ValueError, match="prompt_text_ids"):
        pipe(prompt_embeds=torch.zeros(1, 16, 32), **SMALL)
