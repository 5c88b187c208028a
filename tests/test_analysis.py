import doctest
import json

import numpy as np
import pytest

from nerwin import analysis
from nerwin.analysis import (
    calibration,
    explain,
    format_calibration,
    format_errors,
    format_explanation,
    mark_span,
    span_confidences,
    worst_errors,
)

# Two sentences tagged by a made-up model; p_tag columns follow LABELS.
#   sentence 0: gold PER(0,1) LOC(2,3);  pred PER(0,1) PER(2,3)
#   sentence 1: gold PER(0,2);           pred PER(0,1)
# Span probabilities (span_confidence: P(B-X at start) * P(I-X inside) * (1 - P(I-X after))):
#   s0 PER(0,1) = 0.9 * (1 - 0.2) = 0.72   predicted, right
#   s0 PER(2,3) = 0.6                     predicted, wrong (false positive; gold LOC there)
#   s0 LOC(2,3) = 0.4                     gold, missed (false negative)
#   s1 PER(0,1) = 1.0 * (1 - 0.5) = 0.5   predicted, wrong (false positive)
#   s1 PER(0,2) = 1.0 * 0.5 * (1 - 0.1) = 0.45   gold, missed (false negative)
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
TOKENS = [["Peter", "visits", "Paris"], ["John", "Smith", "left"]]
GOLD = [["B-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O"]]
PRED = [["B-PER", "O", "B-PER"], ["B-PER", "O", "O"]]
P_TAG = [
    np.array(
        [
            [0.1, 0.0, 0.0, 0.9, 0.0],
            [0.8, 0.0, 0.0, 0.0, 0.2],
            [0.0, 0.4, 0.0, 0.6, 0.0],
        ]
    ),
    np.array(
        [
            [0.0, 0.0, 0.0, 1.0, 0.0],
            [0.5, 0.0, 0.0, 0.0, 0.5],
            [0.9, 0.0, 0.0, 0.0, 0.1],
        ]
    ),
]
P_ENT = [np.array([0.9, 0.3, 0.8]), np.array([0.95, 0.6, 0.05])]
LINES = [3, 7]  # Sentence.line: the file line of each sentence's first token


# --- calibration ------------------------------------------------------------------------------


def test_calibration_by_hand():
    # bin 0: 0.05 (wrong)                -> gap |0 - 0.05| = 0.05, 1 item
    # bin 1: 0.15 (wrong), 0.12 (right)  -> gap |1/2 - 0.135| = 0.365, 2 items
    # bin 9: 0.95, 0.91 (right), 1.0 (wrong; 1.0 falls in the last bin) -> |2/3 - 2.86/3|, 3 items
    # ECE = (0.05 + 2 * 0.365 + 3 * 0.86 / 3) / 6 = 1.64 / 6
    result = calibration(
        [0.05, 0.15, 0.12, 0.95, 0.91, 1.0], [False, False, True, True, True, False]
    )
    assert result["ece"] == pytest.approx(1.64 / 6)
    assert result["count"] == 6
    assert [row["count"] for row in result["bins"]] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 3]
    assert result["bins"][1] == pytest.approx(
        {"lo": 0.1, "hi": 0.2, "count": 2, "mean_confidence": 0.135, "accuracy": 0.5}
    )
    assert result["bins"][2]["mean_confidence"] is None
    assert result["bins"][2]["accuracy"] is None


def test_calibration_bin_edges_belong_to_the_upper_bin():
    result = calibration([0.0, 0.1, 0.3, 0.5], [True] * 4, bins=2)
    assert [row["count"] for row in result["bins"]] == [3, 1]
    assert result["bins"][1]["lo"] == 0.5


def test_calibration_of_nothing():
    result = calibration(np.zeros(0), np.zeros(0, dtype=bool))
    assert result["ece"] == 0.0
    assert sum(row["count"] for row in result["bins"]) == 0


def test_calibration_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        calibration([0.5, 0.5], [True])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration([1.5], [True])


def test_span_confidences_by_hand():
    confidence, correct = span_confidences(GOLD, PRED, P_TAG, LABELS)
    assert confidence == pytest.approx([0.72, 0.6, 0.5])
    assert correct.tolist() == [True, False, False]


def test_span_confidence_of_a_type_without_labels_is_zero():
    confidence, correct = span_confidences([["B-MISC"]], [["B-MISC"]], [np.ones((1, 5))], LABELS)
    assert confidence.tolist() == [0.0]
    assert correct.tolist() == [True]


def test_format_calibration():
    # bins 5, 6, 7 hold 0.5 (wrong), 0.6 (wrong), 0.72 (right): ECE = (0.5 + 0.6 + 0.28) / 3
    text = format_calibration(calibration([0.72, 0.6, 0.5], [True, False, False]), "spans")
    lines = text.splitlines()
    assert lines[0] == "spans: ECE 0.4600 over 3"
    assert lines[1] == "bin          count  confidence  observed"
    assert lines[2] == "0.00-0.10        0           -         -"
    assert lines[9] == "0.70-0.80        1       0.720     1.000"
    assert len(lines) == 12
    assert format_calibration(calibration([], []), "spans").splitlines()[0] == (
        "spans: ECE n/a over 0"
    )


# --- worst errors -----------------------------------------------------------------------------


def test_mark_span():
    tokens = ["He", "visits", "the", "European", "Union", "."]
    assert mark_span(tokens, ("ORG", 3, 5)) == "He visits the [ORG European Union] ."
    assert mark_span(tokens, ("ORG", 3, 5), width=1) == "... the [ORG European Union] ."
    assert mark_span(tokens, ("PER", 0, 1), width=2) == "[PER He] visits the ..."


def test_worst_errors_by_hand():
    errors = worst_errors(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS, k=2, lines=LINES)
    false_positives, false_negatives = errors["false_positives"], errors["false_negatives"]
    # false positives, most confident first: s0 PER(2,3) 0.6, s1 PER(0,1) 0.5
    assert [(e["line"], e["start"], e["end"]) for e in false_positives] == [
        (5, 2, 3),  # the sentence at line 3, its token 2
        (7, 0, 1),
    ]
    assert false_positives[0] == {  # 0.6 and 0.8 are read, not computed: exact
        "line": 5,
        "start": 2,
        "end": 3,
        "type": "PER",
        "text": "Paris",
        "other_types": ["LOC"],
        "probability": 0.6,
        "p_entity": [0.8],
        "context": "Peter visits [PER Paris]",
    }
    # false negatives, least probable first: s0 LOC(2,3) 0.4, s1 PER(0,2) 0.45
    assert [e["probability"] for e in false_negatives] == pytest.approx([0.4, 0.45])
    assert false_negatives[1]["context"] == "[PER John Smith] left"
    assert false_negatives[1]["other_types"] == ["PER"]  # predicted PER(0,1) overlaps it
    assert false_negatives[1]["p_entity"] == pytest.approx([0.95, 0.6])


def test_worst_errors_keeps_k():
    errors = worst_errors(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS, k=1)
    assert [e["probability"] for e in errors["false_positives"]] == pytest.approx([0.6])
    assert [e["probability"] for e in errors["false_negatives"]] == pytest.approx([0.4])


def test_format_errors_names_the_line_of_the_span():
    text = format_errors(worst_errors(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS, k=2, lines=LINES))
    assert text.splitlines() == [
        "false positives (predicted, not in gold; most confident first):",
        "  p 0.600 | P(entity) 0.80 | gold LOC | line 5: Peter visits [PER Paris]",
        "  p 0.500 | P(entity) 0.95 | gold PER | line 7: [PER John] Smith left",
        "false negatives (in gold, not predicted; least probable first):",
        "  p 0.400 | P(entity) 0.80 | predicted PER | line 5: Peter visits [LOC Paris]",
        "  p 0.450 | P(entity) 0.95 0.60 | predicted PER | line 7: [PER John Smith] left",
    ]
    unplaced = format_errors(worst_errors(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS, k=1))
    assert (
        unplaced.splitlines()[1]
        == "  p 0.600 | P(entity) 0.80 | gold LOC | Peter visits [PER Paris]"
    )
    empty = format_errors({"false_positives": [], "false_negatives": []})
    assert empty.splitlines()[1] == "  none"


# --- explain ----------------------------------------------------------------------------------


def test_explain_by_hand():
    result = explain(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS)
    assert {"entity", "binary", "confusion", "accuracy"} <= set(result)  # evaluate_tags' keys
    assert "errors" not in result
    # 3 gold spans, 3 predicted, 1 right (s0 PER(0,1))
    assert result["entity"]["micro"]["f1"] == pytest.approx(1 / 3)
    assert result["conlleval"]["correct_phrases"] == 1
    assert result["strict"]["micro"] == result["entity"]["micro"]  # all valid IOB2
    assert result["strict_lenient_differences"] == 0
    # boundaries (0,1) and (2,3) of sentence 0 match; (0,2) vs (0,1) in sentence 1 do not
    assert (result["unlabelled"]["tp"], result["unlabelled"]["fp"]) == (2, 1)
    assert result["type_accuracy"] == {"accuracy": 0.5, "correct": 1, "spans": 2}
    # P(entity): 0.05 no, 0.3 no, 0.6 yes, 0.8 yes, 0.9 and 0.95 yes
    # ECE = (0.05 + 0.3 + 0.4 + 0.2 + 2 * 0.075) / 6 = 1.1 / 6
    assert result["calibration"]["p_entity"]["ece"] == pytest.approx(1.1 / 6)
    assert result["calibration"]["span"]["ece"] == pytest.approx(1.38 / 3)  # 0.28 + 0.6 + 0.5


def test_explain_is_json_and_lists_errors_when_asked():
    result = explain(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS, errors=1, lines=LINES)
    assert [e["line"] for e in result["errors"]["false_positives"]] == [5]
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_format_explanation_has_every_section():
    text = format_explanation(explain(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS, errors=1))
    for expected in [
        "== entities, lenient",
        "== entities, strict IOB2",
        "predicted sentences read differently: 0",
        "unlabelled spans (types ignored): P 66.67  R 66.67  F1 66.67",
        "type accuracy where the boundaries are right: 50.00 (1 of 2)",
        "P(entity) per token vs gold entity: ECE 0.1833 over 6",
        "span confidence vs span correct: ECE 0.4600 over 3",
        "== worst errors ==",
    ]:
        assert expected in text
    assert "== worst errors ==" not in format_explanation(
        explain(TOKENS, GOLD, PRED, P_TAG, P_ENT, LABELS)
    )


def test_doctests_pass():
    assert doctest.testmod(analysis).failed == 0
