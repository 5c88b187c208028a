import doctest
import os
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest

from nerwin import metrics
from nerwin.decode import spans
from nerwin.metrics import (
    binary_scores,
    confusion,
    conlleval_counts,
    conlleval_lines,
    entity_scores,
    evaluate_tags,
    format_conlleval,
    format_report,
    is_entity,
    strict_lenient_differences,
    strict_scores,
    strict_spans,
    token_accuracy,
    type_accuracy,
    unlabelled_scores,
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


def random_tag_pairs(seed: int, trials: int = 50):
    """``trials`` (gold, pred) pairs of 4 random sentences each, "O" three times as likely."""
    tag_set = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        lengths = rng.integers(1, 12, size=4)
        gold = [list(rng.choice(tag_set, size=n)) for n in lengths]
        pred = [list(rng.choice(tag_set, size=n)) for n in lengths]
        yield gold, pred


def test_seqeval_agrees_with_independent_span_counting_on_random_tags():
    for gold, pred in random_tag_pairs(seed=0):
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


# --- unlabelled spans and type accuracy -------------------------------------------------------

# Gold spans: PER(0,2) LOC(3,4) | ORG(0,1) PER(2,4)
# Pred spans: PER(0,2) ORG(3,4) | ORG(0,1) PER(3,4)
# Same boundaries: (0,2) PER/PER, (3,4) LOC/ORG, (0,1) ORG/ORG -> tp 3, 2 of them typed right;
# gold (2,4) has no predicted match -> fn 1; predicted (3,4) in sentence 2 has none -> fp 1.
BOUNDS_GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER", "I-PER", "O"]]
BOUNDS_PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O", "I-PER", "O"]]


def test_unlabelled_scores_by_hand():
    scores = unlabelled_scores(confusion(BOUNDS_GOLD, BOUNDS_PRED))
    assert (scores["tp"], scores["fp"], scores["fn"], scores["support"]) == (3, 1, 1, 4)
    assert scores["precision"] == pytest.approx(3 / 4)
    assert scores["recall"] == pytest.approx(3 / 4)
    assert scores["f1"] == pytest.approx(3 / 4)


def test_type_accuracy_by_hand():
    result = type_accuracy(confusion(BOUNDS_GOLD, BOUNDS_PRED))
    assert result == {"accuracy": pytest.approx(2 / 3), "correct": 2, "spans": 3}


def test_span_views_without_entities():
    no_entities = confusion([["O"]], [["O"]])
    assert unlabelled_scores(no_entities)["f1"] == 0.0
    assert type_accuracy(no_entities) == {"accuracy": 0.0, "correct": 0, "spans": 0}


# --- strict reading ---------------------------------------------------------------------------


def test_strict_spans_drop_stray_inside_tags():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]
    assert strict_spans(tags) == [("PER", 0, 2), ("LOC", 4, 5)]
    assert spans(tags) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 6)]


def test_strict_scores_by_hand():
    # Strictly, PRED's stray I-PER (sentence 2) is no entity: predicted PER(0,2), ORG(0,1),
    # both right; gold has 4 -> P = 1, R = 2/4, F1 = 2/3.
    scores = strict_scores(GOLD, PRED)
    assert scores["micro"] == pytest.approx(
        {"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 4}
    )
    assert scores["per_type"]["PER"] == pytest.approx(
        {"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2}
    )
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["macro"]["f1"] == pytest.approx((0 + 1 + 2 / 3) / 3)


def test_strict_scores_without_strict_entities_are_zero():
    tags = [["O", "I-PER", "O"]]  # leniently PER(1,2); strictly nothing
    assert entity_scores(tags, tags)["micro"]["f1"] == 1.0
    assert strict_scores(tags, tags) == entity_scores([["O"]], [["O"]])


def test_strict_lenient_differences():
    assert strict_lenient_differences(GOLD) == 0
    assert strict_lenient_differences(PRED) == 1  # O I-PER
    # B-PER I-LOC: leniently PER(0,1) LOC(1,2), strictly PER(0,1) only
    assert strict_lenient_differences([["B-PER", "I-LOC"], ["B-PER", "I-PER"], []]) == 1


# --- conlleval --------------------------------------------------------------------------------

# Gold chunks: LOC(0,2) PER(3,4) | ORG(1,2) (I-ORG after O opens a chunk)       -> 3
# Pred chunks: LOC(0,2)          | ORG(1,3)                                     -> 2
# Correct: LOC(0,2) -> 1. Tags equal on 5 of 7 tokens (not s1 t3, s2 t2).
# accuracy 500/7 = 71.43; P 100 * 1/2 = 50; R 100 * 1/3 = 33.33; FB1 2PR/(P+R) = 40
CONLL_GOLD = [["B-LOC", "I-LOC", "O", "B-PER"], ["O", "I-ORG", "O"]]
CONLL_PRED = [["B-LOC", "I-LOC", "O", "O"], ["O", "I-ORG", "I-ORG"]]


def test_conlleval_counts_by_hand():
    assert conlleval_counts(CONLL_GOLD, CONLL_PRED) == {
        "tokens": 7,
        "correct_tags": 5,
        "gold_phrases": 3,
        "found_phrases": 2,
        "correct_phrases": 1,
        "per_type": {
            "LOC": {"gold": 1, "found": 1, "correct": 1},
            "ORG": {"gold": 1, "found": 1, "correct": 0},
            "PER": {"gold": 1, "found": 0, "correct": 0},
        },
    }


def test_format_conlleval_is_conllevals_text():
    # checked against conlleval.pl (2004-01-26) on conlleval_lines of the same tags
    assert format_conlleval(conlleval_counts(CONLL_GOLD, CONLL_PRED)) == (
        "processed 7 tokens with 3 phrases; found: 2 phrases; correct: 1.\n"
        "accuracy:  71.43%; precision:  50.00%; recall:  33.33%; FB1:  40.00\n"
        "              LOC: precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n"
        "              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
        "              PER: precision:   0.00%; recall:   0.00%; FB1:   0.00  0\n"
    )


def test_format_conlleval_pads_a_type_name_to_17_bytes_as_perl_does():
    counts = conlleval_counts([["B-ÉVÉNEMENT"]], [["B-ÉVÉNEMENT"]])
    line = format_conlleval(counts).splitlines()[-1]
    assert line.startswith(" " * 6 + "ÉVÉNEMENT: ")  # 11 bytes of UTF-8, 9 characters


def test_format_conlleval_without_tokens_prints_one_line():
    assert format_conlleval(conlleval_counts([], [])) == (
        "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
    )


def test_conlleval_reads_iob1_gold_like_iob2():
    # IOB1 gold: I-PER I-PER = PER(0,2); B-PER after I-PER = PER(2,3); I-LOC after O = LOC(4,5).
    # The IOB2 prediction has the same 3 chunks, but its tags differ on tokens 0 and 4: 3/5.
    counts = conlleval_counts(
        [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]
    )
    assert (counts["gold_phrases"], counts["found_phrases"], counts["correct_phrases"]) == (3, 3, 3)
    assert (counts["correct_tags"], counts["tokens"]) == (3, 5)


def test_conlleval_reads_bioes_its_own_way():
    # conlleval has no rule for S- nor for B- after E-: only a change of type splits chunks.
    # B-PER E-PER S-LOC S-LOC = PER(0,2) LOC(2,4); B-PER E-PER B-PER E-PER = PER(0,4).
    gold = [["B-PER", "E-PER", "S-LOC", "S-LOC", "O"], ["B-PER", "E-PER", "B-PER", "E-PER"]]
    counts = conlleval_counts(gold, gold)
    assert counts["per_type"] == {
        "LOC": {"gold": 1, "found": 1, "correct": 1},
        "PER": {"gold": 2, "found": 2, "correct": 2},
    }


def test_conlleval_brackets_are_one_token_chunks():
    # [-X [-X: two chunks; B-X I-X: one chunk, which ends later than the first bracket -> 0 right
    counts = conlleval_counts([["[-X", "[-X"]], [["B-X", "I-X"]])
    assert (counts["gold_phrases"], counts["found_phrases"], counts["correct_phrases"]) == (2, 1, 0)


def test_conlleval_agrees_with_seqeval_on_random_tags():
    for gold, pred in random_tag_pairs(seed=1):
        counts = conlleval_counts(gold, pred)
        micro = entity_scores(gold, pred)["micro"]
        gold_count, found, correct = (counts[f"{k}_phrases"] for k in ("gold", "found", "correct"))
        assert micro["support"] == gold_count
        assert micro["precision"] == pytest.approx(correct / found if found else 0.0)
        assert micro["recall"] == pytest.approx(correct / gold_count if gold_count else 0.0)


def test_conlleval_lines():
    text = conlleval_lines(
        [["EU", "rejects"], ["Peter"]], [["B-ORG", "O"], ["B-PER"]], [["B-ORG", "O"], ["O"]]
    )
    assert text == "EU B-ORG B-ORG\nrejects O O\n\nPeter B-PER O\n\n"


@pytest.mark.parametrize("token", ["-X-", "New York"])
def test_conlleval_lines_rejects_tokens_conlleval_misreads(token):
    with pytest.raises(ValueError, match="conlleval cannot read"):
        conlleval_lines([[token]], [["O"]], [["O"]])


CONLLEVAL_PL = os.environ.get("NERWIN_CONLLEVAL")  # path to conlleval.pl; not shipped (licence)


@pytest.mark.skipif(
    not CONLLEVAL_PL or not shutil.which("perl"), reason="set NERWIN_CONLLEVAL=conlleval.pl"
)
def test_format_conlleval_matches_conlleval_pl_on_random_tags():
    tag_sets = [
        ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-WORK-OF-ART", "I-WORK-OF-ART"],
        ["O", "O", "I-PER", "B-PER", "I-LOC", "B-LOC"],
        ["O", "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC", "S-LOC"],
        ["O", "B-X", "I-X", "E-X", "S-X", "[-X", "]-X", ".-X", "[-Y", "B-Y"],
    ]
    rng = np.random.default_rng(2)
    for tag_set in tag_sets:
        for _ in range(25):
            lengths = rng.integers(0, 10, size=int(rng.integers(1, 6)))
            gold = [list(rng.choice(tag_set, size=n)) for n in lengths]
            pred = [list(rng.choice(tag_set, size=n)) for n in lengths]
            tokens = [[f"w{i}" for i in range(n)] for n in lengths]
            expected = subprocess.run(
                ["perl", CONLLEVAL_PL],
                input=conlleval_lines(tokens, gold, pred),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert format_conlleval(conlleval_counts(gold, pred)) == expected


# --- evaluate_tags and format_report ----------------------------------------------------------


def test_is_entity():
    assert is_entity([["B-PER", "O"], [], ["I-LOC"]]).tolist() == [True, False, True]


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


def test_doctests_pass():
    assert doctest.testmod(metrics).failed == 0


def test_entity_scores_equal_seqeval_default_mode_on_random_tags():
    """seqeval is the oracle: per type, micro and macro, to the last bit of rounding."""
    from nerwin.metrics import _seqeval_scores

    rng = np.random.default_rng(11)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    for _ in range(30):
        lengths = rng.integers(0, 12, size=8)
        gold = [list(rng.choice(tags, size=n, p=[0.5] + [1 / 12] * 6)) for n in lengths]
        pred = [list(rng.choice(tags, size=n, p=[0.5] + [1 / 12] * 6)) for n in lengths]
        if not any(spans(s) for s in gold + pred):
            continue
        ours, theirs = entity_scores(gold, pred), _seqeval_scores(gold, pred)
        assert ours.keys() == theirs.keys()
        assert ours["per_type"].keys() == theirs["per_type"].keys()
        for name in ("micro", "macro", *(("per_type", t) for t in ours["per_type"])):
            a = ours[name[0]][name[1]] if isinstance(name, tuple) else ours[name]
            b = theirs[name[0]][name[1]] if isinstance(name, tuple) else theirs[name]
            assert a == pytest.approx(b, abs=1e-12), name
