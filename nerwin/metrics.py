"""Evaluation: entity-level P/R/F1 (seqeval), token-level entity detection,
a confusion matrix of entity types, and a text report.

``gold`` and ``pred`` are lists of sentences, each a list of IOB2 tags;
sentence i of ``pred`` has the same length as sentence i of ``gold``.
Entities are read leniently, as conlleval does: a stray I-X opens a span.
N is the number of tokens over all sentences.
"""

from collections.abc import Sequence

import numpy as np
from seqeval.metrics import classification_report

from nerwin.decode import spans

Tags = Sequence[Sequence[str]]
NO_SPAN = "O"  # confusion label: no span with these boundaries (missed or spurious)
_AVERAGES = ("micro avg", "macro avg", "weighted avg")
_SCORE_KEYS = ("precision", "recall", "f1")


def _prf(report_row: dict) -> dict:
    """A seqeval report row -> {"precision", "recall", "f1", "support"} as floats and int."""
    return {
        "precision": float(report_row["precision"]),
        "recall": float(report_row["recall"]),
        "f1": float(report_row["f1-score"]),
        "support": int(report_row["support"]),
    }


def _safe_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _safe_ratio(2 * precision * recall, precision + recall)


def entity_scores(gold: Tags, pred: Tags) -> dict:
    """Entity-level precision, recall and F1 per type, micro and macro averaged.

    seqeval in its default mode, which agrees with conlleval (lenient; no
    ``mode``/``scheme`` passed: seqeval's strict mode needs both, always).
    Returns {"per_type": {TYPE: scores}, "micro": scores, "macro": scores},
    scores = {"precision", "recall", "f1": float in [0, 1], "support": int
    (number of gold spans)}, types sorted. Undefined ratios are 0.0.
    """
    if not any(spans(sentence) for sentence in [*gold, *pred]):
        no_entities = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {"per_type": {}, "micro": no_entities, "macro": dict(no_entities)}
    report = classification_report(
        [list(s) for s in gold], [list(s) for s in pred], output_dict=True, zero_division=0
    )
    per_type = {name: _prf(row) for name, row in sorted(report.items()) if name not in _AVERAGES}
    return {
        "per_type": per_type,
        "micro": _prf(report["micro avg"]),
        "macro": _prf(report["macro avg"]),
    }


def binary_scores(gold_is_entity: np.ndarray, p_entity: np.ndarray, threshold: float = 0.5) -> dict:
    """Token-level entity detection: a token is predicted an entity if p_entity > threshold.

    gold_is_entity: shape (N,) bool; p_entity: shape (N,) float.
    Returns {"precision", "recall", "f1", "threshold": float, "tp", "fp",
    "fn", "support": int}; support = number of gold entity tokens.
    """
    gold_is_entity = np.asarray(gold_is_entity, dtype=bool)
    pred_is_entity = np.asarray(p_entity) > threshold
    if gold_is_entity.shape != pred_is_entity.shape:
        raise ValueError(f"shapes differ: gold {gold_is_entity.shape}, p {pred_is_entity.shape}")
    tp = int(np.sum(gold_is_entity & pred_is_entity))
    fp = int(np.sum(~gold_is_entity & pred_is_entity))
    fn = int(np.sum(gold_is_entity & ~pred_is_entity))
    precision, recall = _safe_ratio(tp, tp + fp), _safe_ratio(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": tp + fn,
    }


def confusion(gold: Tags, pred: Tags) -> dict:
    """Confusion of entity types over spans matched by exact boundaries.

    Each gold span counts in row (its type, type of the predicted span with
    the same start and end, or "O" if there is none: missed); each predicted
    span without a gold span of the same boundaries counts in row "O"
    (spurious). Returns {"labels": [sorted types..., "O"], "matrix": list of
    lists of int}, rows = gold, columns = predicted.
    """
    gold_spans = [spans(sentence) for sentence in gold]
    pred_spans = [spans(sentence) for sentence in pred]
    types = sorted({t for found in [*gold_spans, *pred_spans] for t, _, _ in found})
    labels = [*types, NO_SPAN]
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)  # (gold, predicted)
    for gold_found, pred_found in zip(gold_spans, pred_spans, strict=True):
        gold_by_bounds = {(start, end): t for t, start, end in gold_found}
        pred_by_bounds = {(start, end): t for t, start, end in pred_found}
        for bounds, gold_type in gold_by_bounds.items():
            matrix[index[gold_type], index[pred_by_bounds.get(bounds, NO_SPAN)]] += 1
        for bounds, pred_type in pred_by_bounds.items():
            if bounds not in gold_by_bounds:
                matrix[index[NO_SPAN], index[pred_type]] += 1
    return {"labels": labels, "matrix": matrix.tolist()}


def token_accuracy(gold: Tags, pred: Tags) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (0.0 if no tokens)."""
    pairs = [pair for g, p in zip(gold, pred, strict=True) for pair in zip(g, p, strict=True)]
    return _safe_ratio(sum(g == p for g, p in pairs), len(pairs))


def evaluate_tags(
    gold: Tags,
    pred: Tags,
    gold_is_entity: np.ndarray | None = None,
    p_entity: np.ndarray | None = None,
) -> dict:
    """All metrics of one evaluation.

    p_entity: shape (N,) float, the binary head over all tokens in order;
    gold_is_entity: shape (N,) bool, by default [gold tag != "O"].
    Returns {"entity", "confusion", "accuracy"} and "binary" when p_entity
    is given.
    """
    result = {
        "entity": entity_scores(gold, pred),
        "confusion": confusion(gold, pred),
        "accuracy": token_accuracy(gold, pred),
    }
    if p_entity is not None:
        if gold_is_entity is None:
            gold_is_entity = np.array([tag != "O" for sentence in gold for tag in sentence])
        result["binary"] = binary_scores(gold_is_entity, p_entity)
    return result


def _percent(score: float) -> str:
    return f"{100 * score:.2f}"


def _entity_table(entity: dict) -> list[str]:
    rows = [*entity["per_type"].items(), ("micro avg", entity["micro"])]
    rows.append(("macro avg", entity["macro"]))
    name_width = max(len(name) for name, _ in rows)
    lines = [f"{'type':<{name_width}}  precision  recall      f1  support"]
    for name, scores in rows:
        p, r, f = (_percent(scores[key]) for key in _SCORE_KEYS)
        lines.append(f"{name:<{name_width}}  {p:>9}  {r:>6}  {f:>6}  {scores['support']:>7}")
    return lines


def _binary_line(binary: dict) -> str:
    p, r, f = (_percent(binary[key]) for key in _SCORE_KEYS)
    return f"entity detection (P(entity) > {binary['threshold']:g}): P {p}  R {r}  F1 {f}"


def _confusion_table(confusion_result: dict) -> list[str]:
    labels, matrix = confusion_result["labels"], confusion_result["matrix"]
    corner = "gold \\ predicted"
    counts_text = [str(count) for row in matrix for count in row]
    row_width = max(len(text) for text in [corner, *labels])
    cell_width = max(len(text) for text in [*labels, *counts_text])
    header = "  ".join(f"{label:>{cell_width}}" for label in labels)
    lines = [f"{corner:<{row_width}}  {header}"]
    for label, counts in zip(labels, matrix, strict=True):
        cells = "  ".join(f"{count:>{cell_width}}" for count in counts)
        lines.append(f"{label:<{row_width}}  {cells}")
    return lines


def format_report(result: dict) -> str:
    """Human-readable text of an evaluate_tags result: scores in percent."""
    lines = _entity_table(result["entity"])
    lines += ["", f"token accuracy: {_percent(result['accuracy'])}"]
    if "binary" in result:
        lines.append(_binary_line(result["binary"]))
    lines += ["", "confusion (rows gold, columns predicted; O = missed / spurious):"]
    lines += _confusion_table(result["confusion"])
    return "\n".join(lines)
