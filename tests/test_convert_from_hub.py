"""`univigu convert reference --checkpoint OWNER/NAME`: the released weights straight from the Hub (only the checkpoint
file is fetched), tested offline against a prepared Hub cache; folders; the converted folder's model card."""

import json

import huggingface_hub
import pytest
import torch
import yaml
from huggingface_hub import constants

from univigu.cli import main
from univigu.utils.hub import resolve_checkpoint

from test_conversion import SMALL_CONFIG, _save_wan_folder, reference_layout_state


REPO = "Fr0zencr4nE/Uni-ViGU"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def hub_cache(root, repo, files_by_commit, refs):
    """A Hub cache as huggingface_hub writes it: models--owner--name/snapshots/<commit>/<file>, refs/<name> = commit
    (real files instead of links to blobs/, which huggingface_hub reads the same)."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    for commit, files in files_by_commit.items():
        for name, write in files.items():
            target = repo_dir / "snapshots" / commit / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write(target)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    for ref, commit in refs.items():
        (repo_dir / "refs" / ref).write_text(commit)
    return root


def saved(obj):
    return lambda path: torch.save(obj, path)


def text(content):
    return lambda path: path.write_text(content)


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return _save_wan_folder(tmp_path_factory.mktemp("wan"), dict(SMALL_CONFIG), vocab_size=30)


@pytest.fixture(scope="module")
def states():
    return reference_layout_state(seed=0), reference_layout_state(seed=1)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, states):
    """HF_HUB_OFFLINE with the Hub cache in a temporary folder holding REPO: on main one checkpoint (plus a README),
    on the tag `two` two checkpoints. huggingface_hub reads its environment at import: its constants are patched."""
    cache = hub_cache(
        tmp_path / "hub",
        REPO,
        {
            COMMIT: {"README.md": text("---\nlicense: apache-2.0\n---\n"),
                     "Uni-ViGU-CKPT.pth": saved({"model": states[0], "step": 7})},
            OTHER_COMMIT: {"ckpt/a.pth": saved({"model": states[0]}), "ckpt/b.pth": saved({"model": states[1]})},
        },
        {"main": COMMIT, "two": OTHER_COMMIT},
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def load_transformer_state(folder):
    from safetensors.torch import load_file

    return load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")


def assert_same_weights(folder, state):
    converted = load_transformer_state(folder)
    for key, value in state.items():
        ours = key.replace("_fsdp_wrapped_module.", "")
        if ours != "rotary_emb_text.inv_freq":
            assert torch.equal(converted[ours], value), key


def read_card(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_hub_id_converts_offline_from_the_cache_with_a_model_card(offline_cache, wan, states, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", "reference", "--checkpoint", REPO, "--wan", str(wan), "--out", str(out)]) == 0
    assert "Wrote the converted reference pipeline" in capsys.readouterr().out
    assert_same_weights(out, states[0])

    info = json.loads((out / "univigu_conversion.json").read_text())
    assert info["hub_repo"] == REPO and info["hub_filename"] == "Uni-ViGU-CKPT.pth" and info["hub_commit"] == COMMIT
    assert info["step"] == 7

    meta, card = read_card(out)
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "text-to-video"
    assert meta["base_model"] == REPO
    # offline, the repo's licence is not asked for: `other`, linking to the source
    assert meta["license"] == "other" and meta["license_link"] == f"https://huggingface.co/{REPO}"
    assert "UniViGUPipeline.from_pretrained" in card and "enable_model_cpu_offload" in card
    assert "12 GB" in card and "10.9 GiB" in card and "float8_e4m3fn" in card

    from univigu.pipelines import UniViGUPipeline

    pipe = UniViGUPipeline.from_pretrained(out)
    assert pipe.transformer.config.vocab_size == 30 and pipe.config.latent_normalization == "raw"


def test_several_checkpoints_need_filename_and_revision_picks_the_commit(offline_cache, wan, states, tmp_path, capsys):
    args = ["convert", "reference", "--checkpoint", REPO, "--revision", "two", "--wan", str(wan)]
    assert main(args + ["--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "2 checkpoint files: ckpt/a.pth, ckpt/b.pth" in err and "--filename" in err
    assert not (tmp_path / "x").exists()

    assert main(args + ["--filename", "ckpt/b.pth", "--out", str(tmp_path / "b"), "--license", "apache-2.0"]) == 0
    assert_same_weights(tmp_path / "b", states[1])
    assert json.loads((tmp_path / "b" / "univigu_conversion.json").read_text())["hub_commit"] == OTHER_COMMIT
    assert read_card(tmp_path / "b")[0]["license"] == "apache-2.0"

    assert main(args + ["--filename", "ckpt/c.pth", "--out", str(tmp_path / "c")]) == 1
    assert "no checkpoint file 'ckpt/c.pth' (its checkpoint files: ckpt/a.pth, ckpt/b.pth)" in capsys.readouterr().err


def test_cache_dir_flag_points_at_the_cache(offline_cache, wan, states, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    out = tmp_path / "out"
    code = main(["convert", "reference", "--checkpoint", REPO, "--cache-dir", str(offline_cache), "--wan", str(wan),
                 "--out", str(out)])
    assert code == 0
    assert_same_weights(out, states[0])


def test_repo_not_in_the_cache_offline_says_what_to_do(offline_cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="could not be listed on the Hub.*nor found in the Hub cache.*hf download"):
        resolve_checkpoint("someone/not-cached")


def test_local_folders(tmp_path, states, wan):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no weights here")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint file"):
        resolve_checkpoint(empty)
    assert main(["convert", "reference", "--checkpoint", str(empty), "--wan", str(wan),
                 "--out", str(tmp_path / "o")]) == 1

    one = tmp_path / "one"
    (one / "sub").mkdir(parents=True)
    torch.save({"model": states[0]}, one / "sub" / "ckpt.pth")
    assert resolve_checkpoint(one).path == one / "sub" / "ckpt.pth"
    torch.save({"model": states[1]}, one / "other.pt")
    with pytest.raises(ValueError, match="2 checkpoint files: other.pt, sub/ckpt.pth"):
        resolve_checkpoint(one)
    assert resolve_checkpoint(one, filename="other.pt").path == one / "other.pt"
    with pytest.raises(ValueError, match="already a file"):
        resolve_checkpoint(one / "other.pt", filename="x.pth")

    out = tmp_path / "local"
    assert main(["convert", "reference", "--checkpoint", str(one), "--filename", "sub/ckpt.pth", "--wan", str(wan),
                 "--out", str(out)]) == 0
    assert_same_weights(out, states[0])
    meta, _ = read_card(out)
    assert meta["library_name"] == "diffusers" and "base_model" not in meta  # a local Wan folder: no Hub id


def test_online_only_the_checkpoint_is_downloaded(monkeypatch, tmp_path):
    """Listing through the API, then one `hf_hub_download` of the checkpoint: nothing else of the repo."""
    downloads = []
    listing = ["README.md", "assets/teaser.gif", "Uni-ViGU-CKPT.pth", "config.yaml"]

    class FakeApi:
        def list_repo_files(self, repo_id, revision=None):
            assert (repo_id, revision) == (REPO, "v1")
            return listing

    def fake_download(repo_id, filename, revision=None, cache_dir=None):
        downloads.append((repo_id, filename, revision))
        target = tmp_path / f"models--x/snapshots/{COMMIT}" / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
        return str(target)

    def no_snapshot(*args, **kwargs):
        raise AssertionError("snapshot_download must not be called when the listing works")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_snapshot)
    found = resolve_checkpoint(REPO, revision="v1")
    assert downloads == [(REPO, "Uni-ViGU-CKPT.pth", "v1")]
    assert (found.repo_id, found.filename, found.commit) == (REPO, "Uni-ViGU-CKPT.pth", COMMIT)
