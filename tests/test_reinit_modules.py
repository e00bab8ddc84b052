"""Starting a training run: `--reinit_modules` (named submodules re-drawn before training) and the start folder."""

import pytest
import torch

from univigu.models import UniViGUTransformer3DModel
from univigu.toyworld import build_tiny_wan_transformer
from univigu.training.components import reinit_modules


def _model():
    return UniViGUTransformer3DModel.from_wan(build_tiny_wan_transformer(seed=1), vocab_size=40, seed=0)


def test_reinit_redraws_only_the_named_modules_and_is_seeded():
    model, before = _model(), _model().state_dict()
    replaced = reinit_modules(model, ["blocks.0.attn1"], seed=3)
    after = model.state_dict()
    assert replaced and all(name.startswith("blocks.0.attn1.") for name in replaced)
    assert {"blocks.0.attn1.to_q.weight", "blocks.0.attn1.to_out.0.bias"} <= set(replaced)
    for name, value in after.items():
        assert torch.equal(value, before[name]) == (name not in replaced), name
    # a fresh Linear's scale (kaiming-uniform bound 1/sqrt(fan_in)), not the trained tensor's
    bound = model.blocks[0].attn1.to_q.in_features ** -0.5
    assert after["blocks.0.attn1.to_q.weight"].abs().max() <= bound
    again = _model()
    reinit_modules(again, ["blocks.0.attn1"], seed=3)
    assert all(torch.equal(again.state_dict()[name], after[name]) for name in replaced)
    # the global RNG is left as it was (data order and noise draws do not shift)
    model = _model()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    reinit_modules(model, ["blocks.0.attn1"], seed=3)
    assert torch.equal(torch.rand(3), expected)


def test_reinit_of_an_unknown_module_names_the_fix():
    with pytest.raises(ValueError, match="no submodule 'blocks.9.attn1'.*blocks.3.attn1"):
        reinit_modules(_model(), ["blocks.9.attn1"])


def test_a_missing_local_start_folder_is_named_not_looked_up_on_the_hub(tmp_path):
    from univigu.training.components import load_components

    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_components(str(tmp_path / "not-there"))
    for local in ("./wan", "../runs/recall", "runs/b8/convert", str(tmp_path / "x")):
        with pytest.raises(FileNotFoundError, match="no such folder"):
            load_components(local)


def test_a_text_source_the_start_folder_was_not_built_for_is_refused():
    """`--text_source` picks the source when building from Wan; a UniViGU folder's vocabulary and text head are sized
    for its own source, so asking it for the other one fails and names the fix instead of being ignored."""
    from univigu.toyworld import DEFAULT_CHECKPOINT
    from univigu.training.components import load_components

    with pytest.raises(ValueError, match="uniform source.*--text-source mask"):
        load_components(DEFAULT_CHECKPOINT, text_source="mask")
    assert load_components(DEFAULT_CHECKPOINT, text_source="uniform").text_scheduler.config.source == "uniform"
