"""Do the ShapesWorld VAE's latents carry shape? A small probe trained on frozen latents says how much of each
attribute a captioner could read from them, before any transformer is involved.

    python training/shapesworld/toy_latent_probe.py [--train 1200] [--steps 1500] [--vae PATH]
    python training/shapesworld/toy_latent_probe.py --probe patches --steps 600 [--no-position]

Encodes one-object train clips (posterior mode, normalised with the VAE config's latents_mean/std, as training does),
trains a probe to classify the object's shape, and scores it on fresh test clips (half of them hold a colour-shape
pair never seen in training, scored apart). `--probe conv`: a two-layer per-frame conv net with a max-pool over
positions. `--probe patches`: the transformer's view, 2 x 2 latent patches embedded like Wan's (1, 2, 2) patch
embedding, a class token and a 2-layer, 128-wide transformer encoder; `--no-position` drops its position embedding,
so it sees the patches as an unordered set.
"""

import argparse
import time

import numpy as np
import torch


def encode(vae, scenes, batch_size=32):
    from univigu.toyworld import render_scene

    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    video = torch.from_numpy(np.stack([render_scene(s) for s in scenes])).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        latents = torch.cat([vae.encode(video[i:i + batch_size]).latent_dist.mode() for i in range(0, len(video),
                                                                                                   batch_size)])
    return (latents - mean) / std


class PatchProbe(torch.nn.Module):
    """2 x 2 patches -> 128-wide tokens (+ learned positions unless `position=False`) -> 2 encoder layers -> class."""

    def __init__(self, latent_shape, num_classes, position=True, width=128, layers=2, patch=2):
        super().__init__()
        channels, frames, height, width_px = latent_shape
        self.embed = torch.nn.Conv3d(channels, width, (1, patch, patch), stride=(1, patch, patch))
        tokens = frames * (height // patch) * (width_px // patch) + 1
        self.position = torch.nn.Parameter(torch.randn(1, tokens, width) * 0.02) if position else None
        self.cls = torch.nn.Parameter(torch.zeros(1, 1, width))
        layer = torch.nn.TransformerEncoderLayer(width, 4, 4 * width, 0.0, batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], 1)
        if self.position is not None:
            tokens = tokens + self.position
        return self.head(self.encoder(tokens)[:, 0])


def main(argv=None):
    from diffusers import AutoencoderKLWan

    from univigu.toyworld import DEFAULT_VAE, SHAPES, sample_scene, scene_rng

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", default=DEFAULT_VAE)
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--test", type=int, default=240)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--probe", choices=("conv", "patches"), default="conv")
    parser.add_argument("--no-position", action="store_true", help="--probe patches without a position embedding")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (conv), 32 (patches)")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 (conv), 5e-4 (patches)")
    args = parser.parse_args(argv)
    patches = args.probe == "patches"
    batch_size = args.batch_size or (32 if patches else 64)
    lr = args.lr or (5e-4 if patches else 1e-3)
    torch.manual_seed(0)
    vae = AutoencoderKLWan.from_pretrained(args.vae).eval()
    train = [sample_scene(scene_rng(0, "train", i), split="train", num_objects=1) for i in range(args.train)]
    test = [sample_scene(scene_rng(7, "test", i), split="test", num_objects=1, require_held_out=i % 2 == 0)
            for i in range(args.test)]
    start = time.time()
    x_train, x_test = encode(vae, train), encode(vae, test)
    y_train = torch.tensor([SHAPES.index(s.objects[0].shape) for s in train])
    y_test = torch.tensor([SHAPES.index(s.objects[0].shape) for s in test])
    held = torch.tensor([s.objects[0].is_held_out for s in test])
    print(f"encoded {len(train)} + {len(test)} clips in {time.time() - start:.0f} s; latents {tuple(x_train.shape[1:])}")
    channels = x_train.shape[1]
    if patches:
        probe = PatchProbe(tuple(x_train.shape[1:]), len(SHAPES), position=not args.no_position)
    else:
        probe = torch.nn.Sequential(
            torch.nn.Conv3d(channels, 64, (1, 3, 3), padding=(0, 1, 1)), torch.nn.GELU(),
            torch.nn.Conv3d(64, 64, (1, 3, 3), padding=(0, 1, 1)), torch.nn.GELU(),
            torch.nn.AdaptiveMaxPool3d(1), torch.nn.Flatten(), torch.nn.Linear(64, len(SHAPES)),
        )
    optimizer = torch.optim.AdamW(probe.parameters(), lr)
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(x_train), (batch_size,))
        loss = torch.nn.functional.cross_entropy(probe(x_train[index]), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 300 == 0:
            with torch.no_grad():
                correct = (probe(x_test).argmax(-1) == y_test).float()
            print(f"step {step}: loss {loss.item():.3f}  test shape accuracy {correct.mean():.2f} "
                  f"(held-out pairs {correct[held].mean():.2f}, others {correct[~held].mean():.2f})", flush=True)


if __name__ == "__main__":
    main()
