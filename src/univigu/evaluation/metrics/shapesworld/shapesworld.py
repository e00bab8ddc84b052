# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld attribute accuracy, as a local 🤗 evaluate module (no Hub). Needs `univigu` importable.

Keep one import per line in this file: evaluate's import scanner misreads `import a, b`.
"""

import datasets
import evaluate
from univigu.toyworld.scoring import score_understanding
from univigu.toyworld.world import Scene


_DESCRIPTION = """\
Exact understanding scores for ShapesWorld (shapesworld-v1): each text is parsed into objects (colour, shape,
motion, and for detailed captions size and regions) and matched to the truth of its video. Unlike n-gram metrics,
a caption that names the wrong colour loses exactly one attribute, and invented objects are counted.
"""

_CITATION = ""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one generated prompt or caption per sample.
    references (`list[str]`): per sample, the reference prompt or caption, or the scene as JSON
        (`Scene.to_json()`, the `scene` column of a ShapesWorld dataset; needed for size/regions of prompts).
    detailed (`bool`, defaults to `False`): also score size and start/end regions.
Returns:
    colour_accuracy, shape_accuracy, motion_accuracy, attribute_accuracy, object_exact_match (`float`, 0-1),
    hallucinations (`float`, invented objects in total), hallucinations_per_sample, with `detailed` also
    size_accuracy, region_accuracy and detailed_exact_match, `held_out/...` accuracies when references contain
    held-out colour-shape pairs, num_samples and num_objects.
Example:
    >>> metric = evaluate.load("src/univigu/evaluation/metrics/shapesworld")
    >>> scores = metric.compute(predictions=["a red square moving left"], references=["a red circle moving left"])
    >>> scores["attribute_accuracy"]
    0.6666666666666666
"""


def _reference_truth(reference):
    """A reference is a scene as JSON or a prompt/caption text."""
    if reference.lstrip().startswith("{"):
        return Scene.from_json(reference)
    return reference


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Shapesworld(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, detailed=False):
        truths = [_reference_truth(reference) for reference in references]
        return score_understanding(list(predictions), truths, detailed=detailed)
