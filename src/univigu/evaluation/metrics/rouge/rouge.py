# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ROUGE-L backed by Google's rouge-score, as a local 🤗 evaluate module (no Hub).

Keep one import per line in this file: evaluate's import scanner misreads `import a, b`.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer


_DESCRIPTION = """\
ROUGE-L (Lin, 2004): F-measure of the longest common subsequence between a prediction and a reference, computed by
the `rouge-score` package (lowercased, non-alphanumeric characters removed, no stemming unless asked). With several
references per sample, the best-matching one counts. Scores are averaged over samples, in [0, 1].
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one generated text per sample.
    references (`list[str]` or `list[list[str]]`): one or several reference texts per sample.
    use_stemmer (`bool`, defaults to `False`): Porter-stem words before matching.
Returns:
    rougeL (`float`): mean LCS F-measure, 0-1.
    rougeL_precision (`float`), rougeL_recall (`float`): their means, for the same best-matching references.
Example:
    >>> rouge = evaluate.load("src/univigu/evaluation/metrics/rouge")
    >>> rouge.compute(predictions=["a red circle"], references=["a red circle"])["rougeL"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013/"],
        )

    def _compute(self, predictions, references, use_stemmer=False):
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        f_scores, precisions, recalls = [], [], []
        for prediction, refs in zip(predictions, references):
            refs = [refs] if isinstance(refs, str) else list(refs)
            if not refs:
                raise ValueError("Every prediction needs at least one reference.")
            # `score_multi` keeps the reference with the best F-measure.
            score = scorer.score_multi(refs, prediction)["rougeL"]
            f_scores.append(score.fmeasure)
            precisions.append(score.precision)
            recalls.append(score.recall)
        count = max(len(f_scores), 1)
        return {
            "rougeL": float(sum(f_scores) / count),
            "rougeL_precision": float(sum(precisions) / count),
            "rougeL_recall": float(sum(recalls) / count),
        }
