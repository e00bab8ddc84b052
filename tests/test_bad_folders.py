"""Bad folders and checkpoints are named, not crashed on (issue #29, item 6).

- A training resume (`checkpointing.resolve_checkpoint`, what `--resume_from_checkpoint` calls) from a checkpoint with
  a truncated or corrupt file, or NaN weights, names the file (and tensor); `latest` falls back to the previous
  complete checkpoint, saying so. Checkpoints are written by `save_checkpoint` with a real accelerate `Accelerator`
  (CPU, a tiny model), so they hold what training writes.
- A pipeline folder whose `model_index.json` or a component's `config.json` is not JSON, has wrong types or
  impossible values fails in `UniViGUPipeline.from_pretrained` with the file and key named.
"""

import json
import logging
import shutil

import pytest
import torch

from test_reliability_io import tree_hashes
from univigu.training import checkpointing


@pytest.fixture
def run(tmp_path):
    """An output_dir with checkpoint-1 and checkpoint-2 of a tiny model and its optimizer."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    out = tmp_path / "run"
    for step in (1, 2):
        checkpointing.save_checkpoint(accelerator, out, step, {"note": "test"})
    return out, accelerator, model


def test_sound_checkpoints_resume_from_the_latest(run):
    out, _, _ = run
    assert checkpointing.resolve_checkpoint(out, "latest") == out / "checkpoint-2"
    assert "model.safetensors" in checkpointing.read_checkpoint_state(out / "checkpoint-2")["files"]


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "optimizer truncated", "state not json"])
def test_a_damaged_latest_checkpoint_is_named_and_the_previous_one_taken(run, damage, caplog):
    out, _, _ = run
    latest = out / "checkpoint-2"
    name = {"truncated": "model.safetensors", "corrupt": "model.safetensors", "optimizer truncated": "optimizer.bin",
            "state not json": checkpointing.STATE_FILENAME}[damage]
    file = latest / name
    data = file.read_bytes()
    if damage == "corrupt":
        file.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, one byte changed
    elif damage == "state not json":
        file.write_text('{"global_step": 2, "files": ')
    else:
        file.write_bytes(data[: len(data) // 2])
    before = tree_hashes(out)
    with caplog.at_level(logging.WARNING, logger=checkpointing.__name__):
        assert checkpointing.resolve_checkpoint(out, "latest") == out / "checkpoint-1"
    message = caplog.text
    assert str(file) in message and "Falling back to the previous complete checkpoint" in message
    assert str(out / "checkpoint-1") in message
    with pytest.raises(ValueError, match="Cannot resume from") as info:  # named explicitly: refused, not replaced
        checkpointing.resolve_checkpoint(out, "checkpoint-2")
    assert str(file) in str(info.value) and "checkpoint-1" in str(info.value)
    assert tree_hashes(out) == before  # nothing is deleted or rewritten


def test_nan_weights_are_refused_naming_file_and_tensor(run, caplog):
    out, accelerator, model = run
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    checkpointing.save_checkpoint(accelerator, out, 3, {})
    with caplog.at_level(logging.WARNING, logger=checkpointing.__name__):
        assert checkpointing.resolve_checkpoint(out, "latest") == out / "checkpoint-2"
    assert str(out / "checkpoint-3" / "model.safetensors") in caplog.text and "'weight'" in caplog.text
    assert "NaN" in caplog.text


def test_every_checkpoint_damaged_raises_naming_them(run):
    out, _, _ = run
    for step in (1, 2):
        file = out / f"checkpoint-{step}" / "model.safetensors"
        file.write_bytes(file.read_bytes()[:10])
    with pytest.raises(ValueError, match="No checkpoint in .* can be resumed from") as info:
        checkpointing.resolve_checkpoint(out, "latest")
    assert all(str(out / f"checkpoint-{s}" / "model.safetensors") in str(info.value) for s in (1, 2))


def test_checkpoints_from_before_the_manifest_are_still_checked(run):
    """A checkpoint whose state file records no sizes (written before) is checked by reading its weights."""
    out, _, _ = run
    state_file = out / "checkpoint-2" / checkpointing.STATE_FILENAME
    state = json.loads(state_file.read_text())
    del state["files"]
    state_file.write_text(json.dumps(state))
    assert checkpointing.resolve_checkpoint(out, "latest") == out / "checkpoint-2"
    model = out / "checkpoint-2" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-8])
    assert checkpointing.resolve_checkpoint(out, "latest") == out / "checkpoint-1"


# ---------------------------------------------------------------------------------------------------- pipeline folders


def _edit(key_path, value):
    def edit(config):
        target = config
        for key in key_path[:-1]:
            target = target[key]
        target[key_path[-1]] = value
    return edit


FOLDER_CASES = {
    "index not json": ("model_index.json", "{not json", "is not valid JSON (Expecting property name"),
    "config not json": ("transformer/config.json", '{"a": 1,', "is not valid JSON"),
    "scheduler not json": ("scheduler/scheduler_config.json", "nope", "is not valid JSON"),
    "index a list": ("model_index.json", "[1, 2]", "must hold a JSON object"),
    "negative heads": ("transformer/config.json", _edit(["num_attention_heads"], -4), "`num_attention_heads` is -4"),
    "fractional size": ("transformer/config.json", _edit(["attention_head_dim"], 32.5), "`attention_head_dim` is 32.5"),
    "string count": ("transformer/config.json", _edit(["num_layers"], "4"), '`num_layers` is "4"'),
    "vae size": ("vae/config.json", _edit(["z_dim"], -16), "`z_dim` is -16"),
    "text encoder heads": ("text_encoder/config.json", _edit(["num_heads"], 0), "`num_heads` is 0"),
    "component entry": ("model_index.json", _edit(["vae"], "diffusers"), "`vae` is \"diffusers\""),
    "call_defaults negative": ("model_index.json", _edit(["call_defaults", "num_frames"], -9),
                               "call_defaults['num_frames']=-9"),
    "call_defaults type": ("model_index.json", _edit(["call_defaults", "v2t", "num_inference_steps"], "16"),
                           "call_defaults['v2t']['num_inference_steps']` must be an integer"),
    "call_defaults mode": ("model_index.json", _edit(["call_defaults", "video_latents_mode"], "mean"),
                           "call_defaults['video_latents_mode']='mean' is not one of"),
    "call_defaults fps": ("model_index.json", _edit(["call_defaults", "fps"], -8), "call_defaults['fps']=-8"),
    "call_defaults list": ("model_index.json", _edit(["call_defaults"], [1]), "`call_defaults` must be a dict"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_a_bad_pipeline_folder_fails_at_load_naming_file_and_key(tmp_path, case):
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT

    rel, change, expected = FOLDER_CASES[case]
    folder = tmp_path / "pipe"
    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    (folder / "checksums.json").unlink()  # the edit is the user's own, not damage the manifest would catch first
    path = folder / rel
    if callable(change):
        config = json.loads(path.read_text())
        change(config)
        path.write_text(json.dumps(config))
    else:
        path.write_text(change)
    before = tree_hashes(folder)
    with pytest.raises(ValueError) as info:
        UniViGUPipeline.from_pretrained(folder)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert tree_hashes(folder) == before


def test_a_checksums_file_that_is_not_json_is_named(tmp_path):
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT

    folder = tmp_path / "pipe"
    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    (folder / "checksums.json").write_text("{")
    with pytest.raises(ValueError, match="checksums.json is not valid JSON"):
        UniViGUPipeline.from_pretrained(folder)
