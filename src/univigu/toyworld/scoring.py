# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld v1 scores: understanding (video -> text), generation (text -> video) and joint (text -> both).

Because the world's truth is known, these scores are exact where caption n-gram metrics are only proxies: a caption
that says "blue" for a red object loses a colour point, whatever its BLEU.

All batch scorers return plain dicts of floats (accuracies in [0, 1], counts as floats) so they can be logged as is.
Object-level accuracies are micro-averaged over ground-truth objects; "held_out/..." keys repeat them for the objects
whose colour-shape pair is held out of training, when there are any.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from .analysis import DetectedObject, analyze_video
from .text import ParsedObject, follows_template, parse_text, scene_objects
from .world import HELD_OUT_PAIRS, Scene


ObjectsLike = Scene | str | Sequence[ParsedObject] | Sequence[DetectedObject]

_CORE = ("colour", "shape", "motion")
_DETAILED = ("size", "start_region", "end_region")


def as_objects(truth: ObjectsLike) -> list[ParsedObject]:
    """Normalise a scene, a prompt/caption, or a list of parsed/detected objects to `ParsedObject`s."""
    if isinstance(truth, Scene):
        return scene_objects(truth)
    if isinstance(truth, str):
        return parse_text(truth)
    objects = []
    for obj in truth:
        if isinstance(obj, ParsedObject):
            objects.append(obj)
        else:
            objects.append(ParsedObject(**{field: getattr(obj, field, None) for field in _CORE + _DETAILED}))
    return objects


def _agreement(pred: ParsedObject, truth: ParsedObject) -> float:
    core = sum(getattr(pred, f) is not None and getattr(pred, f) == getattr(truth, f) for f in _CORE)
    detail = sum(getattr(pred, f) is not None and getattr(pred, f) == getattr(truth, f) for f in _DETAILED)
    # Colour identifies an object within a scene (colours are distinct), so it weighs most in the matching.
    colour_bonus = 0.5 if pred.colour is not None and pred.colour == truth.colour else 0.0
    return core + colour_bonus + 0.01 * detail


def match_objects(predicted: Sequence[ParsedObject], truth: Sequence[ParsedObject]) -> dict[int, int]:
    """Assign predicted objects to ground-truth objects (truth index -> predicted index), maximising agreement.

    A pair is only allowed when the prediction names the truth's colour or shape: a prediction sharing neither is an
    invented object, not a mistaken description. Exhaustive for small scenes, greedy beyond.
    """
    allowed = {
        (t, p): _agreement(predicted[p], truth[t])
        for t in range(len(truth))
        for p in range(len(predicted))
        if (predicted[p].colour is not None and predicted[p].colour == truth[t].colour)
        or (predicted[p].shape is not None and predicted[p].shape == truth[t].shape)
    }
    if not allowed:
        return {}
    best: dict[int, int] = {}
    if math.perm(len(predicted) + len(truth), len(truth)) <= 50_000:
        best_score = -1.0
        # Each truth object takes a distinct predicted index, or -1 (unmatched).
        options = list(range(len(predicted))) + [-1] * len(truth)
        for assignment in set(itertools.permutations(options, len(truth))):
            pairs = {t: p for t, p in enumerate(assignment) if p >= 0}
            if any((t, p) not in allowed for t, p in pairs.items()):
                continue
            score = sum(allowed[(t, p)] for t, p in pairs.items())
            if score > best_score:
                best, best_score = pairs, score
        return best
    used: set[int] = set()
    for (t, p), _ in sorted(allowed.items(), key=lambda item: -item[1]):
        if t not in best and p not in used:
            best[t] = p
            used.add(p)
    return best


def _is_held_out(obj: ParsedObject) -> bool:
    return (obj.colour, obj.shape) in HELD_OUT_PAIRS


def understanding_counts(prediction: str | Sequence[ParsedObject], truth: ObjectsLike) -> dict[str, float]:
    """Per-sample counts for `score_understanding`: how many truth objects got each attribute right, and so on."""
    predicted = as_objects(prediction)
    truth_objects = as_objects(truth)
    matches = match_objects(predicted, truth_objects)
    counts = dict.fromkeys(
        ["objects", "colour", "shape", "motion", "exact", "size", "start_region", "end_region", "regions"]
        + ["detailed_exact", "predicted_objects", "hallucinations"],
        0.0,
    )
    counts.update({f"held_out/{key}": 0.0 for key in ("objects", "colour", "shape", "motion", "exact")})
    counts["objects"] = float(len(truth_objects))
    counts["predicted_objects"] = float(len(predicted))
    counts["hallucinations"] = float(len(predicted) - len(matches))
    for t, obj in enumerate(truth_objects):
        pred = predicted[matches[t]] if t in matches else ParsedObject()
        correct = {field: float(getattr(pred, field) == getattr(obj, field)) for field in _CORE + _DETAILED}
        exact = float(all(correct[f] for f in _CORE))
        for field in _CORE + _DETAILED:
            counts[field] += correct[field]
        counts["exact"] += exact
        counts["regions"] += correct["start_region"] * correct["end_region"]
        counts["detailed_exact"] += float(all(correct.values()))
        if _is_held_out(obj):
            counts["held_out/objects"] += 1
            counts["held_out/exact"] += exact
            for field in _CORE:
                counts[f"held_out/{field}"] += correct[field]
    return counts


def _sum_counts(per_sample: Sequence[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for counts in per_sample:
        for key, value in counts.items():
            total[key] = total.get(key, 0.0) + value
    return total


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _object_accuracies(total: dict[str, float], prefix: str = "") -> dict[str, float]:
    objects = total.get(f"{prefix}objects", 0.0)
    scores = {f"{prefix}{field}_accuracy": _ratio(total[f"{prefix}{field}"], objects) for field in _CORE}
    scores[f"{prefix}attribute_accuracy"] = _ratio(sum(total[f"{prefix}{field}"] for field in _CORE), 3 * objects)
    scores[f"{prefix}object_exact_match"] = _ratio(total[f"{prefix}exact"], objects)
    return scores


def _with_held_out_and_counts(scores: dict[str, float], total: dict[str, float], num_samples: int) -> dict[str, float]:
    """The keys every batch scorer ends with: the held-out accuracies and those of the other (`seen/`) objects
    (when there are held-out objects), then `num_samples` and `num_objects`."""
    if total["held_out/objects"]:
        scores.update(_object_accuracies(total, prefix="held_out/"))
        if total["objects"] > total["held_out/objects"]:  # the other objects, to compare with (the ladder's L5)
            seen = {f"seen/{key}": total[key] - total[f"held_out/{key}"] for key in ("objects", *_CORE, "exact")}
            scores.update(_object_accuracies(seen, prefix="seen/"))
    scores["num_samples"] = float(num_samples)
    scores["num_objects"] = total["objects"]
    return scores


def _check_lengths(**sequences: Sequence[Any]) -> int:
    lengths = {name: len(seq) for name, seq in sequences.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"Batch lengths differ: {lengths}.")
    return next(iter(lengths.values()))


def score_understanding(
    predictions: Sequence[str], references: Sequence[ObjectsLike], detailed: bool = False
) -> dict[str, float]:
    """Score predicted texts (prompts or captions) against the truth of each video.

    Args:
        predictions: the model's texts.
        references: per sample, the `Scene`, a reference text, or its objects.
        detailed: also score what only detailed captions state: size and start/end regions.

    Returns:
        `colour/shape/motion_accuracy`, `attribute_accuracy` (their mean), `object_exact_match` (all three right),
        `hallucinations` (invented objects, total) and `hallucinations_per_sample`; with `detailed`, also
        `size_accuracy`, `region_accuracy` (start and end both right), `detailed_exact_match` and `template_rate`
        (the share of texts that are sentences of the caption template, `text.follows_template`); `held_out/...`
        accuracies when the references contain held-out pairs; `num_samples` and `num_objects`.
    """
    num_samples = _check_lengths(predictions=predictions, references=references)
    total = _sum_counts([understanding_counts(p, r) for p, r in zip(predictions, references)])
    if not total:
        return {"num_samples": 0.0, "num_objects": 0.0}
    scores = _object_accuracies(total)
    scores["hallucinations"] = total["hallucinations"]
    scores["hallucinations_per_sample"] = _ratio(total["hallucinations"], num_samples)
    if detailed:
        scores["size_accuracy"] = _ratio(total["size"], total["objects"])
        scores["region_accuracy"] = _ratio(total["regions"], total["objects"])
        scores["detailed_exact_match"] = _ratio(total["detailed_exact"], total["objects"])
        if all(isinstance(p, str) for p in predictions):
            scores["template_rate"] = sum(map(follows_template, predictions)) / num_samples
    return _with_held_out_and_counts(scores, total, num_samples)


def generation_counts(
    video_or_objects: Any, prompt: ObjectsLike, **analyze_kwargs: Any
) -> dict[str, float]:
    """Per-sample counts for `score_generation`. `video_or_objects` is a video or `analyze_video`'s result."""
    if isinstance(video_or_objects, (list, tuple)) and all(isinstance(o, DetectedObject) for o in video_or_objects):
        detected = list(video_or_objects)
    else:
        detected = analyze_video(video_or_objects, **analyze_kwargs)
    by_colour = {obj.colour: obj for obj in detected}
    wanted = as_objects(prompt)
    counts = dict.fromkeys(["objects", "colour", "shape", "motion", "exact", "extra_objects"], 0.0)
    counts.update({f"held_out/{key}": 0.0 for key in ("objects", "colour", "shape", "motion", "exact")})
    counts["objects"] = float(len(wanted))
    counts["extra_objects"] = float(len(set(by_colour) - {obj.colour for obj in wanted}))
    for obj in wanted:
        found = by_colour.get(obj.colour)
        correct = {
            "colour": float(found is not None),
            "shape": float(found is not None and found.shape == obj.shape),
            "motion": float(found is not None and found.motion == obj.motion),
        }
        exact = float(all(correct.values()))
        for field, value in correct.items():
            counts[field] += value
        counts["exact"] += exact
        if _is_held_out(obj):
            counts["held_out/objects"] += 1
            counts["held_out/exact"] += exact
            for field, value in correct.items():
                counts[f"held_out/{field}"] += value
    return counts


def score_generation(videos: Sequence[Any], prompts: Sequence[ObjectsLike], **analyze_kwargs: Any) -> dict[str, float]:
    """Score generated videos against their prompts, per prompt object, with `analyze_video`.

    A prompt object's colour is right when the video shows that palette colour; its shape and motion are right when
    the object of that colour has them. Returns `colour/shape/motion_accuracy`, `attribute_accuracy`,
    `object_exact_match`, `extra_objects_per_sample` (colours shown but not asked for), `held_out/...` accuracies
    when the prompts contain held-out pairs, `num_samples` and `num_objects`.
    """
    num_samples = _check_lengths(videos=videos, prompts=prompts)
    total = _sum_counts([generation_counts(v, p, **analyze_kwargs) for v, p in zip(videos, prompts)])
    if not total:
        return {"num_samples": 0.0, "num_objects": 0.0}
    scores = _object_accuracies(total)
    scores["extra_objects_per_sample"] = _ratio(total["extra_objects"], num_samples)
    return _with_held_out_and_counts(scores, total, num_samples)


def score_joint(
    videos: Sequence[Any],
    captions: Sequence[str],
    prompts: Sequence[ObjectsLike],
    detailed: bool = True,
    **analyze_kwargs: Any,
) -> dict[str, float]:
    """Score joint generation (prompt -> video + caption).

    Returns three groups of keys: `generation/...` (video vs prompt, as `score_generation`), `understanding/...`
    (caption vs prompt, colour/shape/motion only since a prompt states nothing more) and `agreement/...` (caption vs
    the analyzed video, treating the video as the truth; with `detailed`, also size and regions).
    """
    _check_lengths(videos=videos, captions=captions, prompts=prompts)
    detected = [analyze_video(video, **analyze_kwargs) for video in videos]
    scores = {}
    for key, value in score_generation(detected, prompts).items():
        scores[f"generation/{key}"] = value
    for key, value in score_understanding(captions, prompts).items():
        scores[f"understanding/{key}"] = value
    agreement = score_understanding(captions, [as_objects(objs) for objs in detected], detailed=detailed)
    for key, value in agreement.items():
        if not key.startswith("held_out/"):
            scores[f"agreement/{key}"] = value
    return scores


def summarize(scores: dict[str, float], keys: Sequence[str] | None = None) -> str:
    """A one-line human summary of a score dict (for logs)."""
    keys = keys or [k for k in scores if k.endswith("accuracy") or k.endswith("exact_match")]
    return ", ".join(f"{key}={scores[key]:.3f}" for key in keys if key in scores)


__all__ = [
    "as_objects",
    "generation_counts",
    "match_objects",
    "score_generation",
    "score_joint",
    "score_understanding",
    "summarize",
    "understanding_counts",
]
