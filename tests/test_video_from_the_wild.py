"""Videos from the wild (issue #29, items 1 and 2): a video of any size, aspect, frame rate and length is brought to
what the checkpoint was trained on (its stored height, width, num_frames and fps), decoding only the window it needs;
overrides (`height`, `width`, `num_frames`, `fps`, `crop`, `start`, `duration`) and `univigu caption`'s flags reach
the pipeline; a size, frame count or caption length the checkpoint was not trained for runs with one warning per
setting, naming the trained values; in-range inputs give exactly what they gave before.

Clips are written losslessly (RGB H.264, qp 0) with frame i painted in the colour (i mod 256, i // 256, 0), so the
frames a call picked can be read back from the pixels. Models: the bundled ShapesWorld checkpoint (64 x 64, 9 frames, 8 fps).
"""

import logging

import numpy as np
import pytest
import torch

from univigu import UniViGUPipeline
from univigu.pipelines import video_input
from univigu.pipelines.video_input import fit_frames
from univigu.toyworld import DEFAULT_CHECKPOINT


LOGGER = "univigu.pipelines.input_checks"


def write_clip(path, num_frames, fps, width, height, paint=None):
    """A lossless mp4: frame i is uniformly (i mod 256, i // 256, 0) (or `paint(i)`, an (H, W, 3) uint8 array)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(num_frames):
            image = paint(i) if paint else np.full((height, width, 3), (i % 256, i // 256, 0), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def picked(video):
    """The frame indices a preprocessed `(1, 3, F, H, W)` video in [-1, 1] holds (see `write_clip`)."""
    colour = ((video[0, :2, :, video.shape[3] // 2, video.shape[4] // 2] + 1) / 2 * 255).round().long()
    return (colour[0] + 256 * colour[1]).tolist()


@pytest.fixture(scope="module")
def pipe():
    pipe = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def clip24(tmp_path_factory):
    """3 s of 320 x 240 at 24 fps."""
    return write_clip(tmp_path_factory.mktemp("clips") / "clip24.mp4", 72, 24, 320, 240)


def test_the_checkpoint_stores_its_frame_rate(pipe):
    assert pipe.stored_call_default("fps", "v2t") == 8
    assert (pipe.stored_call_default("height", "v2t"), pipe.stored_call_default("width", "v2t")) == (64, 64)
    assert pipe.stored_call_default("num_frames", "v2t") == 9


def test_a_24fps_clip_is_sampled_at_the_trained_8fps_and_size(pipe, clip24):
    video = pipe.preprocess_video(clip24)
    assert video.shape == (1, 3, 9, 64, 64)
    assert picked(video) == [0, 3, 6, 9, 12, 15, 18, 21, 24]  # 1 s from the start, every third frame
    assert picked(pipe.preprocess_video(clip24, start=1.0)) == list(range(24, 49, 3))
    assert picked(pipe.preprocess_video(clip24, fps=4)) == list(range(0, 49, 6))  # override: 2 s at 4 fps


def test_30fps_takes_the_nearest_frames(pipe, tmp_path):
    path = write_clip(tmp_path / "clip30.mp4", 45, 30, 96, 64)
    # times i / 8 s -> frames 30 i / 8 = 0, 3.75, 7.5, 11.25, ... (ties go to the later frame)
    assert picked(pipe.preprocess_video(path)) == [0, 4, 8, 11, 15, 19, 23, 26, 30]


def test_decoding_stops_once_the_window_is_covered(pipe, tmp_path, monkeypatch):
    path = write_clip(tmp_path / "long.mp4", 300, 30, 64, 48)  # 10 s
    decoded = []
    window = video_input._VideoFile.window

    def counting(self, start, duration):
        for item in window(self, start, duration):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(video_input._VideoFile, "window", counting)
    assert picked(pipe.preprocess_video(path)) == [0, 4, 8, 11, 15, 19, 23, 26, 30]
    assert len(decoded) == 31  # frames 0..30 of 300
    decoded.clear()
    assert picked(pipe.preprocess_video(path, start=8.0)) == [240, 244, 248, 251, 255, 259, 263, 266, 270]
    assert len(decoded) == 31 and min(decoded) >= 8.0 - 1e-3  # seeked: nothing before the window is handed over


def test_a_short_window_spreads_the_frames_over_it(pipe, clip24):
    # 0.5 s holds 12 frames, fewer than 1 s at 8 fps needs: 9 spread evenly over those 12
    expected = np.linspace(0, 11, 9).round().astype(int).tolist()
    assert picked(pipe.preprocess_video(clip24, duration=0.5)) == expected
    # the last 0.5 s of the clip (frames 60..71): the same, from the start
    assert picked(pipe.preprocess_video(clip24, start=2.5)) == [60 + i for i in expected]


def test_a_clip_with_fewer_frames_is_repeated_unless_num_frames_is_asked(pipe, tmp_path):
    path = write_clip(tmp_path / "five.mp4", 5, 8, 64, 64)
    assert picked(pipe.preprocess_video(path)) == [0, 0, 1, 2, 2, 2, 3, 4, 4]  # numpy rounds .5 to even
    with pytest.raises(ValueError, match="too few frames: num_frames=9 .* has 5.*num_frames=5"):
        pipe.preprocess_video(path, num_frames=9)
    assert picked(pipe.preprocess_video(path, num_frames=5)) == [0, 1, 2, 3, 4]


def test_crop_and_pad_geometry(pipe, tmp_path):
    def thirds(i):  # 128 x 64: red | green | blue columns (32, 64, 32 wide)
        image = np.zeros((64, 128, 3), np.uint8)
        image[:, :32, 0] = image[:, 32:96, 1] = image[:, 96:, 2] = 255
        return image

    path = write_clip(tmp_path / "wide.mp4", 9, 8, 128, 64, paint=thirds)
    center = (pipe.preprocess_video(path)[0, :, 0] + 1) / 2  # (3, 64, 64): the middle 64 columns, all green
    assert torch.allclose(center[1], torch.ones(64, 64), atol=1e-3) and center[[0, 2]].abs().max() < 1e-3
    padded = (pipe.preprocess_video(path, crop="pad")[0, :, 0] + 1) / 2  # scaled to 64 x 32, black above and below
    assert padded[:, :16].abs().max() < 1e-3 and padded[:, 48:].abs().max() < 1e-3
    content = padded[:, 16:48]
    assert torch.allclose(content[0, :, :14], torch.ones(32, 14), atol=1e-3)  # red left
    assert torch.allclose(content[1, :, 18:46], torch.ones(32, 28), atol=1e-3)  # green middle
    assert torch.allclose(content[2, :, 50:], torch.ones(32, 14), atol=1e-3)  # blue right

    # the same geometry for frames in memory, and for tall frames
    tall = torch.rand(2, 3, 100, 50)
    assert fit_frames(tall, 64, 64).shape == (2, 3, 64, 64)
    pad = fit_frames(tall, 64, 64, crop="pad")
    assert pad[..., :16].abs().max() == 0 and pad[..., 48:].abs().max() == 0 and pad[..., 16:48].min() > 0
    with pytest.raises(ValueError, match="crop='stretch'"):
        fit_frames(tall, 64, 64, crop="stretch")


def test_hd_video_is_captioned_at_the_trained_size(pipe, tmp_path):
    path = write_clip(tmp_path / "hd.mp4", 12, 30, 1280, 720)
    video = pipe.preprocess_video(path)
    assert video.shape == (1, 3, 9, 64, 64)
    assert pipe(video=path, num_inference_steps=1, generator=torch.Generator().manual_seed(0)).text[0] is not None


def test_overrides(pipe, clip24):
    video = pipe.preprocess_video(clip24, height=32, width=48, num_frames=5, fps=12, crop="pad")
    assert video.shape == (1, 3, 5, 32, 48)
    assert picked(video) == [0, 2, 4, 6, 8]


def test_frames_in_memory_have_no_rate(pipe):
    frames = np.stack([np.full((48, 80, 3), (i, 0, 0), np.uint8) for i in range(33)])
    video = pipe.preprocess_video(frames)  # the trained size and count, spread over the 33 frames
    assert video.shape == (1, 3, 9, 64, 64) and picked(video) == list(range(0, 33, 4))
    for kwargs in (dict(fps=8), dict(start=1.0), dict(duration=2.0)):
        with pytest.raises(ValueError, match="frames passed in memory carry no frame rate"):
            pipe.preprocess_video(frames, **kwargs)


@pytest.mark.parametrize("kwargs,message", [
    (dict(fps=0), r"fps=0 is not a frame rate"),
    (dict(fps=float("nan")), r"fps=nan is not a finite number"),
    (dict(crop="stretch"), r"crop='stretch' is not supported: use 'center'"),
    (dict(start=-1.0), r"start=-1.0 is below 0.0"),
    (dict(duration=0), r"duration=0 is not a length of video"),
    # the bundled VAE compresses time 2x (Wan's 4x: "4k+1 (1, 5, 9, 13, ...)")
    (dict(num_frames=4), r"num_frames=4 is not of the form 2k\+1 \(1, 3, 5, 7, ...\) .*use 3 or 5"),
])
def test_bad_sampling_arguments_are_named(pipe, clip24, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(video=clip24, num_inference_steps=1, **kwargs)


def test_sampling_arguments_are_v2t_only(pipe):
    with pytest.raises(ValueError, match=r"fps/crop sample a video to caption \(task 'v2t'\)"):
        pipe(prompt="a red circle", fps=8, crop="pad", num_inference_steps=1)
    latents = torch.zeros(1, pipe.transformer.config.in_channels, 3, 8, 8)
    with pytest.raises(ValueError, match=r"`video_latents` are an encoded video: drop start"):
        pipe(video_latents=latents, start=1.0, num_inference_steps=1)


def test_outside_the_trained_range_warns_once_per_setting(pipe, clip24, caplog):
    def warnings_of(**kwargs):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            pipe(video=clip24, num_inference_steps=1, generator=torch.Generator().manual_seed(0), **kwargs)
        return [r.getMessage() for r in caplog.records if r.name == LOGGER]

    assert warnings_of() == []  # the defaults are the trained values
    first = warnings_of(height=32, width=32)
    assert len(first) == 1
    assert "height=32, width=32" in first[0]
    assert "height=64, width=64, num_frames=9, max_text_length=40" in first[0]
    assert warnings_of(height=32, width=32) == []  # once per pipeline and setting
    second = warnings_of(num_frames=5, max_text_length=8)
    assert sorted(m.split(":")[0] for m in second) == ["max_text_length=8", "num_frames=5"]  # each setting once
    assert all("num_frames=9, max_text_length=40" in m for m in second)
    assert warnings_of(num_frames=5, max_text_length=8, height=32, width=32) == []

    other = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)  # another pipeline says it again
    other.set_progress_bar_config(disable=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        other(video=clip24, num_inference_steps=1, height=32, width=32)
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1

    # generation: a size or frame count off the trained ones warns too
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        other(prompt="a red circle", num_inference_steps=1, num_frames=5, output_type="latent")
    assert any("num_frames=5" in r.getMessage() for r in caplog.records)


def test_in_range_clip_gives_what_it_gave_before(pipe, tmp_path):
    """A 64 x 64, 9-frame, 8 fps clip: the model sees exactly what the code before issue #29 gave it (all frames,
    decoded by diffusers' `load_video`, no resizing), so the seeded caption is unchanged."""
    from diffusers.utils import export_to_video, load_video

    frames = np.random.default_rng(0).random((9, 64, 64, 3)).astype(np.float32)
    path = str(tmp_path / "in_range.mp4")
    export_to_video(list(frames), path, fps=8)  # yuv420p H.264, as users' files are

    before = np.stack([np.asarray(frame.convert("RGB")) for frame in load_video(path)])
    before = torch.from_numpy(before).permute(0, 3, 1, 2).float() / 255.0
    before = pipe.video_processor.preprocess_video([before], height=64, width=64)
    video = pipe.preprocess_video(path)
    assert torch.equal(video, before)

    caption = pipe(video=path, generator=torch.Generator().manual_seed(0)).text_ids
    latents = pipe.encode_video(before, mode="argmax")
    expected = pipe(video_latents=latents, generator=torch.Generator().manual_seed(0)).text_ids
    assert torch.equal(caption, expected)


def test_caption_flags_reach_the_pipeline(tmp_path, monkeypatch, capsys, clip24):
    from univigu.cli import main
    from univigu.pipelines import cli

    calls = []

    class Recorder:
        def __call__(self, **kwargs):
            calls.append(kwargs)
            return type("Out", (), {"text": ["a caption"]})()

    monkeypatch.setattr(cli, "load_pipeline", lambda *args, **kwargs: Recorder())
    status = main(["caption", clip24, "--height", "32", "--width", "48", "--num-frames", "5", "--fps", "12.5",
                   "--crop", "pad", "--start", "0.5", "--duration", "2"])
    assert status == 0 and capsys.readouterr().out.strip() == "a caption"
    assert {k: calls[0][k] for k in ("height", "width", "num_frames", "fps", "crop", "start", "duration")} == dict(
        height=32, width=48, num_frames=5, fps=12.5, crop="pad", start=0.5, duration=2.0
    )
    calls.clear()
    assert main(["caption", clip24]) == 0
    assert not {"height", "width", "num_frames", "fps", "crop", "start", "duration"} & set(calls[0])
    with pytest.raises(SystemExit, match="--height and --width together"):
        main(["caption", clip24, "--height", "32"])
    for flag, value in (("--fps", "0"), ("--start", "-1"), ("--duration", "0"), ("--crop", "stretch")):
        with pytest.raises(SystemExit):
            main(["caption", clip24, flag, value])
        assert flag in capsys.readouterr().err


def test_caption_command_on_an_hd_clip(tmp_path, capsys):
    from univigu.cli import main

    path = write_clip(tmp_path / "hd.mp4", 20, 30, 1280, 720)
    assert main(["caption", path, "--num-inference-steps", "2", "--start", "0.1", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert out.endswith("\n") and "error" not in err  # one caption line (a flat grey clip may get an empty one)
