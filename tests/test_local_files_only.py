"""Only local files are read, only where allowed (issue #29, item 5). Every place a video path is opened (training
and evaluation data through `univigu.data.read_video`, the pipeline and so `univigu caption` / `univigu evaluate`
through `video_input`) goes through `univigu.utils.local_files.check_local_video`: a network URL and a playlist (an
HLS .m3u8, or an .mp4-named file that is really one: the first bytes are sniffed) are refused with a message naming
the path and the opt-in, unless remote reading is allowed (`allow_remote=True`, `pipe.allow_remote_video = True`,
`UNIVIGU_ALLOW_REMOTE_VIDEO=1`). The data folders are hashed before and after.

The crafted playlist inside the data folder points at a clip outside it; the test first shows that FFmpeg does read
that clip when asked to (so the refusal is what keeps it out)."""

import json

import numpy as np
import pytest

from test_cli_exit_status import univigu
from test_reliability_io import tree_hashes
from univigu.data import BadSample, read_video
from univigu.data.preprocessing import VideoPreprocessing
from univigu.utils.local_files import ALLOW_REMOTE_ENV, NotALocalVideoError, check_local_video, sniff_playlist


URLS = ["https://example.com/clip.mp4", "http://127.0.0.1:9/x.mp4", "rtmp://example.com/live", "concat:a.mp4|b.mp4",
        "subfile,,start,0,end,0,,:/etc/hosts"]


def write_ts(path, num_frames=9, size=64):
    """A small MPEG-TS H.264 clip (an HLS segment)."""
    import av

    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def playlist_text(segment: str) -> str:
    return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:1.125,\n{segment}\n#EXT-X-ENDLIST\n")


@pytest.fixture
def crafted(tmp_path):
    """A data folder holding an .m3u8 and an .mp4-named HLS playlist, both pointing at a clip outside the folder,
    and one real clip; metadata.jsonl lists all three."""
    pytest.importorskip("av")
    outside = tmp_path / "outside"
    outside.mkdir()
    write_ts(outside / "secret.ts")
    data = tmp_path / "data"
    data.mkdir()
    (data / "list.m3u8").write_text(playlist_text("../outside/secret.ts"))
    (data / "clip.mp4").write_text(playlist_text(str(outside / "secret.ts")))
    write_ts(data / "real.ts")
    rows = [{"file_name": name, "caption": "a clip"} for name in ("list.m3u8", "clip.mp4", "real.ts")]
    (data / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return data


def test_the_crafted_playlist_would_read_the_file_outside_the_folder(crafted):
    """The premise: FFmpeg opens the segment outside the data folder when the playlist is read (opt-in)."""
    frames = read_video(crafted / "list.m3u8", allow_remote=True)
    assert frames.shape == (9, 64, 64, 3)


@pytest.mark.parametrize("name", ["list.m3u8", "clip.mp4"])
def test_read_video_refuses_playlists(crafted, name, monkeypatch):
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    before = tree_hashes(crafted.parent)
    with pytest.raises(BadSample) as info:
        read_video(crafted / name)
    message = str(info.value)
    assert str(crafted / name) in message and "playlist" in message and "allow_remote=True" in message
    assert isinstance(info.value, NotALocalVideoError)
    with pytest.raises(BadSample, match="playlist"):
        read_video((crafted / name).read_bytes())  # the same playlist passed as encoded bytes
    assert tree_hashes(crafted.parent) == before


@pytest.mark.parametrize("url", URLS)
def test_read_video_refuses_urls(url, monkeypatch):
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    with pytest.raises(BadSample, match="is a URL or stream") as info:
        read_video(url)
    assert url in str(info.value) and ALLOW_REMOTE_ENV in str(info.value)


def test_the_environment_variable_allows_remote_reading(crafted, monkeypatch):
    monkeypatch.setenv(ALLOW_REMOTE_ENV, "1")
    assert read_video(crafted / "list.m3u8").shape[0] == 9
    assert check_local_video("https://example.com/x.mp4") == "https://example.com/x.mp4"


def test_local_files_pass_and_are_made_absolute(crafted, monkeypatch, tmp_path):
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    assert read_video(crafted / "real.ts").shape == (9, 64, 64, 3)
    # a local file whose name looks like a protocol is read as that file, never as the protocol
    (tmp_path / "concat:x.ts").write_bytes((crafted / "real.ts").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert check_local_video("concat:x.ts") == str(tmp_path / "concat:x.ts")
    assert read_video("concat:x.ts").shape[0] == 9


@pytest.mark.parametrize("head, kind", [
    (b"#EXTM3U\n#EXTINF:1,\nseg.ts\n", "HLS"),
    (b"\xef\xbb\xbf  #EXTM3U\n", "HLS"),
    (b"ffconcat version 1.0\nfile '/etc/x.mp4'\n", "ffconcat"),
    (b"v=0\no=- 0 0 IN IP4 127.0.0.1\nc=IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n", "SDP"),
    (b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">', "DASH"),
    (b"http://example.com/a.ts\n", "lists other files"),
    (b"file /etc/passwd\n", "lists other files"),
])
def test_sniffing_names_the_kind(head, kind):
    assert kind in sniff_playlist(head)


def test_sniffing_passes_real_containers(crafted):
    assert sniff_playlist((crafted / "real.ts").read_bytes()[:4096]) is None
    assert sniff_playlist(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2avc1mp41") is None


def test_training_data_skips_playlists_naming_them(crafted, monkeypatch):
    """Training and evaluation data: the playlists are bad samples whose reason says why; the real clip is kept."""
    from univigu.data import find_bad_samples, load_video_text_dataset

    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    before = tree_hashes(crafted.parent)
    dataset = load_video_text_dataset(train_data_dir=str(crafted), text_columns=["caption"])
    problems = find_bad_samples(dataset, "file_name", ["caption"], VideoPreprocessing(num_frames=5), warn=False)
    names = {dataset[i]["file_name"].rsplit("/", 1)[-1]: reason for i, reason in problems.items()}
    assert set(names) == {"list.m3u8", "clip.mp4"}
    for name, reason in names.items():
        assert reason.startswith("not a local video file") and name in reason and "playlist" in reason
    assert tree_hashes(crafted.parent) == before


@pytest.fixture(scope="module")
def pipe():
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT

    return UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)


@pytest.mark.parametrize("name", ["list.m3u8", "clip.mp4"])
def test_the_pipeline_refuses_playlists_unless_allowed(pipe, crafted, name, monkeypatch):
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    before = tree_hashes(crafted.parent)
    with pytest.raises(ValueError, match="playlist") as info:
        pipe.preprocess_video(str(crafted / name))
    assert str(crafted / name) in str(info.value) and "allow_remote_video" in str(info.value)
    with pytest.raises(ValueError, match="playlist"):
        pipe(video=str(crafted / name), task="v2t", num_inference_steps=1)
    monkeypatch.setattr(pipe, "allow_remote_video", True)
    if name.endswith(".m3u8"):  # FFmpeg reads an .mp4-named playlist as a (broken) mp4 either way
        assert pipe.preprocess_video(str(crafted / name)).shape[2] == 9
    assert tree_hashes(crafted.parent) == before


@pytest.mark.parametrize("url", URLS[:2])
def test_the_pipeline_refuses_urls(pipe, url, monkeypatch):
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    with pytest.raises(ValueError, match="is a URL or stream") as info:
        pipe.preprocess_video(url)
    assert url in str(info.value)


def test_caption_and_evaluate_refuse_a_playlist_and_a_url(crafted, monkeypatch, capsys, tmp_path_factory):
    """The CLI: `caption` exits 1 naming the playlist and the URL; `evaluate` on the data folder exits 1 naming the
    playlist; nothing in the folder changes and no output is written."""
    pytest.importorskip("evaluate")
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    before = tree_hashes(crafted.parent)
    status, out, err = univigu(monkeypatch, capsys, "caption", str(crafted / "clip.mp4"), "--device", "cpu")
    assert status == 1 and out == "" and "Traceback" not in err
    assert f"{crafted / 'clip.mp4'}: error:" in err and "playlist" in err
    status, out, err = univigu(monkeypatch, capsys, "caption", URLS[0], "--device", "cpu")
    assert status == 1 and out == "" and "Traceback" not in err and URLS[0] in err
    result = tmp_path_factory.mktemp("results") / "results.json"
    from univigu.toyworld import DEFAULT_CHECKPOINT

    status, _, err = univigu(monkeypatch, capsys, "evaluate", "--model", str(DEFAULT_CHECKPOINT), "--data-dir",
                             str(crafted), "--out", str(result), "--num-inference-steps", "1", "--device", "cpu")
    assert status == 1 and "Traceback" not in err and "playlist" in err
    assert not result.exists()
    assert tree_hashes(crafted.parent) == before
