"""ShapesWorld ablations at one training budget, from a build's converted stage-0 model (`BUILD/convert`):
what trains (everything + generation views / text experts only / LoRA on the shared attention / everything without
generation views), the modality experts vs a shared FFN, and Refine-only vs Recall-then-Refine.

    python training/shapesworld/toy_ablations.py --build BUILD_DIR --steps 600 [--only NAME ...]

Each variant is a real `accelerate launch training/train_*.py` run (the build's flags, with the variant's changes),
then scored on fresh test sets: understanding (its own task's text) and t2v of the result (the prior), next to the
stage-0 generator's t2v. Prints the markdown table of docs/toyworld_model.md and writes BUILD_DIR/ablations.json.
"""

import argparse
import json
import time
from pathlib import Path

VARIANTS = {
    # name: (stage, extra/overriding trainer flags, start)
    "all + generation views (the recipe)": ("recall", [], "convert"),
    "text experts only": ("recall", ["--trainable", "text_experts", "--learning_rate", "2e-3"], "convert"),
    "LoRA r16 on attention + ffn_t, text head": ("recall", ["--trainable", "lora", "--learning_rate", "2e-3"], "convert"),
    "all, no generation views": ("recall", ["--view_ratios", "1", "0", "0"], "convert"),
    "shared FFN (no ffn_t)": ("recall", ["--text_ffn", "shared"], "convert"),
    "Refine only (no Recall)": ("refine", [], "convert"),
    "Recall then Refine": ("refine", [], "recall-ablation"),
}


def override(flags, extra):
    """Replace each `--flag values...` of `extra` in `flags` (or append it)."""
    flags = list(flags)
    i = 0
    while i < len(extra):
        name = extra[i]
        j = i + 1
        while j < len(extra) and not extra[j].startswith("--"):
            j += 1
        values = extra[i + 1:j]
        if name in flags:
            k = flags.index(name)
            end = k + 1
            while end < len(flags) and not flags[end].startswith("--"):
                end += 1
            flags[k:end] = [name, *values]
        else:
            flags += [name, *values]
        i = j
    return flags


def main(argv=None):
    from univigu.toyworld.evaluate import evaluate_generation, evaluate_understanding, held_out_test_scenes

    import build
    from package import WAN_CALL, load_univigu, stage_call_defaults

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--num-samples", type=int, default=24)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    out = args.build / "ablations"
    out.mkdir(exist_ok=True)
    results_path = args.build / "ablations.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    bargs = build.parse_args(["--out", str(args.build)])
    bargs.text_experts_learning_rate = bargs.text_experts_learning_rate or 2e-3
    bargs.view_ratios = (3.0, 1.0, 1.0)
    one = held_out_test_scenes(args.num_samples, 1, seed=77)
    two = held_out_test_scenes(args.num_samples, 2, seed=77)

    if "stage0" not in results:
        from diffusers import WanPipeline

        wan = WanPipeline.from_pretrained(str(args.build / "stage0"))
        wan.set_progress_bar_config(disable=True)
        results["stage0"] = {"t2v": evaluate_generation(wan, one, **WAN_CALL)["scores"]}
        results_path.write_text(json.dumps(results, indent=2))

    for name, (stage, extra, start) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        if name in results:
            continue
        folder = out / name.split(" (")[0].replace(" ", "_").replace("+", "plus").replace(",", "")
        if start == "recall-ablation":
            start_dir = out / "all_plus_generation_views"
            steps = args.steps // 2
            recall_dir = out / "recall_half"
            if not (recall_dir / "model_index.json").exists():
                flags = build._train_args(bargs, "recall", args.build / "convert", args.build / "data", recall_dir)
                flags = override(flags, ["--max_train_steps", str(steps), "--validation_steps", str(steps),
                                         "--lr_warmup_steps", str(max(1, steps // 20))])
                build._run(build._training_script("recall", bargs.num_processes, out) + flags, out / "recall_half.log",
                           threads=1)
            start_dir = recall_dir
        else:
            start_dir = args.build / start
            steps = args.steps
        flags = build._train_args(bargs, stage, start_dir, args.build / "data", folder)
        flags = override(flags, extra + ["--max_train_steps", str(steps), "--validation_steps", str(steps),
                                         "--lr_warmup_steps", str(max(1, steps // 20))])
        t0 = time.time()
        if not (folder / "model_index.json").exists():
            build._run(build._training_script(stage, bargs.num_processes, out) + flags, out / f"{folder.name}.log",
                       threads=1)
        seconds = time.time() - t0
        length = 16 if stage == "recall" else 40
        if (folder / "pytorch_lora_weights.safetensors").exists():
            # A LoRA run saves the adapter; its base is the starting folder (or `base/` when it started from Wan).
            base = folder / "base" if (folder / "base").exists() else start_dir
            pipe = load_univigu(base, stage_call_defaults(length))
            pipe.load_lora_weights(str(folder))
        else:
            pipe = load_univigu(folder, stage_call_defaults(length))
        results[name] = {
            "stage": stage,
            "train_seconds": round(seconds),
            "v2t_1obj": evaluate_understanding(pipe, one)["scores"],
            "v2t_2obj": evaluate_understanding(pipe, two)["scores"],
            "t2v": evaluate_generation(pipe, one)["scores"],
            "t2v_no_text_stream": evaluate_generation(pipe, one, text_stream=False)["scores"],
        }
        results_path.write_text(json.dumps(results, indent=2))
        print(name, json.dumps({k: v for k, v in results[name].items() if k == "train_seconds"}))
    print(table(results, args.steps))


def table(results, steps):
    def f(scores, key):
        return f"{scores.get(key, float('nan')):.2f}"

    rows = [f"| variant ({steps} steps, global batch 16) | v2t 1-obj colour / shape / motion / exact | v2t 2-obj exact | "
            "t2v colour / shape / motion | t2v, text stream off |", "|---|---|---|---|---|"]
    s0 = results.get("stage0", {}).get("t2v", {})
    rows.append(f"| stage 0 generator | - | - | {f(s0, 'colour_accuracy')} / {f(s0, 'shape_accuracy')} / "
                f"{f(s0, 'motion_accuracy')} | - |")
    for name, r in results.items():
        if name == "stage0":
            continue
        u1, u2, g, g0 = r["v2t_1obj"], r["v2t_2obj"], r["t2v"], r["t2v_no_text_stream"]
        rows.append(
            f"| {name} | {f(u1, 'colour_accuracy')} / {f(u1, 'shape_accuracy')} / {f(u1, 'motion_accuracy')} / "
            f"{f(u1, 'object_exact_match')} | {f(u2, 'object_exact_match')} | {f(g, 'colour_accuracy')} / "
            f"{f(g, 'shape_accuracy')} / {f(g, 'motion_accuracy')} | {f(g0, 'colour_accuracy')} / "
            f"{f(g0, 'shape_accuracy')} / {f(g0, 'motion_accuracy')} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
