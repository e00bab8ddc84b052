"""The bundled ShapesWorld VAE (src/univigu/toyworld/assets/shapesworld_vae, trained by
`python -m univigu.toyworld.pretrain_vae`, see docs/toyworld_vae.md) has learned the world: its reconstructions of
held-out clips keep every object's colour and motion, and different scenes get clearly different latents."""

from pathlib import Path

import numpy as np
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
