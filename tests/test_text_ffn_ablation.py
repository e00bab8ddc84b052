"""`text_ffn="shared"`, the ablation of the modality-driven MoE: text tokens go through the video FFN."""

import pytest
import torch

from univigu.models import UniViGUTransformer3DModel
from univigu.toyworld import build_tiny_wan_transformer


def test_shared_text_ffn_drops_the_experts_and_matches_a_fresh_conversion():
    model = UniViGUTransformer3DModel.from_wan(build_tiny_wan_transformer(seed=1), vocab_size=40, seed=0)
    shared = model.with_shared_text_ffn()
    assert shared.config.text_ffn == "shared"
    assert not any(".ffn_t." in name for name, _ in shared.named_parameters())
    assert any(".ffn_t." in name for name, _ in model.named_parameters())
    # Fresh from Wan, ffn_t is a copy of ffn: both models compute the same thing.
    torch.manual_seed(0)
    inputs = dict(hidden_states=torch.randn(2, 16, 3, 8, 8), timestep=torch.tensor([500.0, 20.0]),
                  encoder_hidden_states=torch.randn(2, 5, 32), text_ids=torch.randint(0, 40, (2, 6)),
                  text_timestep=torch.tensor([0.0, 700.0]))
    with torch.no_grad():
        a, b = model(**inputs), shared(**inputs)
    assert torch.equal(a.sample, b.sample)
    assert torch.equal(a.text_logits, b.text_logits)


def test_shared_text_ffn_round_trips(tmp_path):
    shared = UniViGUTransformer3DModel.from_wan(build_tiny_wan_transformer(), vocab_size=40).with_shared_text_ffn()
    shared.save_pretrained(tmp_path)
    loaded = UniViGUTransformer3DModel.from_pretrained(tmp_path)
    assert loaded.config.text_ffn == "shared" and loaded.blocks[0].ffn_t is None


def test_unknown_text_ffn_is_refused():
    with pytest.raises(ValueError, match="text_ffn must be"):
        UniViGUTransformer3DModel(num_attention_heads=2, attention_head_dim=8, text_dim=8, freq_dim=8, ffn_dim=16,
                                  num_layers=1, vocab_size=10, text_ffn="moe")
