from collections import Counter

import numpy as np
import pytest

from nerwin.decode import spans
from nerwin.metrics import (
    binary_scores,
    confusion,
    entity_scores,
    evaluate_tags,
    format_report,
    token_accuracy,
)

# Gold spans: PER(0,2) LOC(3,4) | ORG(0,1) PER(2,4)                 -> 4 gold
# Pred spans: PER(0,2)          | ORG(0,1) PER(3,4) (stray I after O) -> 3 predicted
# Correct: PER(0,2), ORG(0,1) -> P = 2/3, R = 2/4, F1 = 4/7
GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["B-ORG", "O", "B-PER", "I-PER", "O"],
]
PRED = [
    ["B-PER", "I-PER", "O", "O"],
    ["B-ORG", "O", "O", "I-PER", "O"],
]


def test_entity_scores_by_hand():
    scores = entity_scores(GOLD, PRED)
    assert list(scores["per_type"]) == ["LOC", "ORG", "PER"]
    loc, org, per = (scores["per_type"][t] for t in ["LOC", "ORG", "PER"])
    assert loc == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # 0 predicted
    assert org == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per["precision"] == pytest.approx(1 / 2)  # PER(0,2) right, PER(3,4) wrong
    assert per["recall"] == pytest.approx(1 / 2)
    assert per["f1"] == pytest.approx(1 / 2)
    assert per["support"] == 2
    micro = scores["micro"]
    assert micro["precision"] == pytest.approx(2 / 3)
    assert micro["recall"] == pytest.approx(2 / 4)
    assert micro["f1"] == pytest.approx(4 / 7)
    assert micro["support"] == 4
    macro = scores["macro"]
    assert macro["precision"] == pytest.approx((0 + 1 + 1 / 2) / 3)
    assert macro["recall"] == pytest.approx((0 + 1 + 1 / 2) / 3)
    assert macro["f1"] == pytest.approx((0 + 1 + 1 / 2) / 3)
    assert macro["support"] == 4


def test_entity_scores_types_are_python_numbers():
    scores = entity_scores(GOLD, PRED)
    for row in [*scores["per_type"].values(), scores["micro"], scores["macro"]]:
        assert type(row["support"]) is int
        assert all(type(row[key]) is float for key in ["precision", "recall", "f1"])


def test_stray_inside_tag_counts_as_an_entity_like_conlleval():
    # gold O I-PER: conlleval reads PER(1,2); the same stray prediction is correct
    scores = entity_scores([["O", "I-PER", "O"]], [["O", "I-PER", "O"]])
    assert scores["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    # a stray I-PER predicted over nothing is a false positive
    scores = entity_scores([["O", "O"]], [["O", "I-PER"]])
    assert scores["per_type"]["PER"]["support"] == 0
    assert scores["micro"]["precision"] == 0.0


def test_type_only_predicted_has_zero_support():
    scores = entity_scores([["B-PER", "O"]], [["B-PER", "B-MISC"]])
    assert scores["per_type"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["micro"]["precision"] == pytest.approx(1 / 2)
    assert scores["micro"]["recall"] == pytest.approx(1.0)


def test_entity_scores_without_any_entity_are_zero():
    scores = entity_scores([["O", "O"]], [["O", "O"]])
    assert scores["per_type"] == {}
    assert scores["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["macro"] == scores["micro"]


def counted_micro_scores(gold, pred) -> tuple[float, float]:
    """Micro P and R from our own span reading, independent of seqeval."""
    gold_spans = Counter((i, *span) for i, s in enumerate(gold) for span in spans(s))
    pred_spans = Counter((i, *span) for i, s in enumerate(pred) for span in spans(s))
    correct = sum((gold_spans & pred_spans).values())
    precision = correct / sum(pred_spans.values()) if pred_spans else 0.0
    recall = correct / sum(gold_spans.values()) if gold_spans else 0.0
    return precision, recall


def test_seqeval_agrees_with_independent_span_counting_on_random_tags():
    tag_set = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(1, 12, size=4)
        gold = [list(rng.choice(tag_set, size=n)) for n in lengths]
        pred = [list(rng.choice(tag_set, size=n)) for n in lengths]
        if not any(spans(s) for s in gold + pred):
            continue
        micro = entity_scores(gold, pred)["micro"]
        precision, recall = counted_micro_scores(gold, pred)
        assert micro["precision"] == pytest.approx(precision)
        assert micro["recall"] == pytest.approx(recall)


# --- binary -----------------------------------------------------------------------------------


def test_binary_scores_by_hand():
    gold_is_entity = np.array([True, True, False, False, True])
    p_entity = np.array([0.9, 0.4, 0.6, 0.1, 0.5])  # 0.5 is not > 0.5
    scores = binary_scores(gold_is_entity, p_entity)
    assert (scores["tp"], scores["fp"], scores["fn"], scores["support"]) == (1, 1, 2, 3)
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 / 5)


def test_binary_scores_threshold():
    scores = binary_scores(np.array([True, False]), np.array([0.3, 0.2]), threshold=0.25)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 0)
    assert scores["f1"] == 1.0


def test_binary_scores_zero_division_is_zero():
    scores = binary_scores(np.zeros(3, dtype=bool), np.zeros(3))
    assert scores["precision"] == scores["recall"] == scores["f1"] == 0.0
    assert scores["support"] == 0


def test_binary_scores_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        binary_scores(np.zeros(3, dtype=bool), np.zeros(4))


# --- confusion --------------------------------------------------------------------------------


def test_confusion_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER", "I-PER", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O", "I-PER", "O"]]
    result = confusion(gold, pred)
    assert result["labels"] == ["LOC", "ORG", "PER", "O"]
    assert result["matrix"] == [
        # LOC ORG PER O   (predicted)
        [0, 1, 0, 0],  # gold LOC(3,4) predicted ORG
        [0, 1, 0, 0],  # gold ORG(0,1) right
        [0, 0, 1, 1],  # gold PER(0,2) right, PER(2,4) missed (pred PER(3,4) differs)
        [0, 0, 1, 0],  # spurious PER(3,4)
    ]


def test_confusion_without_entities():
    assert confusion([["O"]], [["O"]]) == {"labels": ["O"], "matrix": [[0]]}


# --- evaluate_tags and format_report ----------------------------------------------------------


def test_token_accuracy():
    assert token_accuracy(GOLD, PRED) == pytest.approx(7 / 9)  # tokens 3 and 6 differ
    assert token_accuracy([], []) == 0.0


def test_evaluate_tags_derives_gold_entities_from_tags():
    p_entity = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.9, 0.1])
    result = evaluate_tags(GOLD, PRED, p_entity=p_entity)
    assert set(result) == {"entity", "confusion", "accuracy", "binary"}
    # gold entity tokens: 0, 1, 3, 4, 6, 7; predicted: 0, 1, 4, 7
    binary = result["binary"]
    assert (binary["tp"], binary["fp"], binary["fn"]) == (4, 0, 2)
    assert "binary" not in evaluate_tags(GOLD, PRED)


def test_format_report_rows():
    p_entity = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.9, 0.1])
    report = format_report(evaluate_tags(GOLD, PRED, p_entity=p_entity))
    lines = report.splitlines()
    assert lines[0].split() == ["type", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["LOC", "0.00", "0.00", "0.00", "1"]
    assert lines[2].split() == ["ORG", "100.00", "100.00", "100.00", "1"]
    assert lines[3].split() == ["PER", "50.00", "50.00", "50.00", "2"]
    assert lines[4].split() == ["micro", "avg", "66.67", "50.00", "57.14", "4"]
    assert lines[5].split() == ["macro", "avg", "50.00", "50.00", "50.00", "4"]
    assert "token accuracy: 77.78" in report
    assert "entity detection (P(entity) > 0.5): P 100.00  R 66.67  F1 80.00" in report
    table = lines[lines.index(next(line for line in lines if line.startswith("gold"))) :]
    assert table[0].split()[-4:] == ["LOC", "ORG", "PER", "O"]
    assert table[3].split() == ["PER", "0", "0", "1", "1"]
    assert table[4].split() == ["O", "0", "0", "1", "0"]
    assert len({len(line) for line in table}) == 1  # aligned columns


def test_format_report_without_binary():
    report = format_report(evaluate_tags(GOLD, PRED))
    assert "entity detection" not in report
