# Copyright 2025 The univigu authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The bundled caption metrics load offline through evaluate and compute the numbers worked out by hand below."""

import re

import pytest

from univigu.evaluation import AVAILABLE_METRICS, METRICS_DIR, compute_caption_metrics, load_metric, metric_path
from univigu.toyworld import sample_scenes, scene_to_caption, scene_to_prompt


pytest.importorskip("evaluate")

PREDICTION = "a red circle moving left and a blue square staying still"
REFERENCE = "a red circle moving left and a blue square moving up"


@pytest.fixture(scope="module")
def captions():
    scenes = sample_scenes(40, split="test", seed=0)
    return [scene_to_caption(s) for s in scenes], [scene_to_prompt(s) for s in scenes], scenes


def test_modules_are_local_and_scanner_safe():
    for name in AVAILABLE_METRICS:
        script = METRICS_DIR / name / f"{name}.py"
        assert script.is_file()
        for line in script.read_text().splitlines():
            # evaluate's import scanner misreads `import a, b`.
            assert not re.match(r"^import\s+[^#]*,", line), line


def test_evaluate_load_by_path_offline(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in AVAILABLE_METRICS:
        module = evaluate.load(metric_path(name), keep_in_memory=True)
        assert isinstance(module, evaluate.Metric)
        assert module.name == name
    with pytest.raises(ValueError, match="Unknown metric"):
        metric_path("meteor")


def test_identical_captions(captions):
    texts, _, _ = captions
    scores = compute_caption_metrics(texts, texts)
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["rougeL"] == pytest.approx(1.0)
    # Every n-gram order of every caption has distinctive n-grams here, so identical texts score the maximum.
    assert scores["cider"] == pytest.approx(10.0)


def test_unrelated_captions(captions):
    texts, _, _ = captions
    unrelated = ["zebra xylophone quantum orbit" for _ in texts]
    scores = compute_caption_metrics(unrelated, texts)
    assert scores["bleu"] < 1.0 and scores["rougeL"] == 0.0 and scores["cider"] == 0.0


def test_bleu_by_hand():
    # Clipped n-gram matches: 9/11 unigrams, 8/10 bigrams, 7/9 trigrams, 6/8 4-grams; equal lengths, so BP = 1.
    output = load_metric("bleu").compute(predictions=[PREDICTION], references=[[REFERENCE]])
    expected = 100.0 * (9 / 11 * 8 / 10 * 7 / 9 * 6 / 8) ** 0.25
    assert output["bleu"] == pytest.approx(expected)
    assert output["precisions"] == pytest.approx([900 / 11, 80.0, 700 / 9, 75.0])
    assert output["brevity_penalty"] == 1.0
    # A sample may have more references than another; the best-matching one counts.
    output = load_metric("bleu").compute(
        predictions=[PREDICTION, "a b c d"], references=[[REFERENCE, PREDICTION], ["a b c d"]]
    )
    assert output["bleu"] == pytest.approx(100.0)


def test_rouge_by_hand():
    # The longest common subsequence is "a red circle moving left and a blue square": 9 of 11 tokens on each side.
    output = load_metric("rouge").compute(predictions=[PREDICTION], references=[REFERENCE])
    assert output["rougeL"] == pytest.approx(9 / 11)
    assert output["rougeL_precision"] == pytest.approx(9 / 11) and output["rougeL_recall"] == pytest.approx(9 / 11)


def test_cider_by_hand():
    # Two samples, so every reference n-gram has idf log(2) - log(1) = log(2), and so has an unseen n-gram.
    # Sample 1 is exact: cosine 1 for unigrams and bigrams, no 3-/4-grams -> 10 * (1 + 1 + 0 + 0) / 4 = 5.
    # Sample 2 ("c e" vs "c d"): unigram cosine 1/2, no shared bigram -> 10 * 0.5 / 4 = 1.25. Mean: 3.125.
    output = load_metric("cider").compute(predictions=["a b", "c e"], references=["a b", "c d"])
    assert output["cider_per_sample"] == pytest.approx([5.0, 1.25])
    assert output["cider"] == pytest.approx(3.125)
    # Length penalty: one extra token costs exp(-1 / 72) at every order.
    output = load_metric("cider").compute(predictions=["a b b", "c d"], references=["a b", "c d"])
    assert output["cider_per_sample"][1] == pytest.approx(5.0)
    assert output["cider_per_sample"][0] < 5.0
    # A corpus of one sample gives every n-gram zero idf weight.
    assert load_metric("cider").compute(predictions=["a b"], references=["a b"])["cider"] == 0.0


def test_shapesworld_metric(captions):
    texts, prompts, scenes = captions
    metric = load_metric("shapesworld")
    output = metric.compute(predictions=["a red square moving left"], references=["a red circle moving left"])
    assert output["attribute_accuracy"] == pytest.approx(2 / 3) and output["object_exact_match"] == 0.0
    output = metric.compute(predictions=texts, references=[s.to_json() for s in scenes], detailed=True)
    assert output["detailed_exact_match"] == 1.0 and output["held_out/object_exact_match"] == 1.0
    # A prompt states colour, shape and motion: full marks on those even against the detailed caption.
    scores = compute_caption_metrics(prompts, texts, shapesworld=True)
    assert scores["shapesworld/object_exact_match"] == 1.0 and scores["bleu"] < 50.0
