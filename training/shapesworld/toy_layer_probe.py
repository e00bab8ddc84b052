"""Where does a ShapesWorld stage-0 generator keep (or lose) the shape of the object? A linear probe per block.

    python training/shapesworld/toy_layer_probe.py --stage0 BUILD/stage0

Feeds clean one-object latents (posterior mode, normalised as training does) at timestep 0 with the empty prompt
through the generator's `WanTransformer3DModel`, max- and mean-pools the video tokens after the patch embedding and
after each block, and trains a linear shape classifier on each (800 train clips, 240 fresh test clips, chance 1/3).
The same architecture with random weights is the control. Results and their reading: docs/research_log.md, session 7.
"""

import argparse

import numpy as np
import torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage0", required=True, help="a stage-0 WanPipeline folder (`build/stage0`)")
    parser.add_argument("--train", type=int, default=800, help="one-object train clips the probes learn from")
    parser.add_argument("--test", type=int, default=240, help="fresh test clips they are scored on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from diffusers import WanPipeline, WanTransformer3DModel

    from univigu.toyworld import render_scene
    from univigu.toyworld.evaluate import held_out_test_scenes
    from univigu.toyworld.world import SHAPES, sample_scene, scene_rng

    pipe = WanPipeline.from_pretrained(args.stage0)
    vae = pipe.vae.eval()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)

    def latents_and_labels(scenes):
        clips = np.stack([render_scene(s) for s in scenes])
        x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        with torch.no_grad():
            z = torch.cat([vae.encode(x[i:i + 32]).latent_dist.mode() for i in range(0, len(x), 32)])
        return (z - mean) / std, torch.tensor([list(SHAPES).index(s.objects[0].shape) for s in scenes])

    train = [sample_scene(scene_rng(77, "train", i), split="train", num_objects=1) for i in range(args.train)]
    z_train, y_train = latents_and_labels(train)
    z_test, y_test = latents_and_labels(held_out_test_scenes(args.test, 1, seed=99))
    with torch.no_grad():
        empty, _ = pipe.encode_prompt([""], do_classifier_free_guidance=False, max_sequence_length=32)

    def pooled_features(model, z):
        """{-1: after the patch embedding, k: after block k} -> (N, 2C) max- and mean-pooled video tokens."""
        captured = {}
        hooks = [block.register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o))
                 for k, block in enumerate(model.blocks)]
        hooks.append(model.patch_embedding.register_forward_hook(
            lambda m, i, o: captured.__setitem__(-1, o.flatten(2).transpose(1, 2))))
        features = {k: [] for k in range(-1, len(model.blocks))}
        with torch.no_grad():
            for i in range(0, len(z), 32):
                batch = z[i:i + 32]
                model(batch, torch.zeros(len(batch)), empty.expand(len(batch), -1, -1), return_dict=False)
                for k in features:
                    features[k].append(torch.cat([captured[k].max(1).values, captured[k].mean(1)], -1))
        for hook in hooks:
            hook.remove()
        return {k: torch.cat(v) for k, v in features.items()}

    def linear_probe(f_train, f_test):
        mu, sd = f_train.mean(0), f_train.std(0) + 1e-5
        a, b = (f_train - mu) / sd, (f_test - mu) / sd
        probe = torch.nn.Linear(a.shape[1], len(SHAPES))
        opt = torch.optim.AdamW(probe.parameters(), 1e-2, weight_decay=1e-2)
        for _ in range(500):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(probe(a), y_train).backward()
            opt.step()
        with torch.no_grad():
            return (probe(b).argmax(1) == y_test).float().mean().item()

    trained = pipe.transformer.eval()
    random = WanTransformer3DModel.from_config(trained.config).eval()
    print("| weights | patch embedding | " + " | ".join(f"block {k + 1}" for k in range(len(trained.blocks))) + " |")
    print("|---" * (len(trained.blocks) + 2) + "|")
    for name, model in (("stage 0", trained), ("random", random)):
        f_train, f_test = pooled_features(model, z_train), pooled_features(model, z_test)
        print(f"| {name} | " + " | ".join(f"{linear_probe(f_train[k], f_test[k]):.2f}" for k in sorted(f_train)) + " |")


if __name__ == "__main__":
    main()
