"""`univigu convert wan --wan` takes a local folder or a Hub id; offline or unknown ids fail with what to do."""

import pytest

from univigu.conversion.common import WAN_HUB_PATTERNS, resolve_wan_path


def test_local_folder_is_used_as_is(tmp_path):
    assert resolve_wan_path(tmp_path) == tmp_path


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="Wan folder not found"):
        resolve_wan_path(tmp_path / "nope")


def test_hub_id_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not be downloaded from the Hub.*huggingface-cli download"):
        resolve_wan_path("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")


def test_hub_download_asks_only_for_the_diffusers_files(monkeypatch, tmp_path):
    calls = {}

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        calls.update(repo_id=repo_id, allow_patterns=allow_patterns)
        return str(tmp_path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert resolve_wan_path("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") == tmp_path
    assert calls["repo_id"] == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert calls["allow_patterns"] == WAN_HUB_PATTERNS
    assert not any(p.endswith((".pth", ".pt")) or p == "*" for p in WAN_HUB_PATTERNS)
