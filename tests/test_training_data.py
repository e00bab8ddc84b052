"""Training data: frame sampling, bad samples (skipped and counted), the latent cache (reused / stale refused),
the data order, and the atomic checkpoint helpers. CPU, tiny encoders, ShapesWorld-sized clips."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch



from univigu.toyworld import make_dataset, write_video
from univigu.training import checkpointing
from univigu.data import (
    BadSample,
    NoUsableSamplesError,
    find_bad_samples,
    load_video_text_dataset,
    sample_frame_indices,
    select_usable,
)
from univigu.data.preprocessing import VideoPreprocessing, resize_center_crop
from univigu.training.dataset import EpochSampler
from univigu.training.encoding import tokenize_text_stream
from univigu.training.latent_cache import StaleCacheError, prepare_latent_cache


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def encoders():
    from univigu.toyworld.components import build_tiny_text_encoder, build_tiny_vae, build_tokenizer

    tokenizer = build_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": build_tiny_text_encoder(vocab_size=len(tokenizer), seed=0),
        "vae": build_tiny_vae(seed=0),
    }


@pytest.fixture(scope="module")
def messy_dir(tmp_path_factory):
    """3 good ShapesWorld clips + 1 corrupt file + 1 too-short clip + 1 missing file + 1 missing prompt."""
    root = tmp_path_factory.mktemp("messy")
    make_dataset(root, 3, split="train", seed=0)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    (root / "corrupt.mp4").write_bytes(b"\x00\x01 this is not a video" * 50)
    write_video(root / "short.mp4", np.zeros((5, 64, 64, 3), np.uint8))
    base = {k: rows[0][k] for k in ("prompt", "caption")}
    rows += [
        {"file_name": "corrupt.mp4", **base},
        {"file_name": "short.mp4", **base},
        {"file_name": "missing.mp4", **base},
        {"file_name": rows[1]["file_name"], "prompt": "", "caption": rows[1]["caption"]},
    ]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_frame_sampling_and_resize():
    assert sample_frame_indices(9, 9) == list(range(9))
    assert sample_frame_indices(17, 9) == list(range(0, 17, 2))
    assert sample_frame_indices(30, 5, mode="first", stride=3) == [0, 3, 6, 9, 12]
    with pytest.raises(BadSample, match="too short"):
        sample_frame_indices(8, 9)
    frames = torch.rand(3, 3, 48, 96)
    out = resize_center_crop(frames, 64, 64)
    assert out.shape == (3, 3, 64, 64)
    with pytest.raises(ValueError, match="4k \\+ 1"):
        VideoPreprocessing(num_frames=8)


def test_preprocessing_reads_a_shapesworld_clip_exactly(tmp_path):
    from univigu.toyworld import iter_samples

    make_dataset(tmp_path, 1, seed=3)
    frames, _ = next(iter_samples(1, seed=3))
    video = VideoPreprocessing(9, 64, 64)(str(tmp_path / "000000.mp4"))
    assert video.shape == (3, 9, 64, 64) and video.min() >= -1 and video.max() <= 1
    expected = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.equal(video, expected)  # lossless mp4, no resize: bit-exact


def test_bad_samples_are_skipped_with_a_warning_and_counted(messy_dir, caplog):
    raw = load_video_text_dataset(train_data_dir=str(messy_dir))
    assert len(raw) == 7
    with caplog.at_level("WARNING"):
        problems = find_bad_samples(raw, "file_name", ["prompt"], VideoPreprocessing(9, 64, 64))
    rows, summary = select_usable(raw, problems, "file_name")
    assert len(rows) == 3 and rows["source_index"] == [0, 1, 2]
    assert summary.total == 7 and summary.usable == 3 and summary.num_skipped == 4
    assert summary.skipped == {"unreadable video": 2, "too short": 1, "missing text": 1}
    text = caplog.text
    for name in ("corrupt.mp4", "short.mp4", "missing.mp4", "too short", "missing text"):
        assert name in text
    assert "3/7 samples usable, 4 skipped" in summary.describe()


def test_dataset_with_no_usable_sample_is_a_clear_error(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "nope.mp4", "prompt": "a red circle moving left"}) + "\n"
        + json.dumps({"file_name": "nope2.mp4", "prompt": None}) + "\n"
    )
    raw = load_video_text_dataset(train_data_dir=str(tmp_path))
    problems = find_bad_samples(raw, "file_name", ["prompt"], VideoPreprocessing(9, 64, 64), warn=False)
    with pytest.raises(NoUsableSamplesError, match="no usable sample: 0/2 samples usable"):
        select_usable(raw, problems, "file_name")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_video_text_dataset(train_data_dir=str(tmp_path / "missing_dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no metadata.jsonl or metadata.csv"):
        load_video_text_dataset(train_data_dir=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no column"):
        find_bad_samples(raw, "file_name", ["caption"])


def test_csv_metadata_works(tmp_path):
    make_dataset(tmp_path, 2, seed=0)
    rows = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    (tmp_path / "metadata.jsonl").unlink()
    import csv

    with open(tmp_path / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "prompt", "caption"])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r[k] for k in ("file_name", "prompt", "caption")})
    raw = load_video_text_dataset(train_data_dir=str(tmp_path))
    assert raw["prompt"] == [r["prompt"] for r in rows]
    assert Path(raw["file_name"][0]).is_absolute()


def test_latent_cache_is_reused_counts_bad_videos_and_refuses_stale(messy_dir, encoders, tmp_path):
    from univigu.toyworld.components import build_tiny_vae

    raw = load_video_text_dataset(train_data_dir=str(messy_dir))
    pre = VideoPreprocessing(9, 64, 64)
    kwargs = dict(video_column="file_name", condition_column="prompt", max_sequence_length=16, progress=False)
    cache_dir = tmp_path / "cache"
    cache, problems, info = prepare_latent_cache(
        raw, cache_dir, encoders["vae"], encoders["text_encoder"], encoders["tokenizer"], pre, **kwargs
    )
    assert cache["source_index"] == [0, 1, 2]
    assert set(problems) == {3, 4, 5, 6} and "too short" in problems[4] and "missing text" in problems[6]
    lat = torch.tensor(np.asarray(cache[0]["latents"], dtype=np.float32))
    assert lat.shape == (16, 3, 8, 8)
    # the cached latents are what the VAE gives now (diffusers normalisation)
    from univigu.training.encoding import encode_videos

    fresh = encode_videos(encoders["vae"], pre(raw[0]["file_name"])[None])[0]
    assert torch.allclose(lat, fresh, atol=1e-6)
    emb = np.asarray(cache[0]["prompt_embeds"])
    assert emb.shape[1] == 32 and emb.shape[0] <= 16

    # same encoders and data: reused (no rebuild)
    stamp = (cache_dir / "univigu_latent_cache.json").stat().st_mtime_ns
    cache2, problems2, info2 = prepare_latent_cache(
        raw, cache_dir, encoders["vae"], encoders["text_encoder"], encoders["tokenizer"], pre, **kwargs
    )
    assert info2["key"] == info["key"] and problems2 == problems
    assert (cache_dir / "univigu_latent_cache.json").stat().st_mtime_ns == stamp

    # a new decoder (other weights and width, as the ShapesWorld build swaps in) makes the same latents: reused
    new_decoder = build_tiny_vae(seed=0)
    new_decoder.register_to_config(decoder_base_dim=new_decoder.config.base_dim)
    with torch.no_grad():
        for param in [*new_decoder.decoder.parameters(), *new_decoder.post_quant_conv.parameters()]:
            param.add_(0.5)
    _, _, info_decoder = prepare_latent_cache(
        raw, cache_dir, new_decoder, encoders["text_encoder"], encoders["tokenizer"], pre, **kwargs
    )
    assert info_decoder["key"] == info["key"]
    assert (cache_dir / "univigu_latent_cache.json").stat().st_mtime_ns == stamp

    # a VAE with another encoder (same config): stale, refused with a message naming what changed
    other_vae = build_tiny_vae(seed=1)
    with pytest.raises(StaleCacheError, match="stale.*vae_weights.*--overwrite_latents_cache"):
        prepare_latent_cache(raw, cache_dir, other_vae, encoders["text_encoder"], encoders["tokenizer"], pre, **kwargs)
    # other preprocessing settings: stale too
    with pytest.raises(StaleCacheError, match="preprocessing"):
        prepare_latent_cache(
            raw, cache_dir, encoders["vae"], encoders["text_encoder"], encoders["tokenizer"],
            VideoPreprocessing(5, 64, 64), **kwargs,
        )
    # overwrite=True rebuilds it with the new encoder
    _, _, info3 = prepare_latent_cache(
        raw, cache_dir, other_vae, encoders["text_encoder"], encoders["tokenizer"], pre, overwrite=True, **kwargs
    )
    assert info3["key"] != info["key"]


def test_text_stream_tokenization_learns_padding_by_default(encoders):
    tok = encoders["tokenizer"]
    ids, mask, real = tokenize_text_stream(tok, ["a red circle moving left"], 10)
    assert ids.shape == (1, 10) and mask.all()
    assert real.sum() == 6 and ids[0, 5] == tok.eos_token_id and (ids[0, 6:] == tok.pad_token_id).all()
    ids, mask, real = tokenize_text_stream(tok, ["a red circle moving left"], 10, text_padding="mask")
    assert torch.equal(mask, real)


def test_epoch_sampler_depends_only_on_seed_and_epoch():
    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(3)
    assert list(a) != list(b)


class _FakeAccelerator:
    is_main_process = True

    def wait_for_everyone(self):
        pass

    def save_state(self, path):
        from safetensors.torch import save_file

        save_file({"weight": torch.ones(2)}, str(Path(path, "model.safetensors")))  # resume reads the weights back


def test_checkpoints_are_atomic_and_limited(tmp_path):
    acc = _FakeAccelerator()
    for step in (2, 4, 6):
        checkpointing.save_checkpoint(acc, tmp_path, step, {"epoch": 0}, total_limit=2)
    assert [p.name for p in checkpointing.list_checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-6"]
    # a checkpoint whose write was interrupted: a temp folder, or a folder without the state file
    (tmp_path / ".tmp-checkpoint-8").mkdir()
    (tmp_path / ".tmp-checkpoint-8" / "model.safetensors").write_bytes(b"half")
    (tmp_path / "checkpoint-10").mkdir()
    assert checkpointing.latest_checkpoint(tmp_path).name == "checkpoint-6"
    assert checkpointing.resolve_checkpoint(tmp_path, "latest").name == "checkpoint-6"
    assert checkpointing.read_checkpoint_state(tmp_path / "checkpoint-6")["global_step"] == 6
    checkpointing.remove_incomplete_checkpoints(tmp_path)
    assert not (tmp_path / ".tmp-checkpoint-8").exists()
    with pytest.raises(FileNotFoundError, match="not a complete univigu checkpoint"):
        checkpointing.resolve_checkpoint(tmp_path, "checkpoint-10")
    assert checkpointing.resolve_checkpoint(tmp_path / "nothing", "latest") is None


def test_dataset_name_can_be_a_save_to_disk_folder(tmp_path):
    import datasets

    make_dataset(tmp_path / "videos", 2, seed=0)
    rows = [json.loads(line) for line in (tmp_path / "videos" / "metadata.jsonl").read_text().splitlines()]
    ds = datasets.Dataset.from_dict({
        "video": [r["file_name"] for r in rows],
        "prompt": [r["prompt"] for r in rows],
    })
    ds = ds.map(lambda e: {"video": str(tmp_path / "videos" / e["video"])})
    ds.save_to_disk(str(tmp_path / "saved"))
    raw = load_video_text_dataset(dataset_name=str(tmp_path / "saved"), video_column="video")
    assert raw["prompt"] == [r["prompt"] for r in rows]
    problems = find_bad_samples(raw, "video", ["prompt"], VideoPreprocessing(9, 64, 64))
    assert problems == {}
    # a folder with a metadata file given as --dataset_name works like --train_data_dir
    raw = load_video_text_dataset(dataset_name=str(tmp_path / "videos"))
    assert len(raw) == 2
