"""Task types: label parsing errors, label spaces, targets, masked losses, decoding, registry."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from polytask.data.example import Example
from polytask.errors import ConfigError, DataError
from polytask.tasks import (
    TASK_TYPES,
    MultiLabel,
    Regression,
    SequenceClassification,
    TokenClassification,
    build_task,
)

ORIGIN = "data/train.jsonl:17"


def _examples(task: str, labels: list[object]) -> list[Example]:
    return [Example(tokens=["t"], labels={} if label is None else {task: label}) for label in labels]


def _json_round_trip(task, fresh):  # type: ignore[no-untyped-def]
    fresh.labels_from_json(json.loads(json.dumps(task.labels_to_json())))
    return fresh


# --- token classification ----------------------------------------------------------------
def _ner() -> TokenClassification:
    task = TokenClassification("ner", scheme="bio")
    task.fit_labels(_examples("ner", [["B-PER", "I-PER", "O"], None, ["B-LOC", "O"]]))
    return task


def test_token_label_space_is_sorted_and_round_trips() -> None:
    task = _ner()
    assert task.labels_to_json() == {"labels": ["B-LOC", "B-PER", "I-PER", "O"]}
    restored = _json_round_trip(task, TokenClassification("ner", scheme="bio"))
    assert restored.output_size == 4
    labels = [["O", "B-LOC"], None]
    assert all(torch.equal(a, b) for a, b in zip(task.encode_targets(labels, 3), restored.encode_targets(labels, 3)))


def test_token_parse_label_errors_name_file_and_line() -> None:
    task = TokenClassification("ner", scheme="iob2")
    assert task.parse_label(["B-PER", "O"], ORIGIN) == ["B-PER", "O"]
    for raw, message in [("B-PER O", "list of strings"), (["O", ""], "tag 1"), (["O", "S-PER"], "token 1")]:
        with pytest.raises(DataError, match=message) as caught:
            task.parse_label(raw, ORIGIN)
        assert str(caught.value).startswith("data/train.jsonl:17: ")
        assert (caught.value.file, caught.value.line) == ("data/train.jsonl", 17)
    with pytest.raises(DataError, match="2 tags for 3 tokens"):
        task.check_label(["O", "O"], ["a", "b", "c"], ORIGIN)
    assert TokenClassification("pos").parse_label(["NN", "S-X"], ORIGIN) == ["NN", "S-X"]


def test_token_targets_pad_ignore_unlabelled_and_unknown() -> None:
    task = _ner()
    targets, labelled = task.encode_targets([["B-PER", "I-PER"], None, ["B-MISC", "O", "O", "O"]], 3)
    assert targets.tolist() == [[1, 2, -100], [-100, -100, -100], [-100, 3, 3]]
    assert labelled.tolist() == [True, False, True]
    assert task.unknown_labels([["B-MISC", "O"], None]) == {"B-MISC"}


def test_token_loss_is_mean_over_labelled_tokens_and_ignores_the_rest() -> None:
    task = _ner()
    targets, labelled = task.encode_targets([["B-PER", "I-PER", "O"], ["O", "O", "O"], ["B-LOC"]], 3)
    labelled[1] = False  # a labelled row the mask marks unlabelled must not count either
    logits = torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = task.loss(logits, targets, labelled)
    expected = F.cross_entropy(torch.cat([logits[0], logits[2, :1]]), torch.tensor([1, 2, 3, 0]))
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert torch.all(logits.grad[1] == 0)  # unlabelled example
    assert torch.all(logits.grad[2, 1:] == 0)  # padding
    assert torch.all(logits.grad[0].abs().sum(-1) > 0)

    none_labelled = task.loss(logits, targets, torch.zeros(3, dtype=torch.bool))
    assert none_labelled.item() == 0.0 and none_labelled.requires_grad


def test_token_decode_round_trips_targets() -> None:
    task = _ner()
    sentences = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    targets, _ = task.encode_targets(sentences, 3)
    logits = F.one_hot(targets.clamp(min=0), 4).float()
    assert task.decode(logits, [3, 1]) == sentences
    probabilities = task.probabilities(logits, [3, 1])
    assert [len(row) for row in probabilities] == [3, 1]
    assert sum(probabilities[1][0].values()) == pytest.approx(1.0)


def test_token_metrics_and_primary() -> None:
    task = _ner()
    gold = [["B-PER", "I-PER", "O"], None, ["B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O"], ["O"], ["B-LOC", "O"]]
    scores = task.metrics(gold, pred)
    assert scores["accuracy"] == pytest.approx(80.0)  # the unknown gold tag B-MISC counts as wrong
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((50.0, 50.0, 50.0))
    assert task.primary_metric == "f1" and set(task.metric_directions) == set(scores)
    plain = TokenClassification("pos")
    assert plain.primary_metric == "accuracy" and plain.metric_directions == {"accuracy": True}
    assert plain.metrics([["NN", "VB"]], [["NN", "NN"]]) == {"accuracy": 50.0}


# --- sequence classification -------------------------------------------------------------
def test_sequence_parse_label() -> None:
    task = SequenceClassification("sentiment")
    assert [task.parse_label(raw, ORIGIN) for raw in ("pos", 3, True, False)] == ["pos", "3", "true", "false"]
    for raw in (1.5, None, "  ", ["pos"]):
        with pytest.raises(DataError, match="data/train.jsonl:17: task 'sentiment'"):
            task.parse_label(raw, ORIGIN)


def test_sequence_targets_loss_and_decoding() -> None:
    task = SequenceClassification("sentiment")
    task.fit_labels(_examples("sentiment", ["pos", None, "neg", "pos"]))
    restored = _json_round_trip(task, SequenceClassification("sentiment"))
    assert restored.labels_to_json() == {"labels": ["neg", "pos"]} and restored.output_size == 2

    targets, labelled = task.encode_targets(["pos", None, "neutral", "neg"], 0)
    assert targets.tolist() == [1, -100, -100, 0] and labelled.tolist() == [True, False, True, True]
    logits = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), requires_grad=True)
    loss = task.loss(logits, targets, labelled)
    assert loss.item() == pytest.approx(F.cross_entropy(logits[[0, 3]], torch.tensor([1, 0])).item())
    loss.backward()
    assert torch.all(logits.grad[1] == 0) and torch.all(logits.grad[2] == 0)

    assert task.decode(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), [1, 1]) == ["pos", "neg"]
    (probs,) = task.probabilities(torch.tensor([[0.0, 0.0]]), [1])
    assert probs == {"neg": 0.5, "pos": 0.5}
    assert task.unknown_labels(["neutral", None, "pos"]) == {"neutral"}


def test_sequence_metrics() -> None:
    task = SequenceClassification("sentiment")
    scores = task.metrics(["a", "a", None, "b"], ["a", "b", "a", "b"])
    assert scores == pytest.approx({"accuracy": 200 / 3, "macro_f1": 100 * (2 / 3 + 2 / 3) / 2})
    assert task.primary_metric == "accuracy"


# --- regression ----------------------------------------------------------------------------
def test_regression_parse_label() -> None:
    task = Regression("score")
    assert task.parse_label(3, ORIGIN) == 3.0 and task.parse_label(" 2.5 ", ORIGIN) == 2.5
    for raw in ("high", True, None, float("nan"), "inf", [1.0]):
        with pytest.raises(DataError, match="not a number") as caught:
            task.parse_label(raw, ORIGIN)
        assert (caught.value.file, caught.value.line) == ("data/train.jsonl", 17)


def test_regression_normalisation_round_trip() -> None:
    task = Regression("score")
    task.fit_labels(_examples("score", [1.0, None, 2.0, 3.0, 6.0]))
    mean, std = 3.0, math.sqrt((4 + 1 + 0 + 9) / 4)
    assert task.labels_to_json() == pytest.approx({"mean": mean, "std": std})
    restored = _json_round_trip(task, Regression("score"))

    values = [1.0, 2.0, 3.0, 6.0]
    targets, _labelled = restored.encode_targets(values, 0)
    assert targets.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert targets.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)
    assert restored.decode(targets[:, None], [1] * 4) == pytest.approx(values, rel=1e-6)

    raw = Regression("score", normalize=False)
    raw.fit_labels(_examples("score", [10.0, 20.0]))
    assert raw.encode_targets([10.0], 0)[0].tolist() == [10.0] and raw.labels_to_json() == {"mean": 0.0, "std": 1.0}
    constant = Regression("score")
    constant.fit_labels(_examples("score", [4.0, 4.0]))
    assert constant.labels_to_json() == {"mean": 4.0, "std": 1.0}


def test_regression_loss_and_metrics() -> None:
    task = Regression("score", normalize=False)
    task.fit_labels(_examples("score", [0.0, 1.0]))
    targets, labelled = task.encode_targets([1.0, None, 3.0], 0)
    logits = torch.tensor([[0.0], [5.0], [1.0]], requires_grad=True)
    loss = task.loss(logits, targets, labelled)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert logits.grad[1].item() == 0.0 and logits.grad[0].item() != 0.0
    scores = task.metrics([1.0, None, 3.0], [0.0, 9.0, 1.0])
    assert scores == pytest.approx({"mse": 2.5, "mae": 1.5, "pearson": 1.0})
    assert task.primary_metric == "mse" and task.metric_directions == {"mse": False, "mae": False, "pearson": True}


# --- multi-label ---------------------------------------------------------------------------
def test_multilabel_parse_label() -> None:
    task = MultiLabel("topics")
    assert task.parse_label("sport, politics", ORIGIN) == ["politics", "sport"]
    assert task.parse_label("", ORIGIN) == [] and task.parse_label(["b", "a", "b"], ORIGIN) == ["a", "b"]
    assert MultiLabel("topics", separator="|").parse_label("a|b,c", ORIGIN) == ["a", "b,c"]
    assert task.parse_label(["a", 1], ORIGIN) == ["1", "a"]  # an integer class id is its digits (no label_names)
    for raw in ("a,,b", 3, ["a", 1.5]):
        with pytest.raises(DataError, match="data/train.jsonl:17: task 'topics'"):
            task.parse_label(raw, ORIGIN)


@pytest.mark.parametrize("raw, mark", [("a;b", "';'"), ("a|b", "'|'"), ("sport politics", "' '"), ("a\tb", "'\\t'")])
def test_multilabel_refuses_another_separator_under_the_default(raw: str, mark: str) -> None:
    with pytest.raises(DataError) as caught:
        MultiLabel("topics").parse_label(raw, ORIGIN)
    assert str(caught.value) == (f"data/train.jsonl:17: task 'topics': class {raw!r} holds {mark}, but labels are "
                                 f"split on ','; set tasks.topics.options.separator to {mark} (or to ',' to keep "
                                 f"{raw!r} as one class)")


def test_multilabel_an_explicit_separator_is_taken_as_given() -> None:
    assert MultiLabel("topics", separator=";").parse_label("a;b", ORIGIN) == ["a", "b"]
    assert MultiLabel("topics", separator=",").parse_label("a;b, c", ORIGIN) == ["a;b", "c"]
    assert MultiLabel("topics").parse_label(["a;b"], ORIGIN) == ["a;b"]  # a JSON list is not split or checked


def test_multilabel_targets_loss_decoding_and_metrics() -> None:
    task = MultiLabel("topics", threshold=0.6)
    task.fit_labels(_examples("topics", [["b", "a"], [], None, ["c"]]))
    assert _json_round_trip(task, MultiLabel("topics")).labels_to_json() == {"labels": ["a", "b", "c"]}

    targets, labelled = task.encode_targets([["a", "zzz"], None, []], 0)
    assert targets.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]] and labelled.tolist() == [True, False, True]
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(2), requires_grad=True)
    loss = task.loss(logits, targets, labelled)
    expected = F.binary_cross_entropy_with_logits(logits[[0, 2]], targets[[0, 2]])
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert torch.all(logits.grad[1] == 0)

    p = torch.logit(torch.tensor([[0.7, 0.5, 0.2]]))
    assert task.decode(p, [1]) == [["a"]]
    assert task.probabilities(p, [1])[0] == pytest.approx({"a": 0.7, "b": 0.5, "c": 0.2})
    scores = task.metrics([["a"], None, ["b", "c"]], [["a"], [], ["b"]])
    assert scores == pytest.approx({"micro_f1": 100 * 4 / 5, "exact_match": 50.0})
    assert task.primary_metric == "micro_f1"


# --- registry and model selection ------------------------------------------------------------
def test_registry_and_build_task_errors() -> None:
    assert all(name == cls.type_name for name, cls in TASK_TYPES.items())
    assert isinstance(build_task("regression", "score", normalize=False), Regression)
    assert build_task("token_classification", "ner", scheme="bioes").scheme == "iobes"
    for type_name, options, message, field in [
        ("tagger", {}, "unknown task type 'tagger'", "type"),
        ("regression", {"normalise": True}, "unknown option", "options"),
        ("token_classification", {"scheme": "iob3"}, "unknown tagging scheme", "options"),
        ("multilabel", {"threshold": 1.5}, "threshold", "options"),
        ("regression", {"normalize": "yes"}, "normalize", "options"),
    ]:
        with pytest.raises(ConfigError, match=message) as caught:
            build_task(type_name, "t1", **options)
        assert caught.value.field == f"tasks.t1.{field}"
