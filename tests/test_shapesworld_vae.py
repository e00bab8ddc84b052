"""The bundled ShapesWorld VAE (src/univigu/toyworld/assets/shapesworld_vae, trained by
`python training/shapesworld/pretrain_vae.py`, see docs/toyworld_vae.md) has learned the world: its reconstructions of
held-out clips keep every object's colour and motion, and different scenes get clearly different latents."""

from pathlib import Path

import numpy as np
import pytest
import torch

import univigu.toyworld as toyworld

ASSET = Path(toyworld.__file__).resolve().parent / "assets" / "shapesworld_vae"


def test_bundled_vae_reconstructs_held_out_clips():
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(ASSET).eval()
    assert vae.config.scale_factor_spatial == 4 and vae.config.scale_factor_temporal == 2
    scenes = toyworld.sample_scenes(6, "val", seed=1234, num_frames=9)
    clips = np.stack([toyworld.render_scene(scene) for scene in scenes])  # (B, F, H, W, 3) uint8
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    with torch.no_grad():
        latents = vae.encode(x).latent_dist.mode()
        recon = vae.decode(latents).sample
    assert latents.shape == (6, 16, 5, 16, 16)
    videos = ((recon.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).numpy()
    scores = toyworld.score_generation(list(videos), scenes)
    assert scores["colour_accuracy"] >= 0.9, scores
    assert scores["motion_accuracy"] >= 0.9, scores

    # Informative latents: the mean distance between two different clips' latents, relative to the spread of one
    # clip's latent around its own per-channel mean, is large. The random tiny VAE scores ~0.15 on this ratio (every
    # clip encodes to nearly the same thing, docs/toyworld_vae.md); the trained one ~0.8.
    flat = latents.flatten(1)
    between = torch.cdist(flat, flat)[~torch.eye(len(flat), dtype=torch.bool)].mean()
    within = (latents - latents.mean(dim=(2, 3, 4), keepdim=True)).flatten(1).norm(dim=1).mean()
    assert between / within > 0.5, float(between / within)


def test_bundled_vae_decoder_keeps_shapes():
    """The sharper decoder (docs/toyworld_vae.md, session 7): reconstructions of the 48 one-object test clips of
    `benchmarks/toy_eval.py` keep the shape the analyzer reads at 0.81 (the first, 8-wide decoder: 0.69)."""
    from diffusers import AutoencoderKLWan

    from univigu.toyworld.evaluate import held_out_test_scenes
    from pretrain_vae import reconstruct

    vae = AutoencoderKLWan.from_pretrained(ASSET).eval()
    scenes = held_out_test_scenes(48, 1)
    videos, _ = reconstruct(vae, np.stack([toyworld.render_scene(scene) for scene in scenes]))
    scores = toyworld.score_generation(list(videos), scenes)
    assert scores["shape_accuracy"] >= 0.77, scores
    assert scores["colour_accuracy"] >= 0.95 and scores["extra_objects_per_sample"] <= 0.05, scores


def test_random_tiny_vae_fails_the_same_check():
    """The control: the same measurement on the random tiny VAE shows what the trained one fixed."""
    from univigu.toyworld.components import build_tiny_vae

    vae = build_tiny_vae(seed=0).eval()
    scenes = toyworld.sample_scenes(6, "val", seed=1234, num_frames=9)
    clips = np.stack([toyworld.render_scene(scene) for scene in scenes])
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    with torch.no_grad():
        latents = vae.encode(x).latent_dist.mode()
    flat = latents.flatten(1)
    between = torch.cdist(flat, flat)[~torch.eye(len(flat), dtype=torch.bool)].mean()
    within = (latents - latents.mean(dim=(2, 3, 4), keepdim=True)).flatten(1).norm(dim=1).mean()
    assert between / within < 0.5, float(between / within)


def test_decoder_only_finetune_keeps_the_latent_space(tmp_path):
    """`pretrain_vae --train-part decoder` (how a sharper decoder is trained for an existing generator): the
    encoder, and so every latent and the stored latent statistics, stay bit for bit; only the decoder learns. With
    `--decoder-base-dim` the same encoder sits in front of a wider, fresh decoder."""
    threads = torch.get_num_threads()  # the script pins one thread; give the rest of the session its threads back
    try:
        _finetune_decoder(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _finetune_decoder(tmp_path):
    from diffusers import AutoencoderKLWan

    from pretrain_vae import parse_args, to_model_input, train

    original = AutoencoderKLWan.from_pretrained(ASSET)
    scenes = toyworld.sample_scenes(2, "val", seed=5, num_frames=5)
    x = to_model_input(np.stack([toyworld.render_scene(s) for s in scenes]))
    for extra in ([], ["--decoder-base-dim", "12"]):
        out = tmp_path / f"vae{len(extra)}"
        args = parse_args(["--init", str(ASSET), "--train-part", "decoder", "--minutes", "0.05",
                           "--finetune-minutes", "0", "--batch-size", "1", "--train-frames", "5",
                           "--val-samples", "2", "--eval-every-s", "0", "--latent-noise", "0.5", "--edge-weight", "10",
                           "--out", str(out), *extra])
        assert train(args)["history"][-1]["step"] >= 1
        tuned = AutoencoderKLWan.from_pretrained(out)
        assert tuned.config.latents_mean == original.config.latents_mean
        assert tuned.config.latents_std == original.config.latents_std
        for name in ("encoder", "quant_conv"):
            tuned_state = getattr(tuned, name).state_dict()
            for key, a in getattr(original, name).state_dict().items():
                assert torch.equal(a, tuned_state[key]), f"{name}.{key} changed"
        with torch.no_grad():
            assert torch.equal(original.encode(x).latent_dist.mode(), tuned.encode(x).latent_dist.mode())
        if extra:
            assert tuned.config.decoder_base_dim == 12
        else:
            assert any(not torch.equal(a, b) for a, b in zip(original.decoder.parameters(), tuned.decoder.parameters()))

    with pytest.raises(ValueError, match="--init"):
        train(parse_args(["--train-part", "decoder", "--minutes", "0.01"]))


def test_edge_weight_counts_outline_errors_more():
    from pretrain_vae import weighted_recon_loss

    target = -torch.ones(1, 3, 2, 8, 8)
    target[..., 2:6, 2:6] = 1.0  # a 4x4 square
    interior, corner = target.clone(), target.clone()
    interior[..., 3, 3] = 0.0
    corner[..., 2, 2] = 0.0
    plain = [weighted_recon_loss(x, target, fg_weight=20.0) for x in (interior, corner)]
    edged = [weighted_recon_loss(x, target, fg_weight=20.0, edge_weight=10.0) for x in (interior, corner)]
    assert torch.allclose(plain[0], plain[1])  # without it, every object pixel weighs the same
    assert edged[1] > 1.2 * edged[0]
