"""export_for_hub: the exported folder loads with plain `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`
in a process where univigu cannot be imported, and computes what the in-process pipeline computes."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml

from univigu import DiscreteFlowScheduler, UniViGUPipeline, UniViGUTransformer3DModel
from univigu.pipelines import export_for_hub
from univigu.toyworld.components import build_tiny_components


PROMPT = "a red circle moving left"
T2V = dict(num_frames=9, height=32, width=32, num_inference_steps=2, max_sequence_length=16)
V2T = dict(num_inference_steps=3, max_text_length=8)

# Runs in a fresh interpreter: hides univigu (drops the editable install's path and blocks the import), proves that
# `import univigu` fails, then loads the folder the way a Hub user would and runs a t2v and a v2t call.
CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys
    sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith(("/src", "/tests")) and p not in ("", ".")]

    class BlockUnivigu(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "univigu" or name.startswith("univigu."):
                raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)")
            return None

    sys.meta_path.insert(0, BlockUnivigu())
    try:
        import univigu  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("univigu is importable: the test would prove nothing")

    import numpy as np
    import torch
    from diffusers import DiffusionPipeline

    torch.set_num_threads(1)
    folder, out = sys.argv[1], sys.argv[2]
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe({prompt!r}, generator=torch.Generator().manual_seed(0), output_type="np", **{t2v!r}).frames
    video = np.load(folder + "/../video.npy")
    caption = pipe(video=video, generator=torch.Generator().manual_seed(0), **{v2t!r})
    np.save(out + "/frames.npy", frames)
    info = {{
        "pipeline": type(pipe).__module__ + "." + type(pipe).__name__,
        "transformer": type(pipe.transformer).__module__,
        "text_scheduler": type(pipe.text_scheduler).__module__,
        "text": caption.text,
        "univigu_modules": sorted(m for m in sys.modules if m.split(".")[0] == "univigu"),
    }}
    with open(out + "/info.json", "w") as f:
        json.dump(info, f)
    """
).format(prompt=PROMPT, t2v=T2V, v2t=V2T)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    # tiny models: one thread is much faster than two contended ones on the 2-core CI box
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_pipeline():
    components = build_tiny_components(0)
    tokenizer = components["tokenizer"]
    transformer = UniViGUTransformer3DModel.from_wan(components["transformer"], vocab_size=len(tokenizer), seed=0)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        transformer.text_head.linear.weight.copy_(torch.randn(transformer.text_head.linear.weight.shape, generator=g))
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


def read_front_matter(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("---\n")
    header, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(header), body


def test_export_layout(tmp_path):
    pipe = make_pipeline()
    folder = tmp_path / "hub"
    export_for_hub(pipe, folder, license="apache-2.0")
    for name in ("pipeline_univigu.py", "transformer/transformer_univigu.py",
                 "text_scheduler/scheduling_discrete_flow.py", "transformer/diffusion_pytorch_model.safetensors",
                 "text_scheduler/scheduler_config.json", "model_index.json", "README.md"):
        assert (folder / name).is_file(), name
    # the modules pipeline_univigu.py imports relatively ship next to it
    from diffusers.utils.dynamic_modules_utils import get_relative_import_files

    import univigu.pipelines.pipeline_univigu as pipeline_module

    siblings = sorted(os.path.basename(f) for f in get_relative_import_files(pipeline_module.__file__))
    assert siblings and all((folder / name).is_file() for name in siblings), siblings
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_univigu", "UniViGUPipeline"]
    assert index["transformer"] == ["transformer_univigu", "UniViGUTransformer3DModel"]
    assert index["text_scheduler"] == ["scheduling_discrete_flow", "DiscreteFlowScheduler"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["latent_normalization"] == "diffusers"
    meta, body = read_front_matter(folder / "README.md")
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "text-to-video"
    assert meta["license"] == "apache-2.0" and "univigu" in meta["tags"]
    assert "trust_remote_code=True" in body
    # the exported module files import nothing from univigu
    for module in folder.rglob("*.py"):
        assert "univigu." not in "".join(
            line for line in module.read_text().splitlines(True) if line.lstrip().startswith(("import ", "from "))
        ), module
    # save_pretrained(hub_export=True) writes the same layout
    other = tmp_path / "other"
    pipe.save_pretrained(other, hub_export=True)
    assert json.loads((other / "model_index.json").read_text()) == index


def test_pipeline_module_imports_every_sibling_directly():
    """diffusers copies, for a local folder, only the modules the pipeline file itself imports relatively (not what
    those import in turn): every sibling module the pipeline needs must be imported by pipeline_univigu.py."""
    from diffusers.utils.dynamic_modules_utils import get_relative_import_files, get_relative_imports

    import univigu.pipelines.pipeline_univigu as module

    direct = set(get_relative_imports(module.__file__))
    needed = {os.path.splitext(os.path.basename(f))[0] for f in get_relative_import_files(module.__file__)}
    assert needed and needed <= direct, sorted(needed - direct)
    assert {"pipeline_output", "input_checks", "video_input", "hub", "serialization", "lora_loader"} <= needed


def test_exported_folder_loads_without_univigu(tmp_path):
    pipe = make_pipeline()
    folder = tmp_path / "hub"
    export_for_hub(pipe, folder)
    video = np.random.default_rng(0).random((9, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "video.npy", video)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(tmp_path)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["univigu_modules"] == []
    assert info["pipeline"].endswith("pipeline_univigu.UniViGUPipeline")
    assert not info["pipeline"].startswith("univigu")
    assert info["transformer"].endswith("transformer_univigu") and not info["transformer"].startswith("univigu")
    assert info["text_scheduler"].endswith("scheduling_discrete_flow")

    # the Hub-loaded pipeline computes what this one computes
    frames = pipe(PROMPT, generator=torch.Generator().manual_seed(0), output_type="np", **T2V).frames
    np.testing.assert_allclose(np.load(tmp_path / "frames.npy"), frames, atol=1e-6, rtol=0)
    caption = pipe(video=video, generator=torch.Generator().manual_seed(0), **V2T).text
    assert info["text"] == caption


def test_plain_save_pretrained_carries_no_code(tmp_path):
    """A plain save_pretrained folder (no module files) still loads through univigu itself."""
    pipe = make_pipeline()
    pipe.save_pretrained(tmp_path)
    assert not (tmp_path / "pipeline_univigu.py").exists()
    loaded = UniViGUPipeline.from_pretrained(tmp_path)
    assert type(loaded.transformer) is UniViGUTransformer3DModel


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
