"""diffusers' own model test mixins on UniViGUTransformer3DModel, side by side with WanTransformer3DModel (issue #30,
item 6): the step-cache mixins (PyramidAttentionBroadcast, FirstBlockCache, FasterCache, MagCache, TaylorSeer), the
torch.compile mixin and the quantization mixins (bitsandbytes, torchao, quanto; diffusers skips them without an
accelerator), each subclassed exactly as diffusers' tests/models/transformers/test_models_transformer_wan.py
subclasses them for Wan, at the same tiny config. UniViGU runs twice: video only (Wan's inputs) and with its text
stream on (the joint `[video ; text]` sequence).

The mixins are diffusers' test code, not this repository's: tests/diffusers_peer.py finds them (`DIFFUSERS_TESTS_DIR`,
a diffusers source checkout; diffusers' source distributions do not ship them) and the module skips, saying how to
get them, when they are not there.

The compile mixin is marked `require_accelerator` by diffusers; on CPU it runs here only with
`UNIVIGU_COMPILE_TESTS=1` (inductor compiles C++ for each graph: minutes on a 2-core CPU).
"""

from __future__ import annotations

import functools
import os
import tempfile

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.utils.torch_utils import randn_tensor

from univigu import UniViGUTransformer3DModel

from diffusers_peer import load_mixins, without_marks


mixins, why_not = load_mixins()
if mixins is None:
    pytest.skip(why_not, allow_module_level=True)

from diffusers_tests.testing_utils import torch_device  # noqa: E402  (diffusers' own, imported by load_mixins)


VOCAB = 30
#: diffusers' WanTransformer3DTesterConfig.get_init_dict
WAN_CONFIG = {
    "patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 4, "out_channels": 4,
    "text_dim": 16, "freq_dim": 256, "ffn_dim": 32, "num_layers": 2, "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 32,
}


class WanConfig(mixins.BaseModelTesterConfig):
    """diffusers' WanTransformer3DTesterConfig: the model, its tiny config and its dummy inputs."""

    model_class = WanTransformer3DModel
    output_shape = (4, 2, 16, 16)
    input_shape = (4, 2, 16, 16)
    main_input_name = "hidden_states"

    @property
    def generator(self):
        return torch.Generator("cpu").manual_seed(0)

    def get_init_dict(self) -> dict:
        return dict(WAN_CONFIG)

    def get_dummy_inputs(self, height: int = 16, width: int = 16) -> dict[str, torch.Tensor]:
        return {
            "hidden_states": randn_tensor((1, 4, 2, height, width), generator=self.generator, device=torch_device,
                                          dtype=self.torch_dtype),
            "encoder_hidden_states": randn_tensor((1, 12, 16), generator=self.generator, device=torch_device,
                                                  dtype=self.torch_dtype),
            "timestep": torch.randint(0, 1000, size=(1,), generator=self.generator).to(torch_device),
        }

    @property
    def pretrained_model_name_or_path(self) -> str:
        """The quantization mixins load from a folder: the tiny model saved once (diffusers' Wan tests load a Hub
        repo, which CI cannot reach)."""
        return saved_tiny(self.model_class, self.get_init_dict())


class UniViGUConfig(WanConfig):
    """The same, on UniViGU: Wan's config plus the text vocabulary; Wan's inputs (the text stream off)."""

    model_class = UniViGUTransformer3DModel

    def get_init_dict(self) -> dict:
        return dict(WAN_CONFIG, vocab_size=VOCAB)


class UniViGUJointConfig(UniViGUConfig):
    """UniViGU with its text stream on: six text tokens at their own timestep ride along with the video."""

    def get_dummy_inputs(self, height: int = 16, width: int = 16) -> dict[str, torch.Tensor]:
        inputs = super().get_dummy_inputs(height, width)
        inputs["text_ids"] = torch.randint(0, VOCAB, (1, 6), generator=self.generator).to(torch_device)
        inputs["text_timestep"] = torch.randint(0, 1000, size=(1,), generator=self.generator).to(torch_device)
        return inputs


_SAVED: dict[tuple, str] = {}


def saved_tiny(model_class, init_dict: dict) -> str:
    key = (model_class.__name__, tuple(sorted((k, str(v)) for k, v in init_dict.items())))
    if key not in _SAVED:
        folder = tempfile.mkdtemp(prefix=f"tiny-{model_class.__name__}-")
        torch.manual_seed(0)
        model_class(**init_dict).save_pretrained(folder)
        _SAVED[key] = folder
    return _SAVED[key]


CONFIGS = {"Wan": WanConfig, "UniViGU": UniViGUConfig, "UniViGUJoint": UniViGUJointConfig}
CACHE_MIXINS = ["PyramidAttentionBroadcastTesterMixin", "FirstBlockCacheTesterMixin", "FasterCacheTesterMixin",
                "MagCacheTesterMixin", "TaylorSeerCacheTesterMixin"]
QUANTIZATION_MIXINS = ["BitsAndBytesTesterMixin", "TorchAoTesterMixin", "QuantoTesterMixin"]



class WanCacheSettings:
    """What the cache mixins need to fit Wan, whose own diffusers tests take none of them (their defaults fail on
    WanTransformer3DModel exactly as on UniViGU): FasterCache approximates the unconditional half of a batched
    `[uncond ; cond]` call of video tensors (diffusers' Flux tests instead declare Flux guidance-distilled), and
    TaylorSeer's default module patterns match no Wan module (test_step_cache.py uses the same patterns)."""

    FASTER_CACHE_CONFIG = {
        "spatial_attention_block_skip_range": 2,
        "spatial_attention_timestep_skip_range": (-1, 901),
        "tensor_format": "BCFHW",
    }
    TAYLORSEER_CACHE_CONFIG = {
        "cache_interval": 3,
        "disable_cache_before_step": 1,
        "max_order": 1,
        "cache_identifiers": [r"blocks\.\d+\.(attn1|attn2|ffn)"],
    }


class BatchedGuidance:
    """The dummy inputs twice over, as a guided sampler calls the model: `[uncond ; cond]` in one batch."""

    def get_dummy_inputs(self, height: int = 16, width: int = 16) -> dict[str, torch.Tensor]:
        inputs = super().get_dummy_inputs(height, width)
        return {k: torch.cat([v, v + (torch.randn_like(v) if v.is_floating_point() else 0)]) for k, v in inputs.items()}


class NoAcceleratorToEmpty:
    """The cache mixins' setup and teardown collect garbage and empty the accelerator's cache around every test: on
    CPU there is none, and the two full `gc.collect()` cost ~0.8 s a test in this suite's process (2 minutes for the
    90 cache tests)."""

    def setup_method(self):
        pass

    def teardown_method(self):
        pass


_CPU = (NoAcceleratorToEmpty,) if torch_device == "cpu" else ()
#: per mixin, what goes before the config in the test class's bases
SETTINGS = {name: _CPU for name in CACHE_MIXINS}
SETTINGS["FasterCacheTesterMixin"] += (BatchedGuidance, WanCacheSettings)
SETTINGS["TaylorSeerCacheTesterMixin"] += (WanCacheSettings,)

compile_on_cpu = pytest.mark.skipif(
    torch_device == "cpu" and os.environ.get("UNIVIGU_COMPILE_TESTS") != "1",
    reason="diffusers' torch.compile mixin needs an accelerator; on CPU set UNIVIGU_COMPILE_TESTS=1 (slow: inductor "
           "compiles C++ for every graph)",
)
def own(test):
    """A test of its own to mark: a mark set on diffusers' function would reach every class that inherits it."""

    @functools.wraps(test)
    def marked(self, *args, **kwargs):
        return test(self, *args, **kwargs)

    marked.__dict__.pop("pytestmark", None)
    if hasattr(test, "pytestmark"):
        marked.pytestmark = list(test.pytestmark)
    return marked


#: The compile mixin without diffusers' `require_accelerator` mark where there is no accelerator (gated above); its
#: group-offloading test asks for CUDA streams (`use_stream=True`), which a CPU has not (it fails so on Wan too).
if torch_device == "cpu":
    COMPILE_MIXIN = without_marks(mixins.TorchCompileTesterMixin)
    COMPILE_MIXIN.test_compile_with_group_offloading = pytest.mark.skip(
        reason="diffusers' test offloads with use_stream=True: CUDA streams, which the CPU has not"
    )(own(COMPILE_MIXIN.test_compile_with_group_offloading))
else:
    COMPILE_MIXIN = mixins.TorchCompileTesterMixin

#: Mixin tests known to fail on one of the configs, as {(prefix, test): pytest mark}. Empty: UniViGU with its text
#: stream on compiles whole (fullgraph=True, torch.export) since `_validate_inputs` skips its data-dependent text-id
#: range check under torch.compile; keep a strict xfail here when a new finding needs one.
KNOWN: dict = {}


def _define(prefix: str, config: type, mixin: type, marks=()) -> None:
    name = f"Test{prefix}{mixin.__name__.removesuffix('OnCPU').removesuffix('TesterMixin')}"
    bases = SETTINGS.get(mixin.__name__, ()) + (config, mixin)
    namespace = {"__doc__": f"diffusers' {mixin.__name__} on {config.model_class.__name__}."}
    for (where, test), mark in KNOWN.items():
        if where == prefix and hasattr(mixin, test):
            namespace[test] = mark(own(getattr(mixin, test)))
    klass = type(name, bases, namespace)
    for mark in marks:
        klass = mark(klass)
    globals()[name] = klass


for _prefix, _config in CONFIGS.items():
    for _name in CACHE_MIXINS:
        if hasattr(mixins, _name):  # TaylorSeer's mixin is newer than the others
            _define(_prefix, _config, getattr(mixins, _name))
    _define(_prefix, _config, COMPILE_MIXIN, marks=(compile_on_cpu,))
    for _name in QUANTIZATION_MIXINS:
        _define(_prefix, _config, getattr(mixins, _name))
