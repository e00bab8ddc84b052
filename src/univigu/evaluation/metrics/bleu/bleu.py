# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Corpus BLEU-4 backed by sacrebleu, as a local 🤗 evaluate module (`evaluate.load("path/to/bleu")`, no Hub).

Why local: `evaluate.load("bleu")` fetches the module from the Hub, which training and tests must not need.
Keep one import per line in this file: evaluate's import scanner misreads `import a, b`.
"""

import datasets
import evaluate
import sacrebleu


_DESCRIPTION = """\
Corpus-level BLEU-4 (Papineni et al., 2002) computed by sacrebleu: modified n-gram precisions for n = 1..4, their
geometric mean, and the brevity penalty. Scores are on sacrebleu's 0-100 scale. Defaults follow sacrebleu
(13a tokenization, case-sensitive, exponential smoothing).
"""

_CITATION = """\
@inproceedings{papineni-etal-2002-bleu,
    title = "{B}leu: a Method for Automatic Evaluation of Machine Translation",
    author = "Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing",
    booktitle = "Proceedings of ACL",
    year = "2002",
}
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation",
    year = "2018",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one generated text per sample.
    references (`list[str]` or `list[list[str]]`): one or several reference texts per sample (the number may vary).
    tokenize (`str`, defaults to `"13a"`): sacrebleu tokenizer.
    lowercase (`bool`, defaults to `False`): lowercase before scoring.
    smooth_method (`str`, defaults to `"exp"`): one of sacrebleu's `"none"`, `"floor"`, `"add-k"`, `"exp"`.
Returns:
    bleu (`float`): corpus BLEU-4, 0-100.
    precisions (`list[float]`): the four modified n-gram precisions, 0-100.
    brevity_penalty (`float`), length_ratio (`float`), translation_length (`int`), reference_length (`int`).
Example:
    >>> bleu = evaluate.load("src/univigu/evaluation/metrics/bleu")
    >>> bleu.compute(predictions=["a red circle moving left"], references=[["a red circle moving left"]])["bleu"]
    100.00000000000004
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
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
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            reference_urls=["https://en.wikipedia.org/wiki/BLEU"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp"):
        references = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
        if any(len(refs) == 0 for refs in references):
            raise ValueError("Every prediction needs at least one reference.")
        # sacrebleu takes reference *streams* (the i-th reference of every sample); `None` pads samples that have
        # fewer references than the others.
        num_streams = max(len(refs) for refs in references)
        streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(num_streams)]
        metric = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
        output = metric.corpus_score(list(predictions), streams)
        return {
            "bleu": float(output.score),
            "precisions": [float(p) for p in output.precisions],
            "brevity_penalty": float(output.bp),
            "length_ratio": float(output.ratio),
            "translation_length": int(output.sys_len),
            "reference_length": int(output.ref_len),
        }
