# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Pretrain the ShapesWorld stand-in's text encoder (a tiny `UMT5EncoderModel`) on the world's language:

    python training/shapesworld/pretrain_text_encoder.py --out text_encoder      # ~2 min on 2 CPU threads

Wan2.1 conditions on umT5, a language model that knows which words of a prompt belong together. A randomly
initialised umT5 does not: its attention is nearly uniform, so each token's embedding is the word plus an average of
the sentence, and in "a red circle moving left and a yellow square staying still" the embedding of "circle" changes
by about 1% when "red" and "yellow" trade places. A generator conditioned on it sees the colours, shapes and motions
of a two-object prompt but not which goes with which (docs/research_log.md, session 19).

This script gives the stand-in's encoder that knowledge the way a language model has it, from text alone: every
token of a prompt's clause learns to predict the colour, shape and motion of the clause's object (linear heads on
the last hidden state, dropped afterwards), so each token's embedding carries its whole phrase. Prompts come from the
seeded train split (the held-out colour-shape pairs never appear); the scores are measured on test prompts, held-out
pairs included. The encoder is saved with `save_pretrained` (safetensors) and is frozen afterwards, as Wan's is:
`pretrain_base.py --text-encoder DIR`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from univigu.toyworld.components import build_tiny_text_encoder, build_tokenizer
from univigu.toyworld.text import scene_to_prompt
from univigu.toyworld.world import COLOURS, MOTIONS, SHAPES, WORLDS, iter_scenes

from pretrain_generator import SHAPESWORLD_SEQUENCE_LENGTH


#: What each token of a clause predicts about the clause's object.
ATTRIBUTES = {"colour": tuple(COLOURS), "shape": SHAPES, "motion": MOTIONS}
IGNORE = -100


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the encoder (UMT5EncoderModel.save_pretrained)")
    p.add_argument("--world", default="shapesworld-v2", choices=tuple(WORLDS))
    p.add_argument("--seed", type=int, default=0, help="the encoder's initialisation (as the stand-in's) and the data")
    p.add_argument("--text-dim", type=int, default=64, help="the encoder's width (the transformer's text_dim)")
    p.add_argument("--num-prompts", type=int, default=20000)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-prompts", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def clause_labels(scene, tokenizer) -> tuple[list[int], dict[str, list[int]]]:
    """Token ids of the scene's prompt and, per attribute, each token's label: the attribute of the object whose
    clause holds the token (`IGNORE` for ` and ` and `</s>`)."""
    prompt = scene_to_prompt(scene)
    ids = tokenizer(prompt, add_special_tokens=True).input_ids
    words = prompt.split()
    if len(ids) != len(words) + 1:  # the word-level tokenizer: one id per word, then </s>
        raise ValueError(f"unexpected tokenization of {prompt!r}")
    labels = {name: [] for name in ATTRIBUTES}
    clause = 0
    for word in words:
        if word == "and":
            clause += 1
            for name in ATTRIBUTES:
                labels[name].append(IGNORE)
            continue
        obj = scene.objects[clause]
        for name, values in ATTRIBUTES.items():
            labels[name].append(values.index(getattr(obj, name)))
    for name in ATTRIBUTES:
        labels[name].append(IGNORE)
    return ids, labels


def make_batches(scenes, tokenizer) -> dict[str, torch.Tensor]:
    length = SHAPESWORLD_SEQUENCE_LENGTH
    rows = [clause_labels(scene, tokenizer) for scene in scenes]
    data = {"input_ids": torch.zeros(len(rows), length, dtype=torch.long),
            "attention_mask": torch.zeros(len(rows), length, dtype=torch.long)}
    data.update({name: torch.full((len(rows), length), IGNORE) for name in ATTRIBUTES})
    for i, (ids, labels) in enumerate(rows):
        data["input_ids"][i, : len(ids)] = torch.tensor(ids)
        data["attention_mask"][i, : len(ids)] = 1
        for name in ATTRIBUTES:
            data[name][i, : len(ids)] = torch.tensor(labels[name])
    return data


def losses_and_hits(encoder, heads, batch) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
    hidden = encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    loss, hits = 0.0, {}
    for name, head in heads.items():
        logits = head(hidden)
        loss = loss + F.cross_entropy(logits.flatten(0, 1), batch[name].flatten(), ignore_index=IGNORE)
        mask = batch[name] != IGNORE
        hits[name] = (int((logits.argmax(-1) == batch[name])[mask].sum()), int(mask.sum()))
    return loss, hits


@torch.no_grad()
def binding_signal(encoder, tokenizer) -> float:
    """Mean relative change of the embeddings of the words two prompts share when their objects trade colours
    (or motions): about 0.01-0.04 for a random umT5; large when tokens carry their phrase."""
    pairs = [("a red circle moving left and a yellow square staying still",
              "a yellow circle moving left and a red square staying still"),
             ("a blue triangle moving up and a green square moving down",
              "a green triangle moving up and a blue square moving down"),
             ("a magenta square moving right and a cyan circle staying still",
              "a magenta square staying still and a cyan circle moving right")]
    changes = []
    for a, b in pairs:
        ids = tokenizer([a, b], return_tensors="pt", padding=True)
        h = encoder(ids.input_ids, ids.attention_mask).last_hidden_state
        for i, (wa, wb) in enumerate(zip(a.split(), b.split())):
            if wa == wb:
                changes.append(float((h[0, i] - h[1, i]).norm() / h[0, i].norm()))
    return sum(changes) / len(changes)


@torch.no_grad()
def evaluate(encoder, heads, tokenizer, args) -> dict:
    """Per-token attribute accuracy on test prompts (every colour-shape pair; even indices hold a held-out pair)."""
    scores = {}
    for num_objects in (1, 2):
        scenes = [s for s in iter_scenes(4 * args.eval_prompts, split="test", seed=args.seed + 1, version=args.world)
                  if len(s.objects) == num_objects][: args.eval_prompts]
        _, hits = losses_and_hits(encoder, heads, make_batches(scenes, tokenizer))
        scores[f"{num_objects}obj"] = {name: round(h / max(n, 1), 4) for name, (h, n) in hits.items()}
    scores["binding_signal"] = round(binding_signal(encoder, tokenizer), 4)
    return scores


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer()
    # the stand-in's encoder as pretrain_base.py builds it (same config and seed), then trained
    encoder = build_tiny_text_encoder(vocab_size=len(tokenizer), d_model=args.text_dim, seed=args.seed,
                                      num_layers=2, num_heads=2)
    heads = torch.nn.ModuleDict({name: torch.nn.Linear(args.text_dim, len(values))
                                 for name, values in ATTRIBUTES.items()})
    before = evaluate(encoder.eval(), heads, tokenizer, args)
    data = make_batches(list(iter_scenes(args.num_prompts, split="train", seed=args.seed, version=args.world)),
                        tokenizer)
    params = [*encoder.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    encoder.train()
    t0 = time.time()
    bar = tqdm(range(args.steps), desc="text encoder", mininterval=5)
    for step in bar:
        idx = torch.randint(0, len(data["input_ids"]), (args.batch_size,), generator=gen)
        loss, _ = losses_and_hits(encoder, heads, {k: v[idx] for k, v in data.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    encoder.eval()
    after = evaluate(encoder, heads, tokenizer, args)
    out = Path(args.out)
    encoder.save_pretrained(out)
    record = {"args": vars(args), "seconds": round(time.time() - t0, 1), "before": before, "after": after}
    (out / "pretraining.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({"before": before, "after": after, "seconds": record["seconds"]}, indent=1))
    print(f"saved the encoder to {out}")


if __name__ == "__main__":
    main()
