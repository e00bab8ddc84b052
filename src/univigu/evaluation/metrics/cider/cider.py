# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""CIDEr-D, written from the paper, as a local 🤗 evaluate module (no Hub, no Java tokenizer, no pycocoevalcap).

Keep one import per line in this file: evaluate's import scanner misreads `import a, b`.
"""

import math
import re
from collections import Counter

import datasets
import evaluate


_DESCRIPTION = """\
CIDEr-D (Vedantam et al., 2015), the captioning metric of the MS-COCO evaluation server.

Each sentence becomes, for n = 1..4, a vector of n-gram counts weighted by tf-idf, where the document frequency of
an n-gram is the number of samples whose references contain it (so idf is computed over the references of the
whole batch: score a whole test set at once, not one sample). Per n, the score is the cosine similarity between
prediction and reference vectors with the prediction's counts clipped to the reference's ("-D"), multiplied by the
Gaussian length penalty exp(-(l_pred - l_ref)^2 / (2 sigma^2)), sigma = 6. Scores are averaged over n, over the
references of a sample, and over samples, and multiplied by 10 (so an exact match of distinctive text scores 10).

Tokenization: lowercase, words of letters and digits; punctuation is dropped (as the COCO PTB tokenizer does).
The length is the number of tokens of the sentence; the COCO reference code counts bigrams instead, which gives the
same length difference for every sentence of two words or more.
N-grams shared by the references of every sample get zero idf weight: with a batch of one sample, CIDEr is 0.
"""

_CITATION = """\
@inproceedings{vedantam2015cider,
    title = {CIDEr: Consensus-based Image Description Evaluation},
    author = {Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi},
    booktitle = {Proceedings of CVPR},
    year = {2015},
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): one generated text per sample.
    references (`list[str]` or `list[list[str]]`): one or several reference texts per sample.
    n (`int`, defaults to 4): largest n-gram order.
    sigma (`float`, defaults to 6.0): standard deviation of the Gaussian length penalty.
Returns:
    cider (`float`): corpus CIDEr-D (mean over samples), 0-10 for exact matches of distinctive text.
    cider_per_sample (`list[float]`): the score of each sample.
Example:
    >>> cider = evaluate.load("src/univigu/evaluation/metrics/cider")
    >>> cider.compute(predictions=["a b", "c e"], references=["a b", "c d"])["cider"]
    3.125
"""

_TOKEN_PATTERN = re.compile(r"[a-z0-9]+")


def tokenize(text):
    return _TOKEN_PATTERN.findall(text.lower())


def ngram_counts(tokens, n):
    counts = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i : i + k])] += 1
    return counts


def tfidf_vectors(counts, document_frequency, log_num_documents, n):
    """Per order, the tf-idf vector of `counts` and its norm. Unseen n-grams get document frequency 1."""
    vectors = [{} for _ in range(n)]
    norms = [0.0] * n
    for ngram, term_frequency in counts.items():
        weight = term_frequency * (log_num_documents - math.log(max(1.0, document_frequency.get(ngram, 0.0))))
        vectors[len(ngram) - 1][ngram] = weight
        norms[len(ngram) - 1] += weight * weight
    return vectors, [math.sqrt(norm) for norm in norms]


def similarity(prediction, reference, n, sigma):
    """Clipped cosine similarity per n-gram order, times the Gaussian length penalty."""
    (vec_p, norm_p, len_p), (vec_r, norm_r, len_r) = prediction, reference
    penalty = math.exp(-((len_p - len_r) ** 2) / (2.0 * sigma**2))
    values = []
    for k in range(n):
        value = 0.0
        for ngram, weight in vec_p[k].items():
            reference_weight = vec_r[k].get(ngram, 0.0)
            value += min(weight, reference_weight) * reference_weight
        if norm_p[k] != 0.0 and norm_r[k] != 0.0:
            value /= norm_p[k] * norm_r[k]
        values.append(value * penalty)
    return values


def cider_d(predictions, references, n=4, sigma=6.0):
    """CIDEr-D of each sample; `references` is a list of lists of strings."""
    reference_tokens = [[tokenize(ref) for ref in refs] for refs in references]
    reference_counts = [[ngram_counts(tokens, n) for tokens in refs] for refs in reference_tokens]
    document_frequency = Counter()
    for refs in reference_counts:
        document_frequency.update({ngram for counts in refs for ngram in counts})
    log_num_documents = math.log(float(len(references))) if references else 0.0

    scores = []
    for prediction, refs_tokens, refs_counts in zip(predictions, reference_tokens, reference_counts):
        tokens = tokenize(prediction)
        vec, norm = tfidf_vectors(ngram_counts(tokens, n), document_frequency, log_num_documents, n)
        total = [0.0] * n
        for ref_tokens, ref_counts in zip(refs_tokens, refs_counts):
            vec_r, norm_r = tfidf_vectors(ref_counts, document_frequency, log_num_documents, n)
            values = similarity((vec, norm, len(tokens)), (vec_r, norm_r, len(ref_tokens)), n, sigma)
            total = [t + v for t, v in zip(total, values)]
        scores.append(10.0 * (sum(total) / n) / len(refs_counts))
    return scores


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Cider(evaluate.Metric):
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
            reference_urls=["https://arxiv.org/abs/1411.5726"],
        )

    def _compute(self, predictions, references, n=4, sigma=6.0):
        references = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
        if any(len(refs) == 0 for refs in references):
            raise ValueError("Every prediction needs at least one reference.")
        scores = cider_d(list(predictions), references, n=n, sigma=sigma)
        return {"cider": float(sum(scores) / len(scores)) if scores else 0.0, "cider_per_sample": scores}
