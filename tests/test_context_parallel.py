"""Context parallelism (issue #30 item 2): `model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=2))`
on UniViGUTransformer3DModel shards the joint `[video ; text]` sequence over two processes, and every output equals one
process's within float tolerance: t2v with the text stream off and on, v2t (text tokens denoised) with full and
video_prefix attention, the video key/value cache, per-token timesteps, with an odd text length, text padding, and an
odd video token count (both streams padded to the degree and masked).

On CPU the two processes talk over gloo. diffusers 0.42.1 refuses a CPU-only process in `enable_parallelism`:
`ModelMixin._resolve_parallel_config` computes `torch.device(device_type, rank % torch.accelerator.device_count())`,
and without an accelerator the count is 0: `ZeroDivisionError: integer modulo by zero` (modeling_utils.py). That
device is only recorded (`ContextParallelConfig._device`, read nowhere on the context-parallel path), so the CPU workers
give `torch.accelerator.device_count` the value 1; the rest is diffusers' own: the "cpu" device mesh, the gloo
all-to-all and all-gather, the `native` backend's Ulysses attention. The same workers run over NCCL when two CUDA
devices are lent (skipped otherwise), without that shim.
"""

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import torch

from univigu import UniViGUTransformer3DModel
from univigu.models.context_parallel import JointSequenceShards


TINY = dict(num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=8, freq_dim=16,
            ffn_dim=32, num_layers=2, rope_max_seq_len=32, vocab_size=50)
TEXT_LENGTH = 7  # odd: padded to 8 under ulysses_degree=2
MAX_ABS_DIFF = 1e-5  # float summation order (the keys' exchanged order); measured 1.4e-6 (docs/context_parallel.md)
CASES = ["t2v_text_off", "t2v_odd_video", "t2v_per_token_timestep", "t2vt", "v2t", "v2t_video_prefix",
         "v2t_kv_cache_refresh", "v2t_kv_cache_cached"]


def build_model():
    torch.manual_seed(0)
    model = UniViGUTransformer3DModel(**TINY).eval()
    with torch.no_grad():  # the zero-initialised text head would make every text comparison trivial
        model.text_head.linear.weight.normal_(std=0.5)
        model.text_head.linear.bias.normal_(std=0.5)
    return model


def case_calls(device):
    """Each case's forward calls (a list: the cache cases run a refresh step, then a cached one)."""
    g = torch.Generator().manual_seed(1)
    video = torch.randn(2, 4, 3, 8, 8, generator=g)  # 3 x 4 x 4 = 48 video tokens
    odd_video = torch.randn(2, 4, 3, 6, 6, generator=g)  # 3 x 3 x 3 = 27: padded to 28
    prompt = torch.randn(2, 5, 8, generator=g)
    text_ids = torch.randint(0, 50, (2, TEXT_LENGTH), generator=g)
    other_ids = torch.randint(0, 50, (2, TEXT_LENGTH), generator=g)
    mask = torch.ones(2, TEXT_LENGTH, dtype=torch.bool)
    mask[1, 4:] = False  # the second sample's text is padded
    per_token = torch.rand(2, 48, generator=g) * 1000
    timestep, clean = torch.tensor([10.0, 900.0]), torch.zeros(2)
    text_timestep = torch.tensor([300.0, 800.0])
    calls = {
        "t2v_text_off": [dict(hidden_states=video, timestep=timestep, encoder_hidden_states=prompt)],
        "t2v_odd_video": [dict(hidden_states=odd_video, timestep=timestep, encoder_hidden_states=prompt)],
        "t2v_per_token_timestep": [dict(hidden_states=video, timestep=per_token, encoder_hidden_states=prompt)],
        "t2vt": [dict(hidden_states=video, timestep=timestep, encoder_hidden_states=prompt, text_ids=text_ids,
                      text_timestep=text_timestep, text_attention_mask=mask)],
        "v2t": [dict(hidden_states=odd_video, timestep=clean, text_ids=text_ids, text_timestep=text_timestep,
                     text_attention_mask=mask)],
        "v2t_video_prefix": [dict(hidden_states=odd_video, timestep=clean, text_ids=text_ids,
                                  text_timestep=text_timestep, text_attention_mask=mask,
                                  attention_kwargs={"understanding_attention": "video_prefix"})],
    }
    cache_steps = [dict(hidden_states=odd_video, timestep=clean, text_ids=text_ids, text_timestep=text_timestep,
                        text_attention_mask=mask),
                   dict(hidden_states=None, timestep=None, text_ids=other_ids, text_timestep=text_timestep / 2,
                        text_attention_mask=mask)]
    calls["v2t_kv_cache"] = cache_steps

    def to(value):
        return value.to(device) if isinstance(value, torch.Tensor) else value

    return {name: [{k: to(v) for k, v in call.items()} for call in steps] for name, steps in calls.items()}


def run_cases(model, device):
    """{case: (sample, text_logits)} of every case, on `model` as it is (one process, or context parallel)."""
    outputs = {}
    with torch.no_grad():
        for name, steps in case_calls(device).items():
            cache = model.video_kv_cache() if name == "v2t_kv_cache" else None
            for index, call in enumerate(steps):
                call = dict(call)
                if cache is not None:
                    cache.refresh = index == 0
                    call["attention_kwargs"] = {"video_kv_cache": cache, "understanding_attention": "video_prefix"}
                sample, logits = model(**call, return_dict=False)
                key = name if cache is None else f"{name}_{'refresh' if index == 0 else 'cached'}"
                outputs[key] = tuple(None if t is None else t.cpu() for t in (sample, logits))
    return outputs


def gradients(model, device):
    """Every weight's gradient of a loss on t2vt's and v2t's outputs (text padding; an odd video token count); under
    context parallelism each rank's part, summed over the ranks."""
    calls = case_calls(device)
    model.zero_grad()
    for name in ("t2vt", "v2t"):
        sample, logits = model(**calls[name][0], return_dict=False)
        (sample.square().mean() + logits.logsumexp(-1).mean()).backward()
    grads = {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}
    if model._parallel_config is not None:
        for grad in grads.values():
            torch.distributed.all_reduce(grad)
    model.zero_grad()
    return {name: grad.cpu() for name, grad in grads.items()}


def worker(rank, world_size, port, backend, out_dir):
    from diffusers import ContextParallelConfig

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=300))
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    else:  # diffusers computes `rank % torch.accelerator.device_count()`, 0 on a CPU-only machine (module docstring)
        torch.accelerator.device_count = lambda: 1
    model = build_model().to(device)
    model.set_attention_backend("native")
    single, single_grads = run_cases(model, device), gradients(model, device)
    model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world_size))
    lengths = []  # the sequence length each block sees: this rank's piece under context parallelism
    model.blocks[0].register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    parallel = run_cases(model, device)
    lengths_seen = list(lengths)
    parallel_grads = gradients(model, device)
    torch.save({"single": single, "parallel": parallel, "block_lengths": lengths_seen, "single_grads": single_grads,
                "parallel_grads": parallel_grads},
               os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def main(backend, out_dir):
    world_size = 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(worker, args=(world_size, port, backend, out_dir), nprocs=world_size)


def run_two_processes(backend, tmp_path):
    script = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_context_parallel as t; " \
             f"t.main({backend!r}, {str(tmp_path)!r})"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


@pytest.fixture(scope="module")
def gloo_runs(tmp_path_factory):
    return run_two_processes("gloo", tmp_path_factory.mktemp("context_parallel"))


def max_abs_diffs(runs, case):
    """Per output (video, text): the largest |parallel - single| over both ranks, or None when it is absent."""
    diffs = []
    for index in range(2):
        single = runs[0]["single"][case][index]
        if single is None:
            assert all(run["parallel"][case][index] is None for run in runs)
            diffs.append(None)
            continue
        for run in runs:
            parallel = run["parallel"][case][index]
            assert parallel.shape == single.shape
            assert torch.equal(run["single"][case][index], single)  # the same model and inputs on every rank
        diffs.append(max((run["parallel"][case][index] - single).abs().max().item() for run in runs))
    return diffs


@pytest.mark.parametrize("case", CASES)
def test_ulysses_two_cpu_processes_equal_one(gloo_runs, case):
    video, text = max_abs_diffs(gloo_runs, case)
    present = [d for d in (video, text) if d is not None]
    assert present and all(d <= MAX_ABS_DIFF for d in present), (video, text)
    assert (video is None) == (case == "v2t_kv_cache_cached")
    assert (text is None) == case.startswith("t2v_")
    # the two ranks gather the very same outputs
    for index in range(2):
        a, b = (run["parallel"][case][index] for run in gloo_runs)
        assert (a is None and b is None) or torch.equal(a, b)


def test_each_rank_runs_the_blocks_on_its_piece(gloo_runs):
    """Video 48 or 27 (padded to 28) tokens and text 7 (padded to 8), halved: [24 or 14 ; 4] per rank."""
    expected = [24, 14, 24, 24 + 4, 14 + 4, 14 + 4, 14 + 4, 4]  # CASES' order; the cached step runs the text alone
    for run in gloo_runs:
        assert run["block_lengths"] == expected


def test_summed_gradients_equal_one_process(gloo_runs):
    """Training: the heads run on each rank's piece (their outputs are gathered), so the ranks' gradients add up."""
    for run in gloo_runs:
        single, parallel = run["single_grads"], run["parallel_grads"]
        assert single.keys() == parallel.keys() and len(single) > 20
        for name in single:
            scale = max(1.0, single[name].abs().max().item())
            assert torch.allclose(parallel[name], single[name], atol=MAX_ABS_DIFF * scale, rtol=0), name


def test_single_process_cases_equal_the_unparallel_model(gloo_runs):
    """The workers' one-process outputs are what this process computes (so 'parallel vs single' is vs the model)."""
    ours = run_cases(build_model(), torch.device("cpu"))
    for case in CASES:
        for index in range(2):
            theirs = gloo_runs[0]["single"][case][index]
            if theirs is None:
                assert ours[case][index] is None
            else:
                assert torch.allclose(ours[case][index], theirs, atol=1e-6, rtol=1e-6), case


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices (NCCL); the gloo runs cover CPU")
def test_ulysses_two_gpus_equal_one(tmp_path):
    runs = run_two_processes("nccl", tmp_path)
    for case in CASES:
        diffs = [d for d in max_abs_diffs(runs, case) if d is not None]
        assert diffs and all(d <= 1e-4 for d in diffs), (case, diffs)


# --------------------------------------------------------------------------- the sharding arithmetic, in one process


def fake_shards(rank, world=2, ring=False):
    shards = object.__new__(JointSequenceShards)
    shards.rank, shards.world, shards.ring = rank, world, ring
    return shards


@pytest.mark.parametrize("length,world", [(7, 2), (8, 2), (5, 3), (1, 4)])
def test_shard_pads_each_stream_to_equal_pieces(length, world):
    x = torch.arange(1.0, length + 1).view(1, length, 1)
    pieces = [fake_shards(r, world).shard(x) for r in range(world)]
    local = -(-length // world)
    assert all(p.shape == (1, local, 1) for p in pieces)
    joined = torch.cat(pieces, 1)
    assert torch.equal(joined[:, :length], x) and not joined[:, length:].any()  # zero padding at the end


def exchanged_order(num_video, num_text, world):
    """The unpadded joint index of every position after Ulysses' exchange, [v_0 ; t_0 ; v_1 ; t_1 ...] (-1: pad)."""
    index = torch.arange(num_video + num_text, dtype=torch.float32).view(1, -1, 1) + 1  # 0 is the padding value
    video, text = index[:, :num_video], index[:, num_video:]
    pieces = []
    for rank in range(world):
        shards = fake_shards(rank, world)
        pieces += [s for s in (shards.shard(video), shards.shard(text)) if s.shape[1]]
    return torch.cat(pieces, 1).flatten().long() - 1


@pytest.mark.parametrize("num_video,num_text,world", [(27, 7, 2), (48, 7, 2), (27, 0, 2), (10, 5, 3), (0, 7, 2)])
def test_gathered_key_masks_follow_the_exchanged_keys(num_video, num_text, world):
    """Each rank's key mask, all-gathered in rank order (what diffusers' Ulysses does), is the unsharded mask of the
    keys in their exchanged order, with every padding key masked."""
    g = torch.Generator().manual_seed(0)
    keys = torch.rand(2, num_video + num_text, generator=g) > 0.3
    order = exchanged_order(num_video, num_text, world)
    for mask in (keys[:, None, None, :], None):
        local = [fake_shards(r, world).shard_mask(mask, 2, num_video, num_text, "cpu") for r in range(world)]
        padded = (-num_video % world) or (-num_text % world)
        if mask is None and not padded:
            assert all(m is None for m in local)
            continue
        gathered = torch.cat(local, -1)[:, 0, 0]
        visible = keys if mask is not None else torch.ones_like(keys)
        expected = torch.where(order >= 0, visible[:, order.clamp(min=0)], False)
        assert torch.equal(gathered, expected)


def test_query_dependent_mask_is_permuted_whole():
    """`video_prefix`'s (B, 1, S, S) mask: rows and columns in the exchanged order (Ulysses uses it as given after the
    all-to-all), padding keys masked, padding queries given a row with a visible key."""
    num_video, num_text, world = 27, 7, 2
    g = torch.Generator().manual_seed(0)
    full = torch.rand(2, 1, 34, 34, generator=g) > 0.3
    full[:, :, :, 0] = True  # every query sees the first key, as in the model's masks
    order = exchanged_order(num_video, num_text, world)
    for rank in range(world):
        mask = fake_shards(rank, world).shard_mask(full, 2, num_video, num_text, "cpu")
        assert mask.shape == (2, 1, order.numel(), order.numel())
        real = order >= 0
        assert torch.equal(mask[:, :, real][..., real], full[:, :, order[real]][..., order[real]])
        assert not mask[..., ~real].any()
        assert mask.any(-1).all()


def test_ring_attention_refuses_a_mask_and_heads_must_divide():
    with pytest.raises(ValueError, match="Ring attention"):
        fake_shards(0, ring=True).shard_mask(None, 1, 27, 8, "cpu")  # an odd video count needs a padding mask
    assert fake_shards(0, ring=True).shard_mask(None, 1, 28, 8, "cpu") is None  # nothing to mask: ring may run

    class Config:
        ulysses_degree, ring_degree, ulysses_anything = 4, 1, False
        _flattened_mesh = None

    class Parallel:
        context_parallel_config = Config

    with pytest.raises(ValueError, match="ulysses_degree=4"):
        JointSequenceShards(Parallel, num_heads=6)


def test_no_parallel_config_means_no_shards():
    assert JointSequenceShards.of(build_model()) is None
