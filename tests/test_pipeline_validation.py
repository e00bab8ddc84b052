"""Input validation of UniViGUPipeline (issue #8): every bad argument of `__call__` is refused with a `TypeError` /
`ValueError` that names the fix, before any model (text encoder, VAE, transformer) runs; a `callback_on_step_end`
that returns something unusable is named with the bad key; a pipeline folder whose configs and weights disagree, or
that lacks a component subfolder, refuses to load.

The pipeline here is tiny and built in memory, with a transformer whose video RoPE table holds only 8 positions per
axis: with Wan's VAE (4x time, 8x space) and (1, 2, 2) patches it takes at most 29 frames and 128 x 128 pixels."""

import json
import math
import os
import shutil

import numpy as np
import PIL.Image
import pytest
import torch

from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
from univigu.toyworld.components import build_tiny_components


PROMPT = "a red circle moving left"
SMALL = dict(num_frames=9, height=32, width=32, num_inference_steps=2, max_sequence_length=16)
TEXT_LEN = 10
ROPE = 8  # positions per axis of the tiny transformer's video RoPE table
MAX_FRAMES, MAX_SIZE = (ROPE - 1) * 4 + 1, ROPE * 2 * 8  # 29 frames, 128 pixels
TEXT_ROPE = 64  # text_rope_max_seq_len of the tiny transformer


def make_pipeline(seed: int = 0) -> UniViGUPipeline:
    components = build_tiny_components(seed)
    tokenizer = components["tokenizer"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = UniViGUTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
            text_dim=components["text_encoder"].config.d_model, freq_dim=16, ffn_dim=32, num_layers=2,
            rope_max_seq_len=ROPE, vocab_size=len(tokenizer), text_rope_max_seq_len=TEXT_ROPE,
        ).eval()
    pipe = UniViGUPipeline(
        tokenizer=tokenizer,
        text_encoder=components["text_encoder"],
        vae=components["vae"],
        transformer=transformer,
        scheduler=components["scheduler"],
        text_scheduler=DiscreteFlowScheduler(vocab_size=len(tokenizer)),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_video(seed: int = 0, frames: int = 9, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).random((frames, size, size, 3)).astype(np.float32)


class NoModelRuns:
    """Makes the text encoder, the VAE and the transformer raise if anything calls them."""

    def __init__(self, pipe):
        self.targets = [
            (pipe.transformer, "forward"), (pipe.text_encoder, "forward"), (pipe.vae, "encode"), (pipe.vae, "decode")
        ]

    def __enter__(self):
        for module, name in self.targets:
            def refuse(*args, _name=f"{type(module).__name__}.{name}", **kwargs):
                raise AssertionError(f"{_name} ran before the bad input was reported")

            setattr(module, name, refuse)
        return self

    def __exit__(self, *exc):
        for module, name in self.targets:
            delattr(module, name)


def t2v(**kwargs):
    return {**dict(prompt=PROMPT, **SMALL), **kwargs}


def t2vt(**kwargs):
    return t2v(**{**dict(task="t2vt", max_text_length=TEXT_LEN), **kwargs})


def v2t(**kwargs):
    return {**dict(video=rand_video(), num_inference_steps=2, max_text_length=TEXT_LEN), **kwargs}


def embeds(batch=1, length=16, dim=32, fill=0.0, dtype=torch.float32):
    return torch.full((batch, length, dim), fill, dtype=dtype)


def nan_latents():
    latents = torch.zeros(1, 16, 3, 4, 4)
    latents[0, 0, 0, 0, 0] = float("nan")
    return latents


def pil_frames_of_two_sizes():
    return [PIL.Image.new("RGB", (32, 32)), PIL.Image.new("RGB", (48, 32))]


LONG_PROMPT = " ".join([PROMPT] * 14)  # 70 words + </s>: more than the 64 positions of the tiny text stream

# (id, the arguments, the exception type, a regex that names the problem and its fix)
BAD_INPUTS = [
    # ---- numbers: type (a bool is not an int), range, NaN/inf
    ("guidance_negative", t2v(guidance_scale=-1.0), ValueError, r"guidance_scale=-1.0 is below 0.*> 1 guide.*1.0 or less"),
    ("guidance_nan", t2v(guidance_scale=float("nan")), ValueError, r"guidance_scale=nan is not a finite number"),
    ("guidance_inf", t2v(guidance_scale=float("inf")), ValueError, r"guidance_scale=inf is not a finite number"),
    ("guidance_str", t2v(guidance_scale="5"), TypeError, r"`guidance_scale` must be a real number.*pass a number"),
    ("guidance_bool", t2v(guidance_scale=True), TypeError, r"`guidance_scale` must be a real number"),
    ("guidance_tensor", t2v(guidance_scale=torch.tensor(5.0)), TypeError, r"float\(x\)"),
    ("steps_zero", t2v(num_inference_steps=0), ValueError, r"num_inference_steps=0 .*>= 1"),
    ("steps_float", t2v(num_inference_steps=2.0), TypeError, r"`num_inference_steps` must be an integer.*pass 2\b"),
    ("steps_bool", t2v(num_inference_steps=True), TypeError, r"a bool is not a count"),
    ("steps_v2t_negative", v2t(num_inference_steps=-3), ValueError, r"num_inference_steps=-3 .*>= 1"),
    ("videos_per_prompt_float", t2v(num_videos_per_prompt=1.5), TypeError, r"num_videos_per_prompt.*whole number"),
    ("videos_per_prompt_zero", t2v(num_videos_per_prompt=0), ValueError, r"num_videos_per_prompt=0 .*>= 1"),
    ("seq_len_zero", t2v(max_sequence_length=0), ValueError, r"max_sequence_length=0 .*between 1 and 4096"),
    ("seq_len_huge", t2v(max_sequence_length=100000), ValueError, r"max_sequence_length=100000 .*between 1 and 4096"),
    ("seq_len_str", t2v(max_sequence_length="16"), TypeError, r"`max_sequence_length` must be an integer"),
    ("text_length_zero", t2vt(max_text_length=0), ValueError, r"max_text_length=0 .*>= 1"),
    ("text_length_float", v2t(max_text_length=2.5), TypeError, r"`max_text_length` must be an integer"),
    ("text_length_rope", v2t(max_text_length=TEXT_ROPE + 1), ValueError,
     rf"max_text_length={TEXT_ROPE + 1} .*text_rope_max_seq_len.*use max_text_length={TEXT_ROPE} or less"),
    ("temperature_nan", v2t(temperature=float("nan")), ValueError, r"temperature=nan is not a finite number"),
    ("temperature_inf", t2vt(temperature=float("inf")), ValueError, r"temperature=inf is not a finite"),
    ("temperature_negative", v2t(temperature=-0.5), ValueError, r"temperature=-0.5 is below 0.*0 = argmax"),
    ("temperature_str", v2t(temperature="hot"), TypeError, r"`temperature` must be a real number"),
    ("height_float", t2v(height=32.0), TypeError, r"`height` must be an integer.*pass 32\b"),
    ("width_bool", t2v(width=True), TypeError, r"`width` must be an integer"),
    ("frames_float", t2v(num_frames=9.0), TypeError, r"`num_frames` must be an integer.*pass 9\b"),
    ("frames_v2t_str", v2t(num_frames="9"), TypeError, r"`num_frames` must be an integer"),
    ("sigmas_increasing", t2v(sigmas=[0.5, 0.9]), ValueError, r"sigmas.*decrease.*decreasing order"),
    ("sigmas_range", t2v(sigmas=[1.5, 0.5]), ValueError, r"sigmas\[0\]=1.5 .*\[0, 1\].*linspace"),
    ("sigmas_nan", t2v(sigmas=[1.0, float("nan")]), ValueError, r"sigmas\[1\]=nan .*\[0, 1\]"),
    ("sigmas_empty", t2v(sigmas=[]), ValueError, r"`sigmas` is empty.*num_inference_steps"),
    ("sigmas_str", t2v(sigmas="fast"), TypeError, r"`sigmas` must be a list.*linspace"),
    ("sigmas_2d", t2v(sigmas=np.ones((2, 2))), TypeError, r"`sigmas` must be a 1D sequence"),
    ("sigmas_v2t", v2t(sigmas=[1.0, 0.5]), ValueError, r"v2t denoises only the text.*num_inference_steps"),
    ("generator_int", t2v(generator=0), TypeError, r"torch.Generator.*manual_seed\(0\)"),
    ("generator_list_of_ints", t2v(generator=[1]), TypeError, r"list holding int.*torch.Generator"),
    ("generator_empty_list", t2v(generator=[]), TypeError, r"`generator` must be a torch.Generator"),
    ("generator_count", t2v(generator=[gen(0), gen(1)]), ValueError, r"2 generators.*1 samples.*one generator per sample"),
    ("generator_count_v2t", v2t(generator=[gen(0)], num_videos_per_prompt=2), ValueError, r"1 generators.*2 samples"),
    # ---- sizes against the model (the RoPE tables, the text stream)
    ("frames_beyond_rope", t2v(num_frames=81), ValueError,
     rf"num_frames=81 .*RoPE table.*{ROPE} positions.*use num_frames={MAX_FRAMES} or fewer"),
    ("frames_just_beyond_rope", t2v(num_frames=MAX_FRAMES + 4), ValueError, rf"num_frames={MAX_FRAMES} or fewer"),
    ("height_beyond_rope", t2v(height=MAX_SIZE + 16), ValueError, rf"use height={MAX_SIZE} or less"),
    ("width_beyond_rope", t2vt(width=1024), ValueError, rf"use width={MAX_SIZE} or less"),
    ("v2t_frames_beyond_rope", v2t(num_frames=81, video=rand_video(frames=81)), ValueError,
     rf"num_frames={MAX_FRAMES} or fewer"),
    ("v2t_long_video", v2t(video=rand_video(frames=40)), ValueError,
     rf"The video gives num_frames=37.*pass num_frames={MAX_FRAMES} or fewer \(frames are sampled evenly\)"),
    ("v2t_big_video", v2t(video=rand_video(size=160)), ValueError,
     rf"The video is 160x160.*at most {MAX_SIZE} x {MAX_SIZE} \(frames are resized\)"),
    ("prompt_longer_than_text_stream", t2v(prompt=LONG_PROMPT, max_sequence_length=100), ValueError,
     rf"The prompt is 71 tokens long.*text_rope_max_seq_len={TEXT_ROPE}.*max_sequence_length={TEXT_ROPE}.*text_stream=False"),
    # ---- tensors: shape, dtype, finite values, agreement with the other inputs and the model
    ("latents_shape", t2v(latents=torch.zeros(1, 16, 3, 8, 8)), ValueError,
     r"`latents` have shape \(1, 16, 3, 8, 8\).*need \(1, 16, 3, 4, 4\)"),
    ("latents_batch", t2v(latents=torch.zeros(2, 16, 3, 4, 4)), ValueError, r"need \(1, 16, 3, 4, 4\)"),
    ("latents_4d", t2v(latents=torch.zeros(16, 3, 4, 4)), ValueError, r"`latents` must be 5D"),
    ("latents_int", t2v(latents=torch.zeros(1, 16, 3, 4, 4, dtype=torch.long)), TypeError, r"latents.float\(\)"),
    ("latents_nan", t2v(latents=nan_latents()), ValueError, r"`latents` contains NaN or inf"),
    ("latents_numpy", t2v(latents=np.zeros((1, 16, 3, 4, 4), np.float32)), TypeError, r"torch.as_tensor"),
    ("latents_in_v2t", v2t(latents=torch.zeros(1, 16, 3, 4, 4)), ValueError, r"pass them as `video_latents`"),
    ("prompt_embeds_dim", t2v(prompt=None, prompt_embeds=embeds(dim=7), text_stream=False), ValueError,
     r"hidden size 7.*text_dim=32.*pipe.encode_prompt"),
    ("prompt_embeds_2d", t2v(prompt=None, prompt_embeds=torch.zeros(16, 32), text_stream=False), ValueError,
     r"`prompt_embeds` must be 3D \(batch, sequence, text_dim\)"),
    ("prompt_embeds_nan", t2v(prompt=None, prompt_embeds=embeds(fill=float("nan")), text_stream=False), ValueError,
     r"`prompt_embeds` contains NaN"),
    ("prompt_embeds_int", t2v(prompt=None, prompt_embeds=embeds(dtype=torch.int32), text_stream=False), TypeError,
     r"prompt_embeds.float\(\)"),
    ("prompt_embeds_empty", t2v(prompt=None, prompt_embeds=embeds(length=0), text_stream=False), ValueError,
     r"`prompt_embeds` is empty"),
    ("prompt_embeds_repeat", t2v(prompt=None, prompt_embeds=embeds(), text_stream=False, num_videos_per_prompt=2),
     ValueError, r"repeat_interleave\(2, dim=0\).*num_videos_per_prompt=1"),
    ("negative_embeds_batch", t2v(negative_prompt_embeds=embeds(batch=2)), ValueError,
     r"`negative_prompt_embeds` has batch size 2, expected 1"),
    ("negative_embeds_dim", t2v(negative_prompt_embeds=embeds(dim=8)), ValueError, r"hidden size 8.*text_dim=32"),
    ("negative_prompt_count", t2v(prompt=[PROMPT, PROMPT], negative_prompt=["blurry"] * 3), ValueError,
     r"`negative_prompt` has batch size 3.*one negative prompt per prompt"),
    ("video_latents_channels", v2t(video=None, video_latents=torch.zeros(1, 4, 3, 4, 4)), ValueError,
     r"4 channels.*in_channels=16.*pipe.encode_video"),
    ("video_latents_beyond_rope", v2t(video=None, video_latents=torch.zeros(1, 16, ROPE + 1, 4, 4)), ValueError,
     rf"{ROPE + 1} latent frames, at most {ROPE} fit .*RoPE table.*num_frames <= {MAX_FRAMES}"),
    ("video_latents_int", v2t(video=None, video_latents=torch.zeros(1, 16, 3, 4, 4, dtype=torch.long)), TypeError,
     r"video_latents.float\(\)"),
    ("video_latents_inf", v2t(video=None, video_latents=torch.full((1, 16, 3, 4, 4), float("inf"))), ValueError,
     r"`video_latents` contains NaN or inf"),
    ("video_latents_with_size", v2t(video=None, video_latents=torch.zeros(1, 16, 3, 4, 4), height=32, width=32),
     ValueError, r"already fix the video's size: drop height/width/num_frames"),
    ("video_latents_text_ids_batch", v2t(video=None, video_latents=torch.zeros(2, 16, 3, 4, 4),
                                         text_ids=torch.zeros(1, TEXT_LEN, dtype=torch.long)),
     ValueError, r"`text_ids` has batch size 1.*2 samples.*one row"),
    ("text_ids_float", v2t(text_ids=torch.zeros(1, TEXT_LEN)), TypeError, r"integer tensor.*text_ids.long\(\)"),
    ("text_ids_bool", v2t(text_ids=torch.zeros(1, TEXT_LEN, dtype=torch.bool)), TypeError, r"integer tensor"),
    ("text_ids_numpy", v2t(text_ids=np.zeros((1, TEXT_LEN), np.int64)), TypeError, r"torch.as_tensor\(ids"),
    ("text_ids_vocab", v2t(text_ids=torch.full((1, TEXT_LEN), 1000)), ValueError,
     r"ids in \[1000, 1000\].*vocabulary \[0, \d+\).*pipe.tokenizer"),
    ("text_ids_negative", t2vt(text_ids=torch.full((1, TEXT_LEN), -1)), ValueError, r"outside the transformer's text vocab"),
    ("text_ids_1d", v2t(text_ids=torch.zeros(TEXT_LEN, dtype=torch.long)), ValueError,
     r"shape \(batch, length\).*text_ids\[None\]"),
    ("text_ids_batch", v2t(text_ids=torch.zeros(2, TEXT_LEN, dtype=torch.long)), ValueError,
     r"batch size 2.*1 samples.*one row of starting tokens per sample"),
    ("text_ids_length_vs_max_text_length", v2t(text_ids=torch.zeros(1, 5, dtype=torch.long), max_text_length=TEXT_LEN),
     ValueError, r"5 tokens per row but max_text_length=10: drop max_text_length"),
    ("text_ids_beyond_text_rope", v2t(text_ids=torch.zeros(1, TEXT_ROPE + 1, dtype=torch.long), max_text_length=None),
     ValueError, rf"{TEXT_ROPE + 1} tokens per row.*text_rope_max_seq_len={TEXT_ROPE}.*at most {TEXT_ROPE} tokens"),
    ("text_ids_in_t2v", t2v(text_ids=torch.zeros(1, TEXT_LEN, dtype=torch.long)), ValueError, r"pass `prompt`"),
    ("video_0_255_floats", v2t(video=rand_video() * 255), ValueError, r"above 1.*divide by 255"),
    ("video_below_minus_1", v2t(video=rand_video() * -3), ValueError, r"below -1.*\[0, 1\] or \[-1, 1\]"),
    ("video_nan", v2t(video=np.full((9, 32, 32, 3), np.nan, np.float32)), ValueError, r"NaN or inf.*uint8"),
    ("video_tensor_0_255", v2t(video=torch.from_numpy(rand_video() * 255).permute(0, 3, 1, 2)), ValueError,
     r"divide by 255"),
    ("video_int64", v2t(video=(rand_video() * 255).astype(np.int64)), TypeError, r"astype\(np.uint8\)"),
    ("video_bool", v2t(video=np.zeros((9, 32, 32, 3), bool)), TypeError, r"astype\(np.uint8\)"),
    ("video_frame_sizes", v2t(video=pil_frames_of_two_sizes()), ValueError, r"frames differ in size.*resize them"),
    ("conditioning_count", v2t(conditioning_text=["a", "b", "c"]), ValueError, r"3 conditioning texts for 1 videos"),
    # ---- callbacks (the arguments themselves)
    ("callback_not_callable", t2v(callback_on_step_end=5), TypeError, r"`callback_on_step_end` must be callable"),
    ("callback_inputs_str", t2v(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs="latents"),
     TypeError, r"must be a list of names"),
    ("callback_inputs_unknown", t2v(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise"]),
     ValueError, r"has to be in .*but found \['noise'\]"),
]


@pytest.mark.parametrize("kwargs,error,message", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named_before_any_model_runs(pipe, kwargs, error, message):
    with NoModelRuns(pipe), pytest.raises(error, match=message) as info:
        pipe(**kwargs)
    # TypeError for a wrong type, ValueError for a wrong value; never an error from inside a model
    assert type(info.value) is error


# ---------------------------------------------------------------------- callbacks


def returns(value):
    def callback(pipe, step, timestep, callback_kwargs):
        return value(callback_kwargs) if callable(value) else value

    return callback


BAD_CALLBACKS = [
    ("returns_int", t2v, ["latents"], 5, TypeError, r"returned int at step 0.*return a dict"),
    ("returns_list", t2v, ["latents"], lambda kw: [kw["latents"]], TypeError, r"returned list"),
    ("unknown_key", t2v, ["latents"], {"noise": torch.zeros(1)}, ValueError, r"the key 'noise'.*not among"),
    ("key_not_requested", t2v, ["latents"], lambda kw: {"prompt_embeds": torch.zeros(1)}, ValueError,
     r"the key 'prompt_embeds'.*name it in callback_on_step_end_tensor_inputs"),
    ("wrong_shape", t2v, ["latents"], lambda kw: {"latents": kw["latents"][:, :3]}, ValueError,
     r"'latents' of shape \(1, 3, 3, 4, 4\).*replaces one of shape \(1, 16, 3, 4, 4\)"),
    ("wrong_dtype", t2v, ["latents"], lambda kw: {"latents": kw["latents"].double()}, ValueError,
     r"dtype torch.float64.*same shape, dtype and device.*to\(torch.float32\)"),
    ("not_a_tensor", t2v, ["latents"], lambda kw: {"latents": kw["latents"].numpy()}, TypeError,
     r"returned ndarray for 'latents'.*torch.Tensor"),
    ("nan_latents", t2v, ["latents"], lambda kw: {"latents": torch.full_like(kw["latents"], float("nan"))},
     ValueError, r"'latents' with NaN or inf"),
    ("text_ids_out_of_vocab", t2vt, ["text_ids"], lambda kw: {"text_ids": torch.full_like(kw["text_ids"], 10**6)},
     ValueError, r"'text_ids' with ids outside the text vocabulary"),
    ("replaces_none", v2t, ["prompt_embeds"], lambda kw: {"prompt_embeds": torch.zeros(1, 1, 32)}, ValueError,
     r"no prompt_embeds \(it is None here\)"),
]


@pytest.mark.parametrize(
    "call,inputs,value,error,message", [b[1:] for b in BAD_CALLBACKS], ids=[b[0] for b in BAD_CALLBACKS]
)
def test_bad_callback_output_names_the_callback_and_the_key(pipe, call, inputs, value, error, message):
    callback = returns(value)
    with pytest.raises(error, match=r"`callback_on_step_end` \(.*callback\)") as info:
        pipe(**call(callback_on_step_end=callback, callback_on_step_end_tensor_inputs=inputs, generator=gen(0)))
    assert type(info.value) is error
    assert info.match(message)


# ---------------------------------------------------------------------- valid calls still work


def test_valid_calls_still_work(pipe):
    # t2v at the largest size the RoPE table holds, numpy integers, a tuple of generators, a callback returning None
    seen = []
    out = pipe(
        PROMPT, num_frames=np.int64(MAX_FRAMES), height=MAX_SIZE, width=MAX_SIZE, num_inference_steps=np.int32(1),
        guidance_scale=1, max_sequence_length=16, generator=(gen(0),), output_type="latent",
        callback_on_step_end=lambda p, i, t, kw: seen.append(i),
    )
    assert out.frames.shape == (1, 16, (MAX_FRAMES - 1) // 4 + 1, MAX_SIZE // 8, MAX_SIZE // 8) and seen == [0]

    # t2vt with custom sigmas (numpy), one generator per sample, and a callback that edits callback_kwargs in place
    def edit(p, step, timestep, callback_kwargs):
        callback_kwargs["text_ids"] = torch.full_like(callback_kwargs["text_ids"], 5)
        return callback_kwargs

    out = pipe(
        [PROMPT, "a blue square moving up"], task="t2vt", sigmas=np.linspace(1.0, 0.0, 3)[:-1], generator=[gen(1), gen(2)],
        max_text_length=TEXT_LEN, callback_on_step_end=edit, callback_on_step_end_tensor_inputs=["latents", "text_ids"],
        **SMALL,
    )
    assert out.frames.shape == (2, 9, 32, 32, 3) and torch.equal(out.text_ids, torch.full((2, TEXT_LEN), 5))

    # v2t: a float video in [-1, 1], starting text_ids (which set the caption length), a float temperature of 0
    video = rand_video() * 2 - 1
    out = pipe(video=video, num_inference_steps=2, text_ids=torch.zeros(1, 7, dtype=torch.long), temperature=0.0)
    assert out.text_ids.shape == (1, 7)
    # uint8 and [0, 1] floats give the same video; float round-off just above 1 is tolerated
    frames = (rand_video(3) * 255).round().astype(np.uint8)
    as_float = frames.astype(np.float32) / 255.0
    reference = pipe.preprocess_video(frames)
    torch.testing.assert_close(pipe.preprocess_video(as_float * (1 + 1e-6)), reference, atol=1e-5, rtol=0)

    # prompt_embeds with their own negative embeddings, as WanPipeline takes them
    out = pipe(prompt_embeds=embeds(fill=0.1), negative_prompt_embeds=embeds(), text_stream=False,
               output_type="latent", **{k: v for k, v in SMALL.items() if k != "max_sequence_length"})
    assert out.frames.shape == (1, 16, 3, 4, 4)


def test_limits_are_exposed(pipe):
    assert pipe.max_video_size == {"num_frames": MAX_FRAMES, "height": MAX_SIZE, "width": MAX_SIZE}
    assert pipe.max_sequence_length_limit == 4096


def test_check_inputs_is_public_and_model_free(pipe):
    with NoModelRuns(pipe):
        assert pipe.check_inputs(task="t2v", prompt=[PROMPT, PROMPT], num_videos_per_prompt=3, guidance_scale=5.0,
                                 max_text_length=TEXT_LEN, **SMALL) == 6
        with pytest.raises(ValueError, match="guidance_scale"):
            pipe.check_inputs(task="t2v", prompt=PROMPT, guidance_scale=math.nan, max_text_length=TEXT_LEN, **SMALL)


# ---------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def saved(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("tiny") / "pipe"
    pipe.save_pretrained(folder)
    return folder


def copy_of(saved, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    return folder


def edit_config(folder, component, **changes):
    path = folder / component / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_saved_pipeline_loads(saved):
    loaded = UniViGUPipeline.from_pretrained(saved)
    assert loaded.transformer.config.num_layers == 2


def test_bundled_checkpoint_loads():
    from univigu.toyworld import DEFAULT_CHECKPOINT

    UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)


@pytest.mark.parametrize(
    "component,changes,message",
    [
        ("transformer", {"num_layers": 4}, (r"`transformer` .*config builds \d+ tensors the weights lack \(blocks.2.\*, "
                                            r"blocks.3.\*\).*uninitialised.*transformer/config.json` \(num_layers=4\)")),
        ("transformer", {"num_layers": 1}, (r"`transformer` .*weights hold \d+ tensors the config does not build "
                                            r"\(blocks.1.\*\).*dropped.*transformer/config.json` \(num_layers=1\)")),
        ("text_encoder", {"num_layers": 3}, r"`text_encoder` .*encoder.block.2.\*.*text_encoder/config.json"),
        ("text_encoder", {"num_layers": 1}, r"`text_encoder` .*weights hold .*encoder.block.1.\*"),
    ],
    ids=["transformer_more_blocks", "transformer_fewer_blocks", "text_encoder_more_blocks", "text_encoder_fewer_blocks"],
)
def test_config_and_weights_that_disagree_refuse_to_load(saved, tmp_path, component, changes, message):
    folder = copy_of(saved, tmp_path)
    edit_config(folder, component, **changes)
    with pytest.raises(ValueError, match=message):
        UniViGUPipeline.from_pretrained(folder)


def test_missing_component_subfolder_is_named(saved, tmp_path, pipe):
    folder = copy_of(saved, tmp_path)
    shutil.rmtree(folder / "vae")
    with pytest.raises(OSError, match=r"lacks the component subfolder `vae/` \(AutoencoderKLWan\).*vae=\.\.\."):
        UniViGUPipeline.from_pretrained(folder)
    # passing the component yourself is the documented way around it
    loaded = UniViGUPipeline.from_pretrained(folder, vae=pipe.vae)
    assert loaded.vae is pipe.vae
    assert not os.path.exists(folder / "vae")


def test_non_finite_weights_refuse_to_load(saved, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    weights = broken / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state["blocks.1.ffn_t.net.2.weight"][0, 0] = float("nan")
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"`transformer` hold NaN or inf values \(blocks.1.ffn_t.net.2.weight\).*broken"):
        UniViGUPipeline.from_pretrained(broken)
